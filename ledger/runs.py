"""Writes and reads of verification runs: verify_ledger started from the admin.

`verification_run_start` records a run and enqueues `ledger.verify` after commit;
`verification_run_execute` (the task's body) claims the run, runs `ledger_verify` with a
progress callback that writes the run's progress row, and stores the report's summary.
Idempotent: a finished run, or one another worker is still working on (fresh heartbeat),
is left alone; a run whose worker died (stale heartbeat) is claimed again.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from statistics import quantiles
from typing import Any

from django.contrib.auth.models import User
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone

from ledger.models import Event, VerificationRun
from ledger.verification import ledger_verify

logger = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=2)
PROGRESS_EVERY = 0.5  # seconds between progress writes
MAX_FINDINGS_STORED = 200


def verification_run_in_flight() -> VerificationRun | None:
    """The run waiting or running now (a fresh heartbeat), if any."""
    cutoff = timezone.now() - STALE_AFTER
    for run in VerificationRun.objects.filter(
        status__in=[VerificationRun.Status.PENDING, VerificationRun.Status.RUNNING]
    ).order_by("-id")[:5]:
        fresh = run.heartbeat_at or run.requested_at
        if fresh >= cutoff:
            return run
    return None


@transaction.atomic
def verification_run_start(*, actor: User | None) -> VerificationRun:
    """Start a run unless one is already waiting or running (then that one is returned)."""
    current = verification_run_in_flight()
    if current is not None:
        return current
    run = VerificationRun.objects.create(requested_by=actor, heartbeat_at=timezone.now())
    from ledger.tasks import verify

    transaction.on_commit(lambda: verify.delay(run.pk))
    return run


class _ProgressWriter:
    """verify_ledger's progress callback: `progress_factory(label, total)` gives a context
    manager with `advance(n)`. Writes go through a connection of their own on PostgreSQL,
    because the log pass reads inside a transaction (server-side cursor) and progress
    written there would stay invisible until the pass ends."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.side = None
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            # (Inside a caller's transaction the run row is not committed yet: a second
            # connection could not see it, so progress stays on this one.)
            real = connections[DEFAULT_DB_ALIAS]
            self.side = type(real)(dict(real.settings_dict), alias="verify-progress")
        self.stage = ""
        self.done = 0
        self.total = 0
        self._last = 0.0

    def __call__(self, label: str, total: int) -> _ProgressWriter:
        self.stage, self.done, self.total = label[:64], 0, total
        self._write(force=True)
        return self

    def __enter__(self) -> _ProgressWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._write(force=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._write()

    def _write(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_EVERY:
            return
        self._last = now
        conn = self.side or connection
        table = conn.ops.quote_name(VerificationRun._meta.db_table)
        with conn.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET stage = %s, done = %s, total = %s, heartbeat_at = %s "  # noqa: S608
                "WHERE id = %s",
                [self.stage, self.done, self.total, timezone.now(), self.run_id],
            )

    def close(self) -> None:
        if self.side is not None:
            self.side.close()


def _claim(run_id: int) -> VerificationRun | None:
    with transaction.atomic():
        run = VerificationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.finished:
            return None
        if (
            run.status == VerificationRun.Status.RUNNING
            and run.heartbeat_at
            and (run.heartbeat_at >= timezone.now() - STALE_AFTER)
        ):
            return None  # another worker is on it
        run.status = VerificationRun.Status.RUNNING
        run.started_at = run.heartbeat_at = timezone.now()
        run.save(update_fields=["status", "started_at", "heartbeat_at"])
        return run


def verification_run_execute(*, run_id: int) -> VerificationRun | None:
    """The body of the `ledger.verify` task. Returns the run, or None when there was
    nothing to do (unknown, finished, or being run elsewhere)."""
    run = _claim(run_id)
    if run is None:
        return None
    progress = _ProgressWriter(run.pk)
    try:
        # Subjects are read through their models' base managers: no tenant scope applies.
        report = ledger_verify(progress_factory=progress)
    except Exception as exc:
        logger.exception("verification run %s failed", run.pk)
        run.status = VerificationRun.Status.ERROR
        run.result = {"error": type(exc).__name__}
    else:
        summary = report.as_dict()
        summary["finding_count"] = len(summary["findings"])
        summary["findings"] = summary["findings"][:MAX_FINDINGS_STORED]
        run.status = VerificationRun.Status.OK if report.ok else VerificationRun.Status.FAILED
        run.result = summary
    finally:
        progress.close()
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "result", "finished_at"])
    return run


# -- reads for the health page ----------------------------------------------------------


def verification_run_latest() -> VerificationRun | None:
    return VerificationRun.objects.select_related("requested_by").first()


def verification_run_finished_latest() -> VerificationRun | None:
    return (
        VerificationRun.objects.filter(
            status__in=[
                VerificationRun.Status.OK,
                VerificationRun.Status.FAILED,
                VerificationRun.Status.ERROR,
            ]
        )
        .select_related("requested_by")
        .first()
    )


def anchoring_lag_buckets(
    *, hours: int = 3, bucket_minutes: int = 1, now: datetime | None = None,
    max_events: int = 50_000,
) -> list[dict[str, Any]]:  # fmt: skip
    """Anchoring lag (anchored_at - recorded_at, seconds) of the events recorded in the last
    `hours`, per bucket of `bucket_minutes` by recorded time: count, p50 and p95. Reads at
    most `max_events` (the newest), walking the primary key backwards."""
    now = now or timezone.now()
    since = now - timedelta(hours=hours)
    rows = (
        Event.objects.filter(recorded_at__gte=since, anchored_at__isnull=False)
        .order_by("-id")
        .values_list("recorded_at", "anchored_at")[:max_events]
    )
    width = bucket_minutes * 60
    lags: dict[int, list[float]] = {}
    for recorded_at, anchored_at in rows:
        assert anchored_at is not None  # anchored_at__isnull=False above
        key = int(recorded_at.timestamp() // width) * width
        lags.setdefault(key, []).append(max((anchored_at - recorded_at).total_seconds(), 0.0))
    buckets = []
    for key in sorted(lags):
        values = sorted(lags[key])
        if len(values) == 1:
            p50 = p95 = values[0]
        else:
            cuts = quantiles(values, n=100, method="inclusive")
            p50, p95 = cuts[49], cuts[94]
        buckets.append(
            {
                "start": datetime.fromtimestamp(key, tz=UTC),
                "count": len(values),
                "p50": p50,
                "p95": p95,
            }
        )
    return buckets
