# The README's commands. Each target sets up what it needs: a virtual environment in .venv with the
# package installed in editable mode, then a check that the data can be found.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
BUDGET ?= lecture
SEEDS  ?= 0
DATASET ?= fashion-mnist
WORKERS ?=
TRAIN_STEPS ?=

.PHONY: setup data lab test trajectory bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[lab,dev,bench]"
	touch $(STAMP)

setup: $(STAMP)

data: setup
	$(BIN)/python -m ldae_lite data

# Jupyter refuses to run as root unless told; containers often run as root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: data
	$(BIN)/jupyter lab --notebook-dir=notebooks $(ROOT_FLAG)

# Unit tests, then every notebook top to bottom at the smoke budget.
test: data
	LDAE_BUDGET=smoke $(BIN)/python -m pytest tests
	LDAE_BUDGET=smoke $(BIN)/python -m pytest --nbmake --nbmake-timeout=600 notebooks

trajectory: data
	$(BIN)/python -m ldae_lite trajectory --budget $(BUDGET) --dataset $(DATASET) --seeds $(SEEDS) \
		$(if $(WORKERS),--workers $(WORKERS)) $(if $(TRAIN_STEPS),--train-steps $(TRAIN_STEPS))

bench: data
	$(BIN)/python benchmarks/bench_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache
