# Two commands on a fresh machine: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Spark's class-data-sharing archive, built once per venv: the driver JVM starts in about half
# the CPU (spark_backend/engine.py, benchmarks/README.md). Skipped, with a note, without Java.
CDS_STAMP := $(VENV)/.spark-cds
# torch first, pinned: on a CPU machine this takes the local CPU build, not GBs of CUDA packages.
TORCH_PIN ?= torch==2.13.0
# xgboost and onnxruntime wheels: cpu (xgboost-cpu, onnxruntime: no CUDA, no NCCL) or gpu (xgboost,
# onnxruntime-gpu). A GPU machine: make venv MODEL_EXTRAS=gpu TORCH_PIN=torch
MODEL_EXTRAS ?= cpu

.PHONY: venv demo examples lint format test unit parity bench gpu-check clean check-java

check-java:
	@command -v java >/dev/null 2>&1 || { echo "error: java not found; Spark needs Java 17 or newer (e.g. apt-get install openjdk-17-jre-headless)"; exit 2; }

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11+ is required (tomllib)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[test,$(MODEL_EXTRAS)]"
	touch $(STAMP)

$(CDS_STAMP): $(STAMP)
	@if command -v java >/dev/null 2>&1; then $(PY) -m spark_backend.engine build-cds && touch $(CDS_STAMP); \
	else echo "note: no java: Spark's class-data-sharing archive is not built (Spark jobs start slower)"; fi

venv: $(STAMP) $(CDS_STAMP)

examples: venv
	$(PY) -m examples.build

demo: check-java examples
	$(PY) -m examples.demo

# ruff (rules and line length in pyproject.toml) and the import contracts (lint-imports,
# [tool.importlinter] in pyproject.toml): `make test` and so CI run them first.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHONPATH=$(CURDIR) $(VENV)/bin/lint-imports

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: check-java venv lint
	$(PY) -m pytest -q tests parity_tests benchmarks/test_plan.py benchmarks/test_smoke.py benchmarks/test_gpu_check.py benchmarks/test_phases.py

unit: venv
	$(PY) -m pytest -q tests

parity: check-java venv
	$(PY) -m pytest -q parity_tests

bench: check-java venv
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.sql_bench

# Ray on the GPU against Ray on the CPU (README, "GPUs"). Needs no Java and no pyspark. On a GPU
# machine without the venv or internet: `make gpu-check PY=python3` (wheels: benchmarks/gpu_wheels.sh).
gpu-check: $(if $(filter $(PY),$(VENV)/bin/python),venv)
	$(PY) -m benchmarks.gpu_check $(GPU_CHECK_ARGS)

clean:
	rm -rf examples/*/data examples/*/model examples/*/pipeline examples/*/out examples/parity-report examples/*/job.toml.parity.json .pytest_cache
