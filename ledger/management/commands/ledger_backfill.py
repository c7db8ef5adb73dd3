from django.core.management.base import BaseCommand

from ledger.backfill import subjects_backfill


class Command(BaseCommand):
    help = (
        "Upgrading: record one `<model>.backfilled` ledger event for each row of a ledger "
        "subject model that has no event yet (rows from before the model was covered), so "
        "verify_ledger does not name them. Idempotent."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count the rows without an event."
        )

    def handle(self, *args, **options) -> None:
        done = subjects_backfill(dry_run=options["dry_run"])
        verb = "would record" if options["dry_run"] else "recorded"
        for label, count in done.items():
            if count:
                self.stdout.write(f"{label}: {verb} {count:,} backfill event(s)")
        self.stdout.write(f"{sum(done.values()):,} row(s) without an event, {verb}.")
