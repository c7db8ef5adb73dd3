"""Celery tasks of the ledger. They carry no arguments with content: the outbox is the
source of truth, so a lost, repeated or late message changes nothing but timing."""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError

from ledger import anchoring


@shared_task(
    name="ledger.anchor",
    acks_late=True,
    reject_on_worker_lost=True,
    # LogHeadBusy: the head lock was held past LEDGER_ANCHOR_LOCK_TIMEOUT; a session hung
    # inside its anchoring transaction is ended by the server within seconds, so retry soon.
    autoretry_for=(DatabaseError, anchoring.LogHeadBusy),
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=10,
    ignore_result=True,
    # The run lingers for at most TASK_MAX_SECONDS; the limits stop a pool process that hangs
    # (the hard one kills it, and acks_late returns the message to the queue).
    soft_time_limit=settings.LEDGER_ANCHOR_SOFT_TIME_LIMIT,
    time_limit=settings.LEDGER_ANCHOR_TIME_LIMIT,
)
def anchor() -> int:
    try:
        anchored = anchoring.ledger_anchor_and_linger()
    except SoftTimeLimitExceeded:
        # The batch in progress rolled back with its transaction; what is left goes on.
        anchoring.anchor_enqueue()
        return 0
    if anchoring.pending_exists():  # the time cap was reached with work left: hand it on
        anchoring.anchor_enqueue()
    return anchored


@shared_task(name="ledger.sweep", ignore_result=True, acks_late=True)
def sweep() -> None:
    """Beat: re-enqueue anchoring whenever anything is still pending (Redis was down, a
    worker was killed, a message was lost)."""
    if anchoring.pending_count():
        anchor.apply_async()


@shared_task(
    name="ledger.verify",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    time_limit=3600,
    soft_time_limit=3540,
)
def verify(run_id: int) -> str | None:
    """verify_ledger for the admin's "verify now": takes the run id only (idempotent)."""
    from ledger.runs import verification_run_execute

    run = verification_run_execute(run_id=run_id)
    return run.status if run is not None else None


@shared_task(name="ledger.publish", ignore_result=True, acks_late=True)
def publish() -> int:
    """After a checkpoint, and from beat: send the latest checkpoint to each witness that is
    behind it and not in back-off, one `ledger.cosign` task per witness (a witness that is
    down delays only itself). Every task names the same checkpoint, so that the witnesses
    cosign one tree head and the quorum is met while newer ones are being cut. Returns how
    many were enqueued."""
    from ledger.publication import publication_round_start

    # Witnesses whose previous task has not answered yet are left out (publication_round_start).
    checkpoint_id, due = publication_round_start()
    for witness_id in due:
        cosign.apply_async((witness_id, checkpoint_id))
    return len(due)


@shared_task(
    name="ledger.cosign",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=8,
    time_limit=120,
    soft_time_limit=100,
)
def cosign(self, witness_id: int, checkpoint_id: int | None = None) -> str:
    """Send a checkpoint (the one `ledger.publish` chose; none: the latest) to one witness
    (its WitnessState id) and store its cosignature. Idempotent (a witness already holding
    it is not asked again).
    A witness that does not answer is retried with exponential back-off (2, 4, 8 ... s);
    after the last retry the beat task `ledger.publish` takes over at the recorded time."""
    from ledger.publication import WitnessUnavailable, witness_cosign

    try:
        return witness_cosign(witness_id=witness_id, checkpoint_id=checkpoint_id)
    except WitnessUnavailable as exc:
        # The delay recorded on the witness's state (its next attempt), so beat agrees.
        raise self.retry(countdown=exc.delay, exc=exc) from None
