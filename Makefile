# Developer entry points. `make venv` is incremental: the stamp file is only
# rebuilt when a requirements file changes, so re-runs are instant.

PORT ?= 8501
# Loopback only by default: `make run HOST=0.0.0.0` to serve other machines (see the README,
# "Deploying for the team": sign-in, the wall token and TLS first).
HOST ?= 127.0.0.1
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)

.PHONY: venv run test lint format bench clean distclean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

# No data source configured => the app serves demo data.
run: venv
	$(BIN)/streamlit run app.py --server.headless true --server.address $(HOST) --server.port $(PORT)

test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The performance benchmark (bench/__main__.py, results in bench/RESULTS.md); the 10m size takes
# tens of minutes. Override with e.g. `make bench SIZES=tiny`.
SIZES ?= 1m,10m
bench: venv
	$(BIN)/python -m bench --sizes $(SIZES)

clean:
	rm -rf .pytest_cache .ruff_cache .hypothesis tests/screenshots
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

# Also removes the virtualenv.
distclean: clean
	rm -rf $(VENV)
