# Two entry points for a fresh machine with Python >= 3.10 and pip:
#   make demo   -> create .venv, install, fit the synthetic two-gene data, write .h5ad + figures
#   make test   -> create .venv, install with test extras, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build of torch, installed before the package so pip does not pull CUDA wheels.
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo_output

.PHONY: venv install demo test docs lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

venv install: $(VENV)/.installed

demo: $(VENV)/.installed
	MPLBACKEND=Agg $(BIN)/vgfm demo --output $(DEMO_OUT)

test: $(VENV)/.installed
	MPLBACKEND=Agg $(BIN)/python -m pytest -q

docs: $(VENV)/.installed
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) docs/_build $(DEMO_OUT) .pytest_cache
