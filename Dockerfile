# The image the Kubernetes work pool and the Dask workers run (docs/scale-out.md): the
# project at /opt/llm-auto-optimizer, installed from its wheel with the pinned dependencies.
FROM python:3.11-slim
WORKDIR /opt/llm-auto-optimizer
COPY pyproject.toml setup.py constraints.txt README.md prefect.yaml ./
COPY optimizer ./optimizer
COPY tasks ./tasks
COPY flows ./flows
COPY deployments ./deployments
COPY data/model_catalog.json ./data/model_catalog.json
# Not editable: the wheel carries the model catalog, as a user's install does. The sources
# stay for prefect.yaml, whose entrypoints are files (flows/*.py) under this folder; local
# state defaults to ./data here either way.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/dist . \
    && pip install --no-cache-dir -c constraints.txt /tmp/dist/*.whl \
    && rm -rf /tmp/dist build llm_auto_optimizer.egg-info
