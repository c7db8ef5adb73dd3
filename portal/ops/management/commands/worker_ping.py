import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from portal.ops.models import Heartbeat
from portal.ops.tasks import heartbeat


class Command(BaseCommand):
    help = "Send a heartbeat task and wait until a Celery worker has run it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=60)

    def handle(self, *args, **options) -> None:
        sent = timezone.now()
        heartbeat.delay("ping")
        deadline = time.monotonic() + options["timeout"]
        while time.monotonic() < deadline:
            if Heartbeat.objects.filter(name="ping", seen_at__gte=sent).exists():
                self.stdout.write("A Celery worker is consuming tasks.")
                return
            time.sleep(0.25)
        raise CommandError(f"No worker ran the heartbeat within {options['timeout']:.0f} s.")
