"""The enqueue debounce and the lingering task: fast anchoring without a message per write.

Runs on both passes (SQLite with the filesystem broker, PostgreSQL with Redis)."""

import time

import pytest
from django.db import transaction

from ledger import anchoring, events
from ledger.models import Entry
from tests.conftest import wait_until

pytestmark = pytest.mark.worker


def _record(patient) -> None:
    with transaction.atomic():
        events.event_record(
            kind="chart.read", hospital=patient.hospital_id, subject=patient, actor=None,
            patient=patient,
        )  # fmt: skip


def test_writes_within_the_debounce_ride_on_the_lingering_task(start_worker, hospital_a):
    from tests import factories

    patient = factories.PatientFactory(hospital=hospital_a)
    anchoring.ledger_anchor_pending()  # the factory's own events (events are never deleted)
    base = Entry.objects.count()
    worker = start_worker()
    anchoring._last_enqueue = float("-inf")
    _record(patient)  # enqueues
    _record(patient)  # within 0.25 s: no new message
    wait_until(lambda: Entry.objects.count() == base + 2, timeout=60, message=worker.output)
    log = worker.output()
    assert log.count("ledger.anchor[") >= 1
    received = log.count("Task ledger.anchor[")
    # Once the task has gone idle and the debounce has passed, the next write enqueues again.
    time.sleep(anchoring.TASK_IDLE_TAIL + anchoring.ENQUEUE_DEBOUNCE + 0.5)
    _record(patient)
    wait_until(lambda: Entry.objects.count() == base + 3, timeout=60, message=worker.output)
    wait_until(
        lambda: worker.output().count("Task ledger.anchor[") > received,
        timeout=30,
        message=worker.output,
    )
    assert received == 1, worker.output()
