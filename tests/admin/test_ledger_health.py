"""The ledger health page: checkpoint, backlog, lag chart (SVG), last verification, and
"verify now" run by a real Celery worker with its progress recorded."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from ledger import anchoring
from ledger.models import Event, VerificationRun
from ledger.runs import anchoring_lag_buckets, verification_run_execute, verification_run_start
from tests.conftest import wait_until
from tests.tamper import tamper


def test_health_page_for_auditors(client, sign_in, world, auditor):
    pending = anchoring.pending_count()
    assert pending > 0
    sign_in(client, auditor)
    page = client.get("/admin/ledger/health/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="pending">' + str(pending) in html
    assert "No checkpoint yet." in html and "No verification has finished yet." in html
    anchoring.ledger_anchor_pending()
    html = client.get("/admin/ledger/health/").content.decode()
    assert 'id="pending">0' in html
    assert f'id="checkpoint-size">{Event.objects.count()}' in html
    assert "<svg" in html and 'class="p95"' in html and "Anchoring lag over" in html


def test_lag_buckets(world):
    anchoring.ledger_anchor_pending()
    now = timezone.now()
    events = list(Event.objects.order_by("id"))
    stamp = connection.ops.adapt_datetimefield_value
    # Times in the past: facts the database guards, so set past its triggers.
    for i, event in enumerate(events):
        tamper(
            "UPDATE ledger_event SET recorded_at = %s, anchored_at = %s WHERE id = %s",
            (
                stamp(now - dt.timedelta(minutes=30) + dt.timedelta(seconds=i)),
                stamp(now - dt.timedelta(minutes=30) + dt.timedelta(seconds=i + 1 + i % 3)),
                event.pk,
            ),
        )
    tamper(
        "UPDATE ledger_event SET recorded_at = %s WHERE id = %s",
        (stamp(now - dt.timedelta(hours=5)), events[0].pk),
    )
    buckets = anchoring_lag_buckets(hours=3, now=now)
    assert sum(b["count"] for b in buckets) == len(events) - 1
    assert all(1.0 <= b["p50"] <= b["p95"] <= 3.0 for b in buckets)


def test_verify_run_in_process_is_idempotent(world, auditor, django_capture_on_commit_callbacks):
    anchoring.ledger_anchor_pending()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = verification_run_start(actor=auditor)
        assert verification_run_start(actor=auditor) == run  # one at a time
    assert len(callbacks) == 1
    done = verification_run_execute(run_id=run.pk)
    assert done.status == VerificationRun.Status.OK
    assert done.result["ok"] is True and done.result["entries"] == Event.objects.count()
    assert verification_run_execute(run_id=run.pk) is None  # finished: nothing to do
    run.refresh_from_db()
    assert run.total > 0 and run.done == run.total and run.stage


@pytest.mark.worker
def test_verify_now_runs_on_a_real_worker(client, sign_in, start_worker, hospital_a, hospital_b):
    from tests import factories

    auditor = factories.UserFactory(is_superuser=True, is_staff=True)
    factories.TOTPDeviceFactory(user=auditor)
    for _ in range(3):
        factories.MembershipFactory(hospital=hospital_a)
    from portal.records import services as records_services
    from portal.tenancy.scoping import unscoped

    with unscoped():
        for i in range(3):
            records_services.patient_register(
                hospital=hospital_a, mrn=f"W-{i}", given_name="Ada", family_name="Lovelace",
                birth_date=dt.date(1980, 1, 2),
            )  # fmt: skip
    anchoring.ledger_anchor_pending()
    worker = start_worker()
    sign_in(client, auditor)
    response = client.post("/admin/ledger/health/verify/")
    assert response.status_code == 302
    run = VerificationRun.objects.get()
    assert run.requested_by == auditor
    page = client.get("/admin/ledger/health/").content.decode()
    if not VerificationRun.objects.get().finished:
        assert 'http-equiv="refresh"' in page  # the page follows the run
    wait_until(
        lambda: VerificationRun.objects.get(pk=run.pk).finished, timeout=90,
        message=worker.output,
    )  # fmt: skip
    run.refresh_from_db()
    assert run.status == VerificationRun.Status.OK, run.result
    assert run.result["entries"] == Event.objects.count() and run.result["finding_count"] == 0
    assert run.done == run.total and run.started_at and run.finished_at
    status = client.get(f"/admin/ledger/health/runs/{run.pk}.json").json()
    assert status["status"] == "ok" and status["percent"] == 100 and status["ok"] is True
    page = client.get("/admin/ledger/health/").content.decode()
    assert f"Last run {run.pk}" in page and "Intact" in page
    assert 'http-equiv="refresh"' not in page
    assert "Task ledger.verify[" in worker.output()
