# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv and
# install what is missing first; everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
SOURCES := optimizer tasks flows deployments bench tests

.PHONY: demo test bench lint typecheck sandbox serve serve-nightly clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever the declared dependencies or their pins change.
$(INSTALLED): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/auto-optimizer demo

# Several workers even on two cores: much of the suite waits on servers, flow runs and pauses.
TEST_WORKERS ?= 3

test: lint typecheck
	$(BIN)/python -m pytest --numprocesses $(TEST_WORKERS)

# Every stage at 1M, 10M and 50M rows against a pandas baseline, the ad-hoc analyze commands
# and the CLI's start as cold processes, extraction over HTTP and Prefect's overhead; about 15
# minutes the first time (the data is generated once, in bench/data/). Results in
# bench/results/. BENCH_ARGS="--sizes 1000000 --skip adhoc" for a quick look.
bench: $(INSTALLED)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check $(SOURCES)

typecheck: $(INSTALLED)
	$(BIN)/mypy optimizer tasks flows deployments bench

# The platform sandbox on http://127.0.0.1:8700 (AUTO_OPTIMIZER_SANDBOX_HOST/_PORT move it),
# for trying the CLI or a deployment against it.
sandbox: $(INSTALLED)
	$(BIN)/auto-optimizer sandbox serve

# Everything locally, for the UI: Prefect server (http://127.0.0.1:4200), the sandbox (:8700),
# the webhook receiver (:8710) and every deployment; each service can be moved or replaced by
# settings (`$(BIN)/python -m deployments.local --help` lists them). Ctrl-C stops it all.
serve: $(INSTALLED)
	$(BIN)/python -m deployments.local

# The deployments only, against the Prefect API in PREFECT_API_URL. Ctrl-C stops them.
serve-nightly: $(INSTALLED)
	$(BIN)/python -m deployments.serve

clean:
	rm -rf $(VENV) data/demo data/api data/staging data/reports data/prefect data/webhook .mypy_cache .ruff_cache .pytest_cache
