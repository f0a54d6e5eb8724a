# Set-up and everyday commands. `make demo` runs the main job, `make test` the checks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch and torchvision are pinned here (not in the package's ranges) to the builds this
# project's machines have on disk, so installing needs no multi-GB download.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?= -n 2
# Idle OpenMP threads sleep instead of spinning: on a 2-core machine running two test
# workers, spinning threads starve each other (a forward pass was seen 20x slower).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install test lint typecheck pytest demo bench docs clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

lint: install
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

typecheck: install
	$(BIN)/mypy

# The numerics-sensitive tests run a second time on other CPU kernels (ATen's scalar code and
# oneDNN's SSE4.1 convolutions round differently from the AVX2/AVX-512 ones), so a result that
# hinges on the last ulp fails here rather than on another machine.
OTHER_KERNELS := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 ADANET_OTHER_KERNELS=1

pytest: install
	$(BIN)/pytest $(PYTEST_ARGS)
	$(OTHER_KERNELS) $(BIN)/pytest $(PYTEST_ARGS) -m numerics -p no:cacheprovider

test: lint typecheck pytest

demo: install
	$(BIN)/python examples/demo.py

bench: install
	$(BIN)/python benchmarks/run_all.py

# The docs extra (mkdocs-material, mkdocstrings) on top of the dev install.
$(BIN)/.docs-installed: $(BIN)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,docs]"
	touch $@

docs: $(BIN)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache dist build site
