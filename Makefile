# Developer entry points. Installs are incremental: each stamp file is only rebuilt when its
# requirements file changes, so re-runs are instant. `make run` installs only what the app needs
# (requirements.txt); `make test` and `make bench` add the test and benchmark tools
# (requirements-dev.txt, which starts with `-r requirements.txt`).

PORT ?= 8501
# Loopback only by default: `make run HOST=0.0.0.0` to serve other machines (see the README,
# "Deploying for the team": sign-in, the wall token and TLS first).
HOST ?= 127.0.0.1
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-app
DEV_STAMP := $(VENV)/.installed-dev
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)

.PHONY: venv dev run test lint format bench clean distclean

venv: $(STAMP)
dev: $(DEV_STAMP)

$(BIN)/python:
	@echo "creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(STAMP): requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $(STAMP) $@

# No data source configured => the app serves demo data.
run: venv
	$(BIN)/streamlit run app.py --server.headless true --server.address $(HOST) --server.port $(PORT)

test: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The performance benchmark (bench/__main__.py, results in bench/RESULTS.md); the 10m size takes
# tens of minutes. Override with e.g. `make bench SIZES=tiny`.
SIZES ?= 1m,10m
bench: dev
	$(BIN)/python -m bench --sizes $(SIZES)

clean:
	rm -rf .pytest_cache .ruff_cache .hypothesis tests/screenshots
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

# Also removes the virtualenv.
distclean: clean
	rm -rf $(VENV)
