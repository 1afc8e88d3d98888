# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.run-deps
DEV_STAMP := $(VENV)/.dev-deps
WEB_STAMP := web/node_modules/.stamp
PYTEST_ARGS ?=

.PHONY: run test test-quick lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml setup.py server/media/_rtp_send.c server/media/_rtp_receive.c server/media/_transport_feedback.c | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(DEV_STAMP): pyproject.toml setup.py server/media/_rtp_send.c server/media/_rtp_receive.c server/media/_transport_feedback.c | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(RUN_STAMP)

$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: $(RUN_STAMP) $(WEB_STAMP)
	$(PY) -m server migrate
	$(PY) -m server serve

# --durations: the slowest tests at the end of the report, to keep the suite in budget
test: $(DEV_STAMP) $(WEB_STAMP)
	$(PY) -m pytest --durations=25 $(PYTEST_ARGS)

# The quick subset for a developer: everything but the slow suites (browser, SIP, multi-node).
test-quick: $(DEV_STAMP) $(WEB_STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check server tests loadtests benchmarks
	$(VENV)/bin/ruff format --check server tests loadtests benchmarks
	$(VENV)/bin/mypy

format: $(DEV_STAMP)
	$(VENV)/bin/ruff check --fix server tests loadtests benchmarks
	$(VENV)/bin/ruff format server tests loadtests benchmarks

bench: $(DEV_STAMP) $(WEB_STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) web/node_modules
