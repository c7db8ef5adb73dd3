import json
import sys

from django.core.management.base import BaseCommand, CommandParser

from ledger.progress import Progress
from ledger.verification import ledger_verify


class Command(BaseCommand):
    help = (
        "Recompute every leaf, the hash chain, every checkpoint's root and signature, and "
        "re-digest every subject. Exit 0 when intact, 1 with a report of every finding."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument(
            "--skip-subjects", action="store_true", help="Only check the log itself."
        )

    def handle(self, *args, **options) -> None:
        report = ledger_verify(
            subjects_pass=not options["skip_subjects"],
            progress_factory=lambda label, total: Progress(label, total, stream=sys.stderr),
        )
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self.stdout.write(
                f"Checked {report.entries:,} entries and {report.checkpoints:,} checkpoints "
                f"in {report.log_seconds:.2f} s, {report.subjects:,} subjects in "
                f"{report.subject_seconds:.2f} s."
            )
            if report.covered_rows:
                self.stdout.write(
                    f"Accounted for {report.covered_rows:,} rows of ledger subjects in "
                    f"{report.coverage_seconds:.2f} s."
                )
            for warning in report.warnings:
                self.stdout.write(self.style.WARNING(f"Warning: {warning}"))
            if report.ok:
                self.stdout.write(self.style.SUCCESS("The ledger is intact."))
            else:
                self.stdout.write(self.style.ERROR(f"{len(report.findings)} finding(s):"))
                for finding in report.findings:
                    self.stdout.write(f"  - {finding}")
        if not report.ok:
            sys.exit(1)
