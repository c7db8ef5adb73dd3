"""Write the search tokens (partial names and MRNs) of patients registered before they existed."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Exists, OuterRef

from portal.records.crypto import DecryptionError
from portal.records.models import Patient, PatientSearchToken
from portal.records.services import patient_search_tokens_write
from portal.tenancy.scoping import unscoped

HELP = """\
Write every patient's search tokens (keyed tokens of name and MRN prefixes, see
portal/records/search_tokens.py) from their current names and MRN. Run once after upgrading
to the release that added them (patients registered since get theirs at registration);
running it again is harmless. --missing: only patients without any token. The site stays up:
each batch is its own transaction. Exit status 1 if some patients could not be read.
"""


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--missing", action="store_true", help="Only patients without tokens.")
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        errors: list[str] = []
        done = 0
        last = 0
        with unscoped():
            patients = Patient._base_manager.order_by("pk")
            if options["missing"]:
                tokens = PatientSearchToken._base_manager.filter(patient_id=OuterRef("pk"))
                patients = patients.filter(~Exists(tokens))
            while True:
                batch = list(patients.filter(pk__gt=last)[: options["batch_size"]])
                if not batch:
                    break
                with transaction.atomic():
                    for patient in batch:
                        try:
                            patient_search_tokens_write(patient=patient)
                        except DecryptionError as exc:  # ids only in the message
                            errors.append(f"patient {patient.pk}: {exc}")
                        else:
                            done += 1
                last = batch[-1].pk
        self.stdout.write(f"Search tokens written for {done} patient(s).")
        if errors:
            for line in errors:
                self.stderr.write(f"  error: {line}")
            raise CommandError(f"{len(errors)} patient(s) could not be read; nothing else failed.")
