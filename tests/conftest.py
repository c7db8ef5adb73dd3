from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django_otp.oath import totp

from portal.accounts.middleware import AUTH_AT, IDLE_SECONDS, SEEN_AT
from portal.accounts.models import TOTPDevice
from portal.tenancy.models import Role
from tests import factories

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def hospital_a(db):
    return factories.HospitalFactory(slug="st-mary", name="St Mary's Hospital")


@pytest.fixture
def hospital_b(db):
    """The second hospital that every fixture has (Zulip's second realm)."""
    return factories.HospitalFactory(slug="riverside", name="Riverside General")


@pytest.fixture
def make_staff(db):
    def make(hospital, role=Role.CLINICIAN, **user_kwargs):
        user = factories.UserFactory(**user_kwargs)
        factories.MembershipFactory(user=user, hospital=hospital, role=role)
        factories.TOTPDeviceFactory(user=user)
        return user

    return make


@pytest.fixture
def clinician_a(make_staff, hospital_a, hospital_b):
    return make_staff(hospital_a, Role.CLINICIAN)


@pytest.fixture
def clinician_b(make_staff, hospital_a, hospital_b):
    return make_staff(hospital_b, Role.CLINICIAN)


@pytest.fixture
def make_patient_user(db):
    def make(*hospitals, **patient_kwargs):
        user = factories.UserFactory()
        regs = [
            factories.PatientFactory(hospital=h, user=user, **patient_kwargs) for h in hospitals
        ]
        return user, regs

    return make


