# Developer entry points. Installs are incremental: each stamp file is only rebuilt when its
# requirements file changes, so re-runs are instant. `make run` installs only what the app needs
# (requirements.txt); `make check`, `make test` and `make bench` add the test and benchmark tools
# (requirements-dev.txt, which starts with `-r requirements.txt`).
#
#   make check   lint, then the unit and AppTest tests in parallel: no browser, no S3 server, no
#                server process, nothing marked slow (marks: pyproject.toml, tests/conftest.py);
#                the property tests run a quarter of their random cases (tests/support/
#                properties.py). The fast answer while working: 897 tests in 91-92 s here, quiet
#                (2026-12-03 19:50 UTC; this shared machine's speed moves by a quarter from hour to
#                hour: docs/development.md, "Tests").
#   make test    lint, then every test in parallel, printing the 25 slowest; what CI runs
#                (.ci/run). Minutes, not seconds (1,051 tests in 7m18, quiet, 2026-12-03 19:58 UTC).

PORT ?= 8501
# Loopback only by default: `make run HOST=0.0.0.0` to serve other machines (see docs/deploy.md,
# "Deploying for the team": sign-in, the wall token and TLS first).
HOST ?= 127.0.0.1
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-app
DEV_STAMP := $(VENV)/.installed-dev
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
# pytest-xdist workers. `make test`: more than the cores pays off, as its browser, server and S3
# tests mostly wait; `make check` mostly computes, but its CLI and sandbox tests wait on child
# processes, so one worker more than the cores was fastest on a quiet machine here (2 cores,
# 2026-12-03 17:30 UTC: 110 s with 2 workers, 90 s with 3, 97 s with 4). `make test` with 4
# workers: 6m25 at 23:17 UTC, 7m02 with 3 right after (docs/development.md, "Tests").
# `make test WORKERS=1` runs one test at a time.
WORKERS ?= 4
CHECK_WORKERS ?= 3
CHECK_MARKS := not browser and not s3 and not server and not slow

.PHONY: venv dev run check test lint format bench screenshots clean distclean

venv: $(STAMP)
dev: $(DEV_STAMP)

$(BIN)/python:
	@echo "creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(STAMP): requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt requirements-engines.txt | $(BIN)/python
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $(STAMP) $@

# No data source configured => the app serves demo data. `prepare` builds and syncs the demo once
# before the server answers (10 s or so on the first run, reused after), so the first page draws
# its charts at once instead of waiting for that build; it does nothing for a bucket or folder.
# A failure there is printed and the app still starts (it retries on its first page).
run: venv
	-$(BIN)/python -m o11y_data prepare
	$(BIN)/streamlit run app.py --server.headless true --server.address $(HOST) --server.port $(PORT)

# pytest caches each test module's rewritten assertions as bytecode (about 9 s of CPU per worker
# otherwise); a PYTHONDONTWRITEBYTECODE set in the environment would forbid that cache.
check test: export PYTHONDONTWRITEBYTECODE =
check: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n $(CHECK_WORKERS) --dist worksteal -m "$(CHECK_MARKS)" \
		--hypothesis-profile=check

# Whole modules go to the workers in the order tests/support/ordering.py puts them: the modules with
# browser, server or slow tests first, so the run ends on short tests instead of one worker
# finishing a 40 s browser test alone (--no-loadscope-reorder keeps that order; xdist would sort
# by test count). A module's fixtures (a server, a synced store) are then built once.
test: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

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

# The README's pictures (docs/img/*.png), taken from the demo at 1440x900 in headless Chromium.
screenshots: dev
	$(BIN)/python -m scripts.screenshots --out docs/img

clean:
	rm -rf .pytest_cache .ruff_cache .hypothesis tests/screenshots
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

# Also removes the virtualenv.
distclean: clean
	rm -rf $(VENV)
