import time

from django.core.management.base import BaseCommand, CommandError

from ledger import anchoring


class Command(BaseCommand):
    help = "Anchor every pending ledger event now (synchronously, without a worker)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--wait",
            type=float,
            default=60.0,
            help="seconds to keep trying while another session holds the log head (default 60)",
        )

    def handle(self, *args, **options) -> None:
        pending = anchoring.pending_count()
        deadline = time.monotonic() + options["wait"]
        anchored = 0
        while True:
            try:
                # Batches already committed stay anchored; a retry goes on from there.
                anchored += anchoring.ledger_anchor_pending()
                break
            except anchoring.LogHeadBusy as exc:
                # A worker is appending, or one hangs in its anchoring transaction and the
                # server ends it after LEDGER_ANCHOR_IDLE_TIMEOUT: the lock frees up soon.
                if time.monotonic() >= deadline:
                    raise CommandError(f"{exc} for more than {options['wait']:g} s") from exc
                self.stderr.write("The log head is locked by another session; trying again.")
                time.sleep(0.2)
        self.stdout.write(
            f"Anchored {anchored} event(s); {pending - anchored} were pending at start beyond that."
        )
