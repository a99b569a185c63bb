# Every target does its own set-up: a .venv in the checkout with effscale installed.
# TORCH pins the torch build installed first (the CPU wheel on this team's machines);
# override it, e.g. `make test TORCH=torch`, to let pip choose.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
# The development set-up includes the optional executors and trackers so their tests run
# (ray, submitit, tensorboard, mlflow).
EXTRAS ?= dev,ray,slurm,track
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint format figures bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)  ## the main job on the embedded data: studies/quick.toml, then its report
	$(BIN)/effscale run studies/quick.toml --out runs/quick --workers 2
	$(BIN)/effscale report runs/quick

test: $(STAMP)  ## fast tests (slow ones excluded)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)  ## only the slow tests
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check effscale tests bench
	$(BIN)/ruff format --check effscale tests bench

format: $(STAMP)
	$(BIN)/ruff check --fix effscale tests bench
	$(BIN)/ruff format effscale tests bench

figures: $(STAMP)  ## redraw docs/figures from the stored real-data results (no training)
	$(BIN)/effscale report docs/results/cifar10
	$(BIN)/effscale report docs/results/search
	mkdir -p docs/figures
	cp docs/results/cifar10/figures/*.png docs/results/cifar10/figures/*.svg docs/figures/
	cp docs/results/search/figures/search.png docs/results/search/figures/search.svg docs/figures/
	$(BIN)/effscale report docs/results/cifar10-budgets
	cp docs/results/cifar10-budgets/figures/budget_trend.png docs/figures/cifar10-budget_trend.png
	$(BIN)/effscale report docs/results/imagenette
	cp docs/results/imagenette/figures/figure8-100k.png docs/figures/imagenette-figure8-100k.png
	cp docs/results/imagenette/figures/budget_trend.png docs/figures/imagenette-budget_trend.png
	$(BIN)/effscale report docs/results/imagenette-search
	cp docs/results/imagenette-search/figures/search.png docs/figures/imagenette-search.png
	$(BIN)/effscale fit docs/results/imagenette docs/results/imagenette-search --samples 100k \
	  --configs-per-param 1 --holdout-above 2.6x --plots docs/figures/imagenette-law > /dev/null

bench: $(STAMP)
	$(BIN)/python bench/cost_table.py
	$(BIN)/python bench/train_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