def current_code(user, *, steps_ahead: int = 0) -> str:
    """The current code of the user's (first) confirmed device; `steps_ahead=1` gives the
    next time step's, which the device also accepts (tolerance 1) once the current one was
    used: a code is accepted only once."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()
    code = totp(device.bin_key, step=device.step, t0=device.t0, drift=steps_ahead)
    return f"{code:0{device.digits}d}"


def login_through_forms(client, user, password=factories.PASSWORD, code: str | None = None):
    """The real log-in: password form, then (if asked) the TOTP form."""
    response = client.post("/accounts/login/", {"username": user.username, "password": password})
    if response.status_code == 302 and response.url.endswith("/accounts/login/verify/"):
        response = client.post("/accounts/login/verify/", {"token": code or current_code(user)})
    return response


@pytest.fixture
def sign_in():
    """Signs a user in as the log-in views would (session limits and OTP included),
    without spending a TOTP code, which may be used only once per 30 s window."""

    def do(client, user, *, verified: bool = True):
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        session = client.session
        now = time.time()
        session[AUTH_AT] = now
        session[SEEN_AT] = now
        from portal.accounts.selectors import user_idle_timeout

        session[IDLE_SECONDS] = user_idle_timeout(user=user).total_seconds()
        if verified:
            device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()
            if device is not None:
                session["otp_device_id"] = device.persistent_id
        session.save()
        return client

    return do


# --- a real Celery worker process ------------------------------------------------------------


def worker_database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


# The application_name of the test workers' database sessions (see the fault tests).
WORKER_APPLICATION_NAME = "portal-test-worker"


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["DATABASE_URL"] = worker_database_url()
    env["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
    env["DB_APPLICATION_NAME"] = WORKER_APPLICATION_NAME
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def purge_broker() -> None:
    from portal.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")


class WorkerProcess:
    """A real `celery worker` (or, with beat=True, `celery beat`) in its own process group,
    so that it can be SIGKILLed whole without touching the test runner."""

    def __init__(
        self, *, concurrency: int = 1, name: str = "w1", log: Path, beat: bool = False,
        extra_env: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.log_path = log
        self.name = name
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        if beat:
            args = ["beat", "--loglevel", "INFO", "-s", str(log.with_suffix(".schedule"))]
        else:
            args = [
                "worker", "--loglevel", "INFO", "--concurrency", str(concurrency),
                "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle",
                "--without-heartbeat",
            ]  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", *args],
            cwd=ROOT, env={**worker_env(), **(extra_env or {})}, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once (no warm or cold shutdown)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(ProcessLookupError):  # pool children left behind
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")


def wait_until(predicate, timeout: float = 30, interval: float = 0.1, message=""):
    """Poll until predicate() is truthy; `message` may be a callable (read on failure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    text = message() if callable(message) else message
    raise AssertionError(f"timed out after {timeout}s: {text}")


@pytest.fixture
def start_worker(transactional_db, tmp_path):
    """Starts real `celery worker` processes against the test database and broker."""
    purge_broker()
    workers: list[WorkerProcess] = []

    def start(**kwargs) -> WorkerProcess:
        kwargs.setdefault("name", f"w{len(workers) + 1}")
        worker = WorkerProcess(log=tmp_path / f"{kwargs['name']}.log", **kwargs)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


# --- PostgreSQL: the ledger's TRUNCATE trigger vs. pytest-django's flush ---------------------


@pytest.fixture(autouse=True)
def _ledger_triggers_and_flush(request, django_db_blocker):
    """Transactional tests end with a flush (TRUNCATE of every table), which the ledger's
    append-only triggers rightly refuse. For that flush only, the test session acts as a
    replication client (superuser-only), for which ordinary triggers do not fire; every test
    starts with the default role again, so trigger tests see the triggers."""
    uses_db = any(
        name in request.fixturenames for name in ("db", "transactional_db", "live_server")
    ) or request.node.get_closest_marker("django_db")
    if uses_db and connection.vendor == "sqlite":
        yield from _sqlite_ledger_triggers_and_flush(request, django_db_blocker)
        return
    if not uses_db or connection.vendor != "postgresql":
        yield
        return
    transactional = "transactional_db" in request.fixturenames or "live_server" in (
        request.fixturenames
    )
    marker = request.node.get_closest_marker("django_db")
    if marker and marker.kwargs.get("transaction"):
        transactional = True
    request.getfixturevalue("django_db_setup")  # connect to the test database, not the real one
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = DEFAULT")
    if transactional:
        request.getfixturevalue("transactional_db")
    yield
    if transactional:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")


@pytest.fixture(autouse=True)
def _forget_flushed_keys(request):
    """A transactional test ends with a flush that deletes the committed keys (hospital data
    keys, the site key) this process has cached; a worker started by the next test would
    create new ones and digest under another key. Production never deletes a key."""
    yield
    if _transactional(request):
        from portal.records.crypto import clear_key_cache

        clear_key_cache()


def _transactional(request) -> bool:
    marker = request.node.get_closest_marker("django_db")
    return (
        "transactional_db" in request.fixturenames
        or "live_server" in request.fixturenames
        or bool(marker and marker.kwargs.get("transaction"))
    )


def _sqlite_ledger_triggers_and_flush(request, django_db_blocker):
    """SQLite's flush is a DELETE of every row, which the ledger's triggers refuse: they are
    dropped just before it and created again before the next test (tests/tamper.py)."""
    from tests import tamper

    request.getfixturevalue("django_db_setup")
    with django_db_blocker.unblock():
        tamper.after_flush()
    transactional = _transactional(request)
    if transactional:
        request.getfixturevalue("transactional_db")
    yield
    if transactional:
        with django_db_blocker.unblock():
            tamper.before_flush()


@pytest.fixture(scope="session", autouse=True)
def _close_stray_database_sessions(django_db_setup, django_db_blocker):
    """Worker processes killed by the fault tests can leave a backend behind for a moment;
    end them before pytest-django drops the test database, so the drop never fails."""
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


# --- consent: a patient account with records at St Mary's, staff at both hospitals ----------


@pytest.fixture
def consent_world(make_staff, hospital_a, hospital_b):
    """A patient with a portal account at St Mary's (vitals, labs, a problem, a note and a
    restricted note), a second patient there, a clinician and an admin at each hospital."""
    import datetime as _dt
    from decimal import Decimal as _Decimal

    from django.utils import timezone

    from portal.records import services as _record_services
    from portal.records.models import ClinicalNote, Observation
    from portal.tenancy.scoping import unscoped as _unscoped

    clinician_a = make_staff(hospital_a, Role.CLINICIAN, first_name="Ann", last_name="Shaw")
    clinician_b = make_staff(hospital_b, Role.CLINICIAN, first_name="Rui", last_name="Costa")
    admin_a = make_staff(hospital_a, Role.HOSPITAL_ADMIN, email="admin-a@example.org")
    admin_b = make_staff(hospital_b, Role.HOSPITAL_ADMIN, email="admin-b@example.org")
    account = factories.UserFactory(email="pat@example.org")
    other_account = factories.UserFactory()
    now = timezone.now()
    with _unscoped():
        patient = _record_services.patient_register(
            hospital=hospital_a, mrn="SM-100", given_name="Pat", family_name="Jones",
            birth_date=_dt.date(1970, 2, 3), user=account, actor=clinician_a,
        )  # fmt: skip
        other = _record_services.patient_register(
            hospital=hospital_a, mrn="SM-200", given_name="Olga", family_name="Other",
            birth_date=_dt.date(1960, 1, 1), user=other_account, actor=clinician_a,
        )  # fmt: skip
        vital = _record_services.observation_create(
            actor=clinician_a, patient=patient, code="8867-4", display="Heart rate",
            value=_Decimal(71), unit="/min", effective_at=now - _dt.timedelta(hours=3),
        )  # fmt: skip
        lab = _record_services.observation_create(
            actor=clinician_a, patient=patient, code="4548-4", display="Hemoglobin A1c",
            value=_Decimal("6.1"), unit="%", effective_at=now - _dt.timedelta(hours=2),
            category=Observation.Category.LABORATORY,
        )  # fmt: skip
        note = _record_services.record_create(
            actor=clinician_a, patient=patient, model=ClinicalNote, title="Visit", text="Well."
        )
        secret = _record_services.record_create(
            actor=clinician_a, patient=patient, model=ClinicalNote, title="Therapy",
            text="Psychotherapy session.", restricted=True,
        )  # fmt: skip
        other_vital = _record_services.observation_create(
            actor=clinician_a, patient=other, code="8867-4", display="Heart rate",
            value=_Decimal(90), unit="/min", effective_at=now - _dt.timedelta(hours=1),
        )  # fmt: skip
    return {
        "a": hospital_a, "b": hospital_b, "clinician_a": clinician_a, "clinician_b": clinician_b,
        "admin_a": admin_a, "admin_b": admin_b, "account": account, "patient": patient,
        "other_account": other_account, "other": other, "vital": vital, "lab": lab,
        "note": note, "secret": secret, "other_vital": other_vital,
    }  # fmt: skip


@pytest.fixture
def every_grant(consent_world, make_staff):
    """consent_world's patient (St Mary's) with one Riverside user per kind of grant: the
    grant-shape matrix that every interface must answer alike (tests/records/test_access.py,
    tests/security/test_has_perm_agrees_with_the_portal.py)."""
    import datetime as dt

    from django.contrib.auth.models import Group
    from django.utils import timezone

    from consent import services as consent_services
    from portal.records import grants
    from portal.records import services as records_services
    from portal.records.access import PROXY_PREFIX
    from portal.tenancy.scoping import unscoped

    w = consent_world
    patient, b, now = w["patient"], w["b"], timezone.now()
    hour = dt.timedelta(hours=1)
    users = {
        "home_clinician": w["clinician_a"],  # the hospital-wide group
        "home_admin": w["admin_a"],  # a hospital admin: no chart without a grant
        "other_hospital": w["clinician_b"],  # nothing at all
        "owner": w["account"],  # the patient: their portal, not a staff chart
    }
    for name in (
        "consent_all", "consent_labs", "department", "expired", "scheduled", "revoked",
        "break_glass", "break_glass_ended", "proxy", "care_team", "note_granted",
    ):  # fmt: skip
        users[name] = make_staff(b, Role.NURSE if name == "department" else Role.CLINICIAN)
    users["care_team"] = make_staff(w["a"], Role.NURSE)
    users["note_granted"] = make_staff(w["a"], Role.CLINICIAN)
    team = Group.objects.create(name="security-cardiology")
    users["department"].groups.add(team)
    with unscoped():
        consent_services.consent_grant(
            patient=patient, actor=w["account"], grantee_kind="practitioner",
            grantee_user=users["consent_all"],
        )  # fmt: skip
        consent_services.consent_grant(
            patient=patient, actor=w["account"], grantee_kind="practitioner",
            grantee_user=users["consent_labs"], scope_all=False, categories=["labs"],
        )  # fmt: skip
        revoked = consent_services.consent_grant(
            patient=patient, actor=w["account"], grantee_kind="practitioner",
            grantee_user=users["revoked"],
        )  # fmt: skip
        consent_services.consent_revoke(consent=revoked, actor=w["account"])
        grants.chart_grant(
            patient=patient, group=team, codenames=["view_chart_vitals", "view_chart_notes"],
            source="consent:55555555-5555-5555-5555-555555555555",
        )  # fmt: skip
        grants.chart_grant(
            patient=patient, user=users["expired"], codenames=["view_patient"],
            source="consent:22222222-2222-2222-2222-222222222222", expires_at=now - hour,
        )  # fmt: skip
        grants.chart_grant(
            patient=patient, user=users["scheduled"], codenames=["view_patient"],
            source="consent:33333333-3333-3333-3333-333333333333", starts_at=now + hour,
        )  # fmt: skip
        consent_services.break_glass_open(
            user=users["break_glass"], user_hospital=b, patient=patient,
            reason="Unconscious in the emergency department",
        )  # fmt: skip
        grants.chart_grant(
            patient=patient, user=users["break_glass_ended"], codenames=["view_patient"],
            source="breakglass:66666666-6666-6666-6666-666666666666", expires_at=now - hour,
        )  # fmt: skip
        grants.chart_grant(
            patient=patient, user=users["proxy"], codenames=["view_patient"],
            source=f"{PROXY_PREFIX}44444444-4444-4444-4444-444444444444",
        )  # fmt: skip
        grants.note_grant_write(
            note=w["secret"], user=users["proxy"],
            source=f"{PROXY_PREFIX}44444444-4444-4444-4444-444444444444",
        )  # fmt: skip
        # A chart restricted to its care team: the hospital-wide group no longer opens it.
        records_services.patient_set_restricted(
            patient=w["other"], restricted=True, actor=w["admin_a"]
        )
        records_services.care_team_add(
            patient=w["other"], user=users["care_team"], actor=w["clinician_a"]
        )
        records_services.note_grant(
            note=w["secret"], user=users["note_granted"], actor=w["clinician_a"]
        )
        grants.note_grant_write(note=w["secret"], user=users["expired"], expires_at=now - hour)
    return w, users
