#!/usr/bin/env bash
# `make test`: lint, migrations check, the suite on SQLite, then on PostgreSQL + Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export PYTHONDONTWRITEBYTECODE=1
source .ci/services.sh

# The browser tests drive Debian's chromium; install it when it is missing (never a download
# of a browser build by a test tool).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium (Debian package) for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "WARNING: chromium is missing and cannot be installed here (need root and apt-get)." >&2
  fi
fi

# The browser walk (tests/browser/) injects axe-core from npm into each page; the version is
# pinned in tests/browser/package-lock.json. Without npm the walk is skipped, except in CI.
if [ ! -d tests/browser/node_modules/axe-core ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "== installing axe-core for the browser walk (npm ci --prefix tests/browser)"
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
  elif [ "${CI:-}" = "true" ]; then
    echo "ERROR: npm is missing: the browser walk needs axe-core (apt-get install npm)." >&2
    exit 1
  else
    echo "WARNING: npm is missing: the browser walk (tests/browser/) will be skipped." >&2
  fi
fi

echo "== ruff"
"$PY" -m ruff check .
"$PY" -m ruff format --check .

echo "== mypy (services, selectors, the ledger's core; config in pyproject.toml)"
env -u DATABASE_URL "$PY" -m mypy

echo "== import-linter (layers and independence; contracts in pyproject.toml)"
"$(dirname "$PY")/lint-imports" --config pyproject.toml

echo "== makemigrations --check"
DJANGO_SETTINGS_MODULE=tests.settings "$PY" manage.py makemigrations --check --dry-run

echo "== pytest on SQLite (filesystem broker)"
env -u DATABASE_URL -u CELERY_BROKER_URL "$PY" -m pytest "$@"

ensure_services
if [ "$SERVICES_UP" = "1" ]; then
  echo "== pytest on PostgreSQL + Redis (Django's connection pool on, as in production)"
  DB_POOL=true DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/portal}" \
  CELERY_BROKER_URL="${TEST_BROKER_URL:-redis://127.0.0.1:6379/15}" \
    "$PY" -m pytest "$@"
else
  echo "== PostgreSQL or Redis not reachable on 127.0.0.1: skipped the PostgreSQL run (CI requires it)"
fi
