"""python manage.py import_fhir --hospital SLUG [--actor USERNAME] FILE...

Each file is one Bundle (transaction or collection), imported in its own transaction: a bad
file is reported and writes nothing, the others are still imported. Exit status 1 if any
file failed. A progress bar is drawn on a terminal; the summary is printed at the end.

With --actor, the import is that person's: it writes only into charts they may change in the
portal (as POST /fhir/R4/ by them would), and their name is on every record. Without it,
the import is the operator's, the hospital's own data load: it registers patients and writes
into any chart of the hospital it names (restricted ones too), never another hospital's, and
its records and ledger events name no author.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from portal.fhir.services import (
    BundleImportError,
    ImportReport,
    bundle_parse,
    fhir_bundle_import,
)
from portal.ops.progress import Progress
from portal.tenancy.models import Hospital


class Command(BaseCommand):
    help = "Import FHIR R4 Bundles (Synthea output, for example) into one hospital."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--hospital", required=True, help="the hospital's slug")
        parser.add_argument(
            "--actor",
            default="",
            help="import as this user: only into charts they may change, with them as the "
            "author (default: the operator's import, into any chart of the hospital)",
        )
        parser.add_argument("files", nargs="+", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        hospital = Hospital.objects.filter(slug=options["hospital"]).first()
        if hospital is None:
            raise CommandError(f"No hospital with slug {options['hospital']!r}.")
        actor = None
        if options["actor"]:
            actor = get_user_model()._default_manager.filter(username=options["actor"]).first()
            if actor is None:
                raise CommandError(f"No user {options['actor']!r}.")
        bundles: list[tuple[Path, Any]] = []
        failures: list[str] = []
        for path in options["files"]:
            try:
                bundles.append((path, bundle_parse(path.read_bytes())))
            except OSError as exc:
                failures.append(f"{path}: not a readable JSON file ({exc.strerror or exc})")
            except BundleImportError as exc:
                failures.append(f"{path}: not a readable JSON file ({'; '.join(exc.errors)})")
        total = sum(_entry_count(b) for _, b in bundles)
        overall = ImportReport(bundle_type="all files")
        imported = 0
        # The raw stream the command was given (call_command's stderr), not the wrapper that
        # ends every write with a newline: the progress bar redraws one line.
        stream = options.get("stderr") or sys.stderr
        with Progress("Importing", total, stream=stream) as progress:
            for path, bundle in bundles:
                try:
                    report = fhir_bundle_import(
                        hospital=hospital, bundle=bundle, actor=actor, progress=progress.advance
                    )
                except BundleImportError as exc:
                    failures.append(f"{path}: " + "\n    ".join(exc.errors))
                    continue
                overall.merge(report)
                imported += 1
        self.stdout.write(f"Imported {imported} of {len(options['files'])} "
                          f"file(s) into {hospital.slug}:")  # fmt: skip
        self.stdout.write(overall.summary())
        if failures:
            for failure in failures:
                self.stderr.write(f"FAILED {failure}")
            raise CommandError(f"{len(failures)} file(s) not imported (nothing written for them).")


def _entry_count(bundle: Any) -> int:
    """For the progress bar only: the bundle's entries, if it has a list of them."""
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    return len(entries) if isinstance(entries, list) else 0
