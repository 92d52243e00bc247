# fau-pipeline. Everything installs into .venv first (Python 3.11).
#   make run     the whole DAG on the embedded synthetic dataset (snakemake --cores all)
#   make test    the test suite (unit + integration; Slurm/MLflow/DVC tests need
#                scripts/ci-system-deps.sh's packages, else they skip with a reason)
#   make bench   benchmarks/ (ratios against a baseline measured in the same run)
#   make ui      MLflow UI on the local store (results/mlflow.db); prints the runs table's address
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: install run test bench ui clean

$(VENV)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required; set PYTHON=...)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

run: install
	snakemake --cores all

test: install
	python -m pytest

bench: install
	python benchmarks/run_all.py $(BENCH_ARGS)

ui: install
	fau mlflow-ui --config config/config.yaml --host 127.0.0.1 --port 5000

clean:
	rm -rf results data/synth .snakemake
