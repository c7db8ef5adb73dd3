"""Consent tasks: ids in, one service call, idempotent."""

from celery import shared_task

from consent import services


@shared_task(name="consent.break_glass_notify", acks_late=True)
def break_glass_notify(glass_id: int) -> int:
    return services.break_glass_mail(glass_id=glass_id)


@shared_task(name="consent.expire_due")
def expire_due() -> int:
    return services.grants_expire_due()
