from celery import shared_task

from portal.ops import services


@shared_task(name="portal.tasks.heartbeat")
def heartbeat(name: str = "worker") -> None:
    """Proves a worker is consuming the queue and can write to the database."""
    services.heartbeat_record(name=name)
