"""Celery tasks of the ledger. They carry no arguments with content: the outbox is the
source of truth, so a lost, repeated or late message changes nothing but timing."""

from celery import shared_task
from django.db import DatabaseError

from ledger import services


@shared_task(
    name="ledger.anchor",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=10,
    ignore_result=True,
)
def anchor() -> int:
    anchored = services.ledger_anchor_and_linger()
    if services.pending_exists():  # the time cap was reached with work left: hand it on
        services.anchor_enqueue()
    return anchored


@shared_task(name="ledger.sweep", ignore_result=True, acks_late=True)
def sweep() -> None:
    """Beat: re-enqueue anchoring whenever anything is still pending (Redis was down, a
    worker was killed, a message was lost)."""
    if services.pending_count():
        anchor.apply_async()
