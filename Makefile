# Two entry points for a fresh machine with Python >= 3.10 and pip:
#   make demo   -> create .venv, install vgfm with its runtime dependencies only, fit the
#                  synthetic two-gene data, write .h5ad + figures, print the venv size
#   make test   -> create .venv, install vgfm with the test extras, run the test suite
# Both use the same .venv: `make demo` installs only what the demo needs; `make test` adds the
# test extras to it. `make install` installs everything (test, docs, lint).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed before the package. By default the CPU build: first from PyTorch's CPU
# index (a short timeout, no retries), and when that index cannot be reached, from the usual
# package index (where Linux wheels are the CUDA build). Override TORCH_SPEC (and
# TORCH_INDEX_URL, or set it empty to skip that step) for another build, e.g.
#   make demo TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX_TIMEOUT ?= 15
DEMO_OUT ?= demo_output
PIP := $(BIN)/python -m pip

.PHONY: venv install demo test docs lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.torch: | $(BIN)/python
	@if [ -n "$(TORCH_INDEX_URL)" ] && $(PIP) install --quiet --timeout $(TORCH_INDEX_TIMEOUT) \
	    --retries 0 --index-url "$(TORCH_INDEX_URL)" "$(TORCH_SPEC)"; then \
	  echo "installed $(TORCH_SPEC) with --index-url $(TORCH_INDEX_URL)"; \
	else \
	  echo "$(TORCH_SPEC) not installed from '$(TORCH_INDEX_URL)'; using the default package index"; \
	  $(PIP) install --quiet "$(TORCH_SPEC)"; \
	fi
	touch $@

# runtime dependencies only (what `make demo` needs)
$(VENV)/.installed-run: $(VENV)/.torch pyproject.toml
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.torch pyproject.toml
	$(PIP) install --quiet -e ".[test]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.torch pyproject.toml
	$(PIP) install --quiet -e ".[dev]"
	touch $@

venv: $(BIN)/python
install: $(VENV)/.installed-dev

demo: $(VENV)/.installed-run
	MPLBACKEND=Agg $(BIN)/vgfm demo --output $(DEMO_OUT)
	@echo "size of the virtual environment $(VENV) (du -sh): $$(du -sh $(VENV) | cut -f1)"

test: $(VENV)/.installed-test
	MPLBACKEND=Agg $(BIN)/python -m pytest -q

docs: $(VENV)/.installed-dev
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) docs/_build $(DEMO_OUT) .pytest_cache
