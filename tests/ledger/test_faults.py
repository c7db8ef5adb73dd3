"""Fault injection on real PostgreSQL, Redis and real worker processes.

After each fault: no event lost, none duplicated, and the log verifies.
These run in the PostgreSQL + Redis pass of `make test` (required under CI=true).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import time

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction

from ledger import anchoring, events
from ledger.models import Entry, Event, LogHead
from ledger.subjects import digest_of
from ledger.tasks import anchor
from ledger.verification import ledger_verify
from portal.records import services as records_services
from tests.conftest import WORKER_APPLICATION_NAME, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.postgres]

REDIS_START = [
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
    "--save", "", "--appendonly", "no",
]  # fmt: skip


@pytest.fixture
def pg_and_redis(transactional_db):
    if connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("fault injection needs PostgreSQL and Redis: it runs in that pass")


@pytest.fixture
def patient(pg_and_redis, hospital_a, hospital_b):
    import datetime as dt

    return records_services.patient_register(
        hospital=hospital_a, mrn="FAULT-1", given_name="Fay", family_name="Ult",
        birth_date=dt.date(1990, 1, 1),
    )  # fmt: skip


def record_events(patient, n: int, per_transaction: int = 500) -> None:
    digest = digest_of(patient, hospital_id=patient.hospital_id)
    for start in range(0, n, per_transaction):
        with transaction.atomic():
            for _ in range(min(per_transaction, n - start)):
                events.event_record(
                    kind="chart.read", hospital=patient.hospital_id, subject=patient,
                    actor=None, digest=digest, patient=patient,
                )  # fmt: skip


def pending() -> int:
    return Event.objects.filter(status=Event.PENDING).count()


def assert_log_complete(expected: int) -> None:
    assert Event.objects.count() == expected
    assert pending() == 0
    assert Entry.objects.count() == expected, "an event was lost or duplicated"
    assert Entry.objects.values("event").distinct().count() == expected
    report = ledger_verify()
    assert report.findings == [], report.findings


def wait_drained(workers, timeout: float = 120) -> None:
    wait_until(
        lambda: pending() == 0,
        timeout=timeout,
        interval=0.25,
        message=lambda: (
            f"{pending()} still pending\n" + "\n".join(w.output()[-2500:] for w in workers)
        ),
    )


def worker_backend_in_batch() -> bool:
    """True while some other session is inside an anchoring transaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction') "
            "AND (query ILIKE '%%ledger_entry%%' OR query ILIKE '%%ledger_node%%' "
            "OR query ILIKE '%%ledger_loghead%%' OR query ILIKE '%%ledger_event%%')"
        )
        return cursor.fetchone()[0] > 0


def test_worker_sigkilled_mid_batch(patient, start_worker):
    record_events(patient, 20_000)
    total = Event.objects.count()
    victim = start_worker(name="victim")
    wait_until(worker_backend_in_batch, timeout=60, interval=0.005, message=victim.output)
    victim.kill()
    assert pending() > 0, "the worker finished before it could be killed"
    anchored_before = Entry.objects.count()
    # The killed batch rolled back as a whole: the log holds only complete batches.
    assert anchored_before % anchoring.BATCH_SIZE == 0 or anchored_before == total - pending()
    survivor = start_worker(name="survivor")
    beat = start_worker(name="beat", beat=True, extra_env={"LEDGER_SWEEP_SECONDS": "1"})
    wait_drained([survivor, beat])
    assert_log_complete(total)


def test_redis_stopped_and_restarted_without_persistence(patient, start_worker):
    # The patient's registration events (the patient, its permission rows) come first.
    registered = Event.objects.count()
    worker = start_worker(name="w")
    beat = start_worker(name="beat", beat=True, extra_env={"LEDGER_SWEEP_SECONDS": "1"})
    record_events(patient, 300)
    wait_drained([worker, beat])
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        # The server closes the connection as it goes down.
        with contextlib.suppress(redis.exceptions.ConnectionError):
            client.shutdown(nosave=True)
        wait_until(lambda: _redis_down(client), timeout=10, message="Redis did not stop")
        started = time.monotonic()
        record_events(patient, 300, per_transaction=100)  # commits although Redis is down
        assert time.monotonic() - started < 30, "recording blocked on the broker"
        assert pending() == 300
    finally:
        subprocess.run(REDIS_START, check=True, capture_output=True)
        wait_until(lambda: not _redis_down(client), timeout=15, message="Redis did not start")
    # Nothing was persisted: every queued message is gone; the sweeper re-enqueues.
    wait_drained([worker, beat], timeout=180)
    assert_log_complete(registered + 600)


def _redis_down(client: redis.Redis) -> bool:
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        return True
    return False


def test_worker_database_connection_terminated(patient, start_worker):
    record_events(patient, 20_000)
    total = Event.objects.count()
    worker = start_worker(name="w")
    wait_until(worker_backend_in_batch, timeout=60, interval=0.005, message=worker.output)
    with connection.cursor() as cursor:
        cursor.execute(
            # Only the workers' sessions: the live server thread of another test module
            # (session-scoped) shares this database and must survive.
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = %s",
            [WORKER_APPLICATION_NAME],
        )
        assert cursor.fetchone()[0] >= 1
    beat = start_worker(name="beat", beat=True, extra_env={"LEDGER_SWEEP_SECONDS": "1"})
    wait_drained([worker, beat])
    assert_log_complete(total)
    assert worker.proc.poll() is None, "the worker died instead of reconnecting"


