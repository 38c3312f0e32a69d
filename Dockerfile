# The image the Kubernetes work pool and the Dask workers run (docs/scale-out.md):
# the project at /opt/llm-auto-optimizer, installed with the pinned dependencies.
FROM python:3.11-slim
WORKDIR /opt/llm-auto-optimizer
COPY pyproject.toml constraints.txt README.md ./
COPY optimizer ./optimizer
COPY tasks ./tasks
COPY flows ./flows
COPY deployments ./deployments
COPY data/model_catalog.json ./data/model_catalog.json
COPY prefect.yaml ./
# Editable, so the code finds data/ beside it as it does in a checkout.
RUN pip install --no-cache-dir -c constraints.txt -e .
