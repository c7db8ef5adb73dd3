# The two commands: `make run` (the demo, or production with DATABASE_URL/CELERY_BROKER_URL)
# and `make test`. Both create the virtualenv and install what they need.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv run test lint format seed totp bench clean

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing dependencies into $(VENV) ..."
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

# Starts the web server, a Celery worker and Celery beat; Ctrl-C stops all of them.
run: venv
	@mkdir -p .local && { test -f .local/demo.env || printf '# made by make run: this checkout is the local demo\nDEBUG=true\n' > .local/demo.env; }
	@DEBUG=$${DEBUG:-true} $(PY) -m portal.run

# ruff, makemigrations --check, pytest on SQLite, then on PostgreSQL + Redis when reachable
# (required when CI=true).
test: venv
	@bash .ci/test.sh

lint: venv
	@$(PY) -m ruff check . && $(PY) -m ruff format --check .

format: venv
	@$(PY) -m ruff check --fix . && $(PY) -m ruff format .

# The current TOTP code of a demo account: make totp USER=stmary.clinician
totp: venv
	@DEBUG=$${DEBUG:-true} $(PY) manage.py totp_code $(USER)

seed: venv
	@DEBUG=$${DEBUG:-true} $(PY) manage.py seed_demo

clean:
	rm -rf $(VENV) .local staticfiles .pytest_cache .ruff_cache .hypothesis