def test_same_message_delivered_twice(patient, start_worker):
    record_events(patient, 3_000)
    total = Event.objects.count()
    for _ in range(2):
        anchor.apply_async(task_id="duplicate-delivery-0001")
    worker = start_worker(name="w", concurrency=2)
    wait_drained([worker])
    wait_until(
        lambda: worker.output().count("duplicate-delivery-0001] succeeded") == 2,
        timeout=30,
        message=worker.output,
    )
    assert_log_complete(total)


def test_two_workers_at_once(patient, start_worker):
    workers = [start_worker(name="a", concurrency=2), start_worker(name="b", concurrency=2)]
    # Both must be consuming before the messages go out, or the first one up takes them all.
    for worker in workers:
        wait_until(lambda w=worker: " ready." in w.output(), timeout=60, message=worker.output)
    record_events(patient, 6_000, per_transaction=200)
    for _ in range(10):
        anchor.delay()
    wait_drained(workers)
    assert_log_complete(Event.objects.count())

    # A task logs "succeeded" only after its idle tail, which can outlast the drain.
    def runs() -> list[int]:
        return [w.output().count("] succeeded") for w in workers]

    wait_until(
        lambda: all(runs()), timeout=60,
        message=lambda: f"both workers should have anchored: {runs()}",
    )  # fmt: skip


# --- a worker stopped (SIGSTOP) while it holds the log head's lock -------------------------

VICTIM_APPLICATION_NAME = "portal-test-victim"


def head_lock_holders() -> dict[int, str]:
    """pid -> state of the victim's sessions inside a transaction that took the log head's
    lock (SELECT ... FOR UPDATE holds ROW SHARE on the table until the transaction ends)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.pid, a.state FROM pg_stat_activity a "
            "JOIN pg_locks l ON l.pid = a.pid AND l.granted "
            "JOIN pg_class c ON c.oid = l.relation "
            "WHERE a.datname = current_database() AND a.application_name = %s "
            "AND c.relname = 'ledger_loghead' AND l.mode = 'RowShareLock'",
            [VICTIM_APPLICATION_NAME],
        )
        return dict(cursor.fetchall())


def session_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] > 0


def start_victim_stopped_holding_the_head(start_worker):
    """A real worker, SIGSTOPped whole (main process and pool child, so Celery's own time
    limits cannot help) at a moment when its session holds the head lock, idle in its
    transaction: the soak's hung worker. Returns it and that session's pid."""
    # The head row, as migrations leave it (the test database was flushed): a first batch
    # that found no row to lock would hold no lock worth the name.
    LogHead.objects.get_or_create(pk=1)
    victim = start_worker(name="victim", extra_env={"DB_APPLICATION_NAME": VICTIM_APPLICATION_NAME})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if head_lock_holders():
            os.killpg(victim.proc.pid, signal.SIGSTOP)
            time.sleep(0.3)  # a statement in flight finishes; then the session waits on us
            for pid, state in head_lock_holders().items():
                if state == "idle in transaction":
                    return victim, pid
            os.killpg(victim.proc.pid, signal.SIGCONT)  # caught between batches: again
        time.sleep(0.002)
    raise AssertionError("never caught the worker holding the head lock\n" + victim.output())


def wait_for_progress(since: int, timeout: float) -> float:
    """Seconds until fewer than `since` events are pending (anchoring has taken over)."""
    started = time.monotonic()
    wait_until(
        lambda: pending() < since,
        timeout=timeout,
        interval=0.05,
        message=f"anchoring stalled: {since} events still pending",
    )
    return time.monotonic() - started


def test_worker_stopped_holding_the_head_lock_another_worker_takes_over(patient, start_worker):
    record_events(patient, 20_000)
    total = Event.objects.count()
    victim, session = start_victim_stopped_holding_the_head(start_worker)
    try:
        left = pending()
        assert left > 0, "the victim finished before it could be stopped"
        survivor = start_worker(name="survivor")
        anchor.delay()  # the survivor's own message (the victim holds its own, unacked)
        # The server ends the stopped session after LEDGER_ANCHOR_IDLE_TIMEOUT (its batch
        # rolls back); the survivor's lock waits give up after LEDGER_ANCHOR_LOCK_TIMEOUT and
        # retry, so it takes over within seconds (a worker's start included), not when the
        # victim wakes up.
        wait_for_progress(left, timeout=20)
        wait_drained([survivor], timeout=60)
        assert not session_alive(session), "the server did not end the stopped session"
    finally:
        os.killpg(victim.proc.pid, signal.SIGCONT)
    # The victim wakes up on a session the server has ended: its batch is gone, nothing it
    # held reaches the log twice; it reconnects and anchors on with the survivor.
    record_events(patient, 500)
    wait_drained([survivor, victim], timeout=60)
    time.sleep(1)  # let the woken task finish its retry
    assert_log_complete(total + 500)


def test_worker_stopped_holding_the_head_lock_manage_anchor_takes_over(patient, start_worker):
    record_events(patient, 20_000)
    total = Event.objects.count()
    victim, session = start_victim_stopped_holding_the_head(start_worker)
    try:
        assert pending() > 0, "the victim finished before it could be stopped"
        started = time.monotonic()
        call_command("anchor", stdout=io.StringIO(), stderr=io.StringIO())
        assert time.monotonic() - started < 20, "manage.py anchor waited for the hung worker"
        assert pending() == 0
        assert not session_alive(session), "the server did not end the stopped session"
    finally:
        os.killpg(victim.proc.pid, signal.SIGCONT)
    time.sleep(2)  # the woken worker retries on a fresh session and finds nothing pending
    assert_log_complete(total)
