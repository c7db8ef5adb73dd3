from django.core.management.base import BaseCommand

from ledger import services


class Command(BaseCommand):
    help = "Anchor every pending ledger event now (synchronously, without a worker)."

    def handle(self, *args, **options) -> None:
        pending = services.pending_count()
        anchored = services.ledger_anchor_pending()
        self.stdout.write(
            f"Anchored {anchored} event(s); {pending - anchored} were pending at start beyond that."
        )
