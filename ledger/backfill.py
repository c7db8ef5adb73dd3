"""Backfill: one `<model>.backfilled` event for each row of a registered subject model that has
no event at all (`manage.py ledger_backfill`).

Run once when upgrading a database whose rows predate their model's registration (the
permission rows, group rows, care team entries and sign-in devices became ledger subjects
later); verify_ledger's coverage pass would otherwise name every one of them (a read is no
account of a row). It records what is there now, so it is run by an operator who has checked
the rows, and its events say `backfilled`: anyone reading the log sees when those rows
entered it. Rows that have an event, even one that differs or removed them, are left for
verify_ledger to name. Idempotent: a second run finds nothing to do.
"""

from __future__ import annotations

from django.db import transaction

from ledger import subjects
from ledger.events import event_record
from ledger.models import Event

CHUNK = 2000


def subjects_backfill(*, dry_run: bool = False) -> dict[str, int]:
    """Record a backfill event for every registered row without one; returns how many per
    subject type (or would, with `dry_run`)."""
    done: dict[str, int] = {}
    for label, (model, _canonical) in sorted(subjects.registered().items()):
        key = subjects.key_field(label)
        evented = set(
            Event.objects.filter(subject_type=label)
            .exclude(kind__endswith=subjects.READ_SUFFIX)
            .order_by()
            .values_list("subject_id", flat=True)
            .distinct()
        )
        missing = [
            value
            for value in model._base_manager.order_by().values_list(key, flat=True).iterator()
            if str(value) not in evented
        ]
        done[label] = len(missing)
        if dry_run:
            continue
        kind = f"{model._meta.model_name}.backfilled"
        for start in range(0, len(missing), CHUNK):
            with transaction.atomic():
                rows = model._base_manager.filter(**{f"{key}__in": missing[start : start + CHUNK]})
                for row in rows:
                    event_record(
                        kind=kind,
                        hospital=getattr(row, "hospital_id", None),
                        subject=row,
                        actor=None,
                        patient=getattr(row, "patient_id", None),
                        attrs={"backfill": True},
                    )
    return done
