from django.core.management.base import BaseCommand

from ledger import anchoring


class Command(BaseCommand):
    help = "Anchor every pending ledger event now (synchronously, without a worker)."

    def handle(self, *args, **options) -> None:
        pending = anchoring.pending_count()
        anchored = anchoring.ledger_anchor_pending()
        self.stdout.write(
            f"Anchored {anchored} event(s); {pending - anchored} were pending at start beyond that."
        )
