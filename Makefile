# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine: they create .venv,
# install PyTorch (CPU wheel by default; set TORCH_SPEC for another build) and the project, then run.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install "$(TORCH_SPEC)"
	$(VENV)/bin/pip install -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

bench: $(STAMP)
	$(PY) benchmarks/bench_model.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache demo_output
