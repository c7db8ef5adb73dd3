"""Consent tasks: ids in, one service call, idempotent."""

import smtplib

from celery import shared_task

from consent import selectors, services


@shared_task(
    name="consent.break_glass_notify",
    acks_late=True,
    reject_on_worker_lost=True,
    # A mail server that is down or refuses for a while: try again, 1 s, 2 s, 4 s ... up to
    # 10 minutes apart (with jitter). Past max_retries the beat sweep takes over, so the
    # notice is retried until the server accepts it.
    autoretry_for=(smtplib.SMTPException, OSError, services.NoticeNotSent),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=10,
    ignore_result=True,
)
def break_glass_notify(glass_id: int) -> int:
    return services.break_glass_mail(glass_id=glass_id)


@shared_task(name="consent.notices_sweep", acks_late=True, ignore_result=True)
def notices_sweep() -> int:
    """Beat: enqueue again every break-glass notice still unsent (a lost message, a worker
    that died, a mail server down for longer than the task's retries)."""
    unsent = selectors.break_glass_notices_unsent()
    for glass_id in unsent:
        break_glass_notify.delay(glass_id)
    return len(unsent)


@shared_task(name="consent.expire_due")
def expire_due() -> int:
    return services.grants_expire_due()
