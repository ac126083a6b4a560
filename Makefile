# Two commands set everything up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip install --disable-pip-version-check -c constraints.txt

.PHONY: install demo lint test test-fast docs bench bench-quality bench-cuda clean fashion-mnist

install: $(STAMP)

# (Re)install when the dependencies change; the venv itself is created once and reused.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e ".[test]"
	touch $(STAMP)

demo: install  ## in-run EL2N → keep the hardest half → train, beside full data and full data stopped early (MNIST-1D)
	$(BIN)/datadiet baseline=true

lint: install  ## ruff: the project's rules and its formatting (no file is changed)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

test: lint  ## ruff, then the whole test suite (W&B offline, no downloads)
	WANDB_MODE=offline $(BIN)/python -m pytest

test-fast: install  ## everything but the CLI / multi-process tests
	WANDB_MODE=offline $(BIN)/python -m pytest -m "not slow"

docs: $(VENV)/.docs-installed  ## the documentation site (mkdocs-material, API reference from the docstrings) into site/; a broken link fails
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

$(VENV)/.docs-installed: $(STAMP)
	$(PIP) -e ".[docs]"
	touch $@

bench: install  ## the benchmark scripts that print ratios (see benchmarks/README.md)
	$(BIN)/python -m benchmarks.overhead
	$(BIN)/python -m benchmarks.overhead --model cnn1d
	$(BIN)/python -m benchmarks.pruned_speed
	$(BIN)/python -m benchmarks.scale

bench-quality: install  ## the MNIST-1D quality study (~20 min on 2 cores)
	$(BIN)/python -m benchmarks.quality

bench-cuda: install  ## overhead and pruned speed of a ResNet-18 on CUDA (needs a GPU)
	$(BIN)/python -m benchmarks.overhead --device cuda
	$(BIN)/python -m benchmarks.pruned_speed --device cuda

clean:
	rm -rf outputs multirun wandb lightning_logs .pytest_cache site

fashion-mnist:  ## Fashion-MNIST's idx files from Debian's package (/usr/share/datasets/fashion-mnist; needs apt, root)
	@if command -v apt-get >/dev/null; then \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y dataset-fashion-mnist; \
	else echo "no apt-get here: put the four idx files in a folder and set DATADIET_DATA, or pass data.download=true"; exit 1; fi
