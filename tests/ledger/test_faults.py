"""Fault injection on real PostgreSQL, Redis and real worker processes.

After each fault: no event lost, none duplicated, and the log verifies.
These run in the PostgreSQL + Redis pass of `make test` (required under CI=true).
"""

from __future__ import annotations

import contextlib
import subprocess
import time

import pytest
import redis
from django.conf import settings
from django.db import connection, transaction

from ledger import anchoring, events
from ledger.models import Entry, Event
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
    assert_log_complete(601)


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
