"""PostgreSQL as hospitals run it: Django's connection pool (on in the PostgreSQL pass),
parameters bound on the server, and a database that drops the web's sessions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from django.conf import settings
from django.db import connection

from tests import factories

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.postgres


def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's sessions and binding; this runs in the PostgreSQL pass")


def _env_on(name: str, default: str) -> bool:
    return os.environ.get(name, default).strip().lower() not in ("", "0", "false", "no", "off")


def test_postgresql_connections_are_configured_as_the_environment_says(db):
    """Django's pool unless DB_POOL=false; parameters bound on the server with
    DB_SERVER_SIDE_BINDING=true (the run below checks it is really on there)."""
    _postgres_only()
    options = settings.DATABASES["default"]["OPTIONS"]
    pool = options.get("pool")
    assert bool(pool) == _env_on("DB_POOL", "true")
    assert bool(options.get("server_side_binding")) == _env_on("DB_SERVER_SIDE_BINDING", "")
    if pool:
        # Django's rule for its pool: no persistent connections beside it.
        assert settings.DATABASES["default"]["CONN_MAX_AGE"] == 0
        assert connection.pool is not None


def _terminate_other_sessions() -> int:
    """Ends every session of the test database but this thread's (the live server's
    sessions, idle in the pool or held between requests), as a failover would."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_the_next_requests_after_the_database_drops_the_sessions_are_served(
    live_server, client, sign_in, clinician_a, hospital_a
):
    _postgres_only()
    patient = factories.PatientFactory(hospital=hospital_a)
    sign_in(client, clinician_a)
    http = requests.Session()
    http.cookies.set(
        settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value
    )
    chart = f"{live_server.url}/provider/patients/{patient.pk}/"
    patients = f"{live_server.url}/provider/"
    for url in (chart, patients):
        response = http.get(url, allow_redirects=False, timeout=30)
        assert response.status_code == 200, url
    assert _terminate_other_sessions() >= 1
    for url in (chart, patients, chart):
        response = http.get(url, allow_redirects=False, timeout=30)
        assert response.status_code == 200, (url, response.status_code)


# The behaviour tests of the key requests: the chart, the patient list, creating records,
# the REST API and FHIR.
KEY_REQUEST_TESTS = [
    f"{Path(__file__).relative_to(ROOT)}::"
    "test_postgresql_connections_are_configured_as_the_environment_says",
    "tests/provider/test_access.py",
    "tests/provider/test_forms.py",
    "tests/provider/test_queries.py",
    "tests/api/test_staff.py",
    "tests/fhir/test_views.py",
]


def test_key_requests_work_with_parameters_bound_on_the_server(db):
    """The same behaviour tests with Django's OPTIONS["server_side_binding"] on (set from the
    environment, DB_SERVER_SIDE_BINDING, as a deployment sets it), statements prepared from
    their first run on a connection (DB_PREPARE_THRESHOLD=1), and the pool on: in a pytest
    process of their own, on a test database of their own."""
    _postgres_only()
    url = urlsplit(os.environ["DATABASE_URL"])
    env = {
        **os.environ,
        # Its own database: pytest-django makes test_<name>_binding beside this run's.
        "DATABASE_URL": urlunsplit(url._replace(path=url.path.rstrip("/") + "_binding")),
        "DB_POOL": "true",
        "DB_SERVER_SIDE_BINDING": "true",
        "DB_PREPARE_THRESHOLD": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly", "-p", "no:cacheprovider",
         "--create-db", *KEY_REQUEST_TESTS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout.splitlines()[-1]
