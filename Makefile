# The two commands of the README:
#   make repro   - create .venv, install, run the whole pipeline (dvc repro via `adrl repro`) on the synthetic default
#   make test    - create .venv, install, run the test suite
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export OMP_NUM_THREADS ?= 2
export MKL_NUM_THREADS ?= 2
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false
# stages run `python -m pipeline.<stage>`: the environment's python comes first
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install repro test ui bench experiments clean-env

$(BIN)/adrl: pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; adrl needs Python 3.11 (set PY=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,online,ray]'
	@$(BIN)/python scripts/dvc-plots-offline.py || echo "warning: dvc plots show will need a network (see above)"
	@touch $(BIN)/adrl

install: $(BIN)/adrl

repro: install
	$(BIN)/adrl repro

test: install
	@bash scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

ui: install
	$(BIN)/adrl ui

bench: install
	$(BIN)/python -m benchmarks.run_all

# sample efficiency against the simulator's truth with converged learners (issue 14; benchmarks/results/
# sample_efficiency.md). Every arm's result is kept in the results json and reused when a run is repeated or
# extended (new arms, seeds or sizes train only what is missing); EXP_ARGS adds or overrides options, e.g.
#   make experiments EXP_ARGS="--sizes 250 1000 --seeds 0 1"      (a part of the grid)
#   make experiments EXP_ARGS="--executor ray --address auto"     (the cells on a Ray cluster)
EXP_ARMS ?= bcq factored_bcq adbcq-linear-noaug adbcq-linear-aug-soft adbcq-linear-aug-sample \
	adbcq-linear-aug-logged adbcq-linear-aug-soft-survaction adbcq-linear-aug-sample-shuffle \
	adbcq-linear-aug-sample-noise0.5 adbcq-linear-aug-sample-noise2
# the mixer ablation (E2) on the augmentation setting with the highest pooled value in the first run (sample), on
# interaction 0 at N = 1,000; and the shuffle control with soft termination at N = 2,000 and 4,000 in every world,
# where soft gained; their results merge into the same file
EXP_MIXER_ARMS ?= adbcq-mean-aug-sample adbcq-sum-aug-sample adbcq-mlp2-aug-sample adbcq-relu-aug-sample
EXP_GRID = --name sample_efficiency --sizes 125 250 500 1000 2000 4000 --seeds 0 1 2 3 4 --stays 17000 \
	--steps 10000 --checkpoints 10 --patients 1000 --tau 0.3
experiments: install
	$(BIN)/python -m benchmarks.exp_sample_efficiency $(EXP_GRID) --interactions 0 1 --confounders 1 \
		--arms $(EXP_ARMS) $(EXP_ARGS)
	$(BIN)/python -m benchmarks.exp_sample_efficiency $(EXP_GRID) --interactions 0 --sizes 1000 \
		--arms factored_bcq adbcq-linear-aug-sample $(EXP_MIXER_ARMS) $(EXP_ARGS)
	$(BIN)/python -m benchmarks.exp_sample_efficiency $(EXP_GRID) --interactions 0 1 --confounders 1 --sizes 2000 4000 \
		--arms adbcq-linear-aug-soft-shuffle $(EXP_ARGS)

clean-env:
	rm -rf $(VENV)
