# The README's commands. Each target sets up what it needs: a virtual environment in .venv with the
# package installed in editable mode, then a check that the data can be found.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# BUDGET and DATASET left empty follow the series' two switches, $LDAE_BUDGET (default lecture) and
# $LDAE_DATASET (default fashion-mnist-m), read by the package itself: `make trajectory DATASET=fashion-mnist`
# overrides them for one command.
BUDGET ?=
DATASET ?=
SEEDS  ?= 0
WORKERS ?=
TRAIN_STEPS ?=
# `make trajectory SET="steps=300 batch_size=256"` overrides budget fields (the report names them).
SET ?=
# `make book NOTEBOOKS="00 04"` renders only those notebooks.
NOTEBOOKS ?=

.PHONY: setup data lab test trajectory search side book bench clean

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
	$(BIN)/python -m ldae_lite trajectory $(if $(BUDGET),--budget $(BUDGET)) $(if $(DATASET),--dataset $(DATASET)) \
		--seeds $(SEEDS) $(if $(WORKERS),--workers $(WORKERS)) $(if $(TRAIN_STEPS),--train-steps $(TRAIN_STEPS)) \
		$(if $(SET),--set $(SET))

# The budget search (scripts/budget_search.py): each candidate's 3-seed trajectory and pixel-space DAE,
# trained where missing (hours on 2 CPU cores; resumes from the run cache), scored in results/search/.
search: data
	$(BIN)/python scripts/budget_search.py --run $(if $(DATASET),--dataset $(DATASET)) $(if $(WORKERS),--workers $(WORKERS))

# The side experiments the notebooks show (latent dimension, pixel-space DAE, one noise level, masking, orthonormal
# V, fixed-t and depth probes) at the budget and dataset, seeds 0-2 (scripts/side_experiments.py; hours on
# 2 CPU cores from an empty cache), into results/<budget>/side_experiments.json and .md.
side: data
	$(BIN)/python scripts/side_experiments.py $(if $(BUDGET),--budget $(BUDGET)) $(if $(DATASET),--dataset $(DATASET)) \
		$(if $(WORKERS),--workers $(WORKERS))

# The executed series as static HTML in build/book/ (index.html links every notebook), at the current budget
# and dataset; trained runs come from the cache in runs/, so a second build only re-executes the cells.
book: data
	$(BIN)/python scripts/book.py $(if $(BUDGET),--budget $(BUDGET)) $(if $(DATASET),--dataset $(DATASET)) \
		$(if $(NOTEBOOKS),--notebooks $(NOTEBOOKS))

bench: data
	$(BIN)/python benchmarks/bench_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache build
