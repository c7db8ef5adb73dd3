"""The object-permission rows themselves: written here, and only by services.

Registration, care-team, restriction (portal.records.services) and consent, break-glass and
proxy grants (consent.services) call these helpers; nothing else writes the permission
tables. Rows carry their grant (`source`) and an optional expiry, so several grants of the
same permission coexist and revoking one touches only its own rows. Guardian's own
assign_perm/remove_perm are not used: they assume one row per (user, permission, object).

Each row is a ledger subject of its own (records.apps): every row written here records a
`grant.added` event and every row deleted a `grant.removed` event, in the caller's
transaction, so verify_ledger names a permission row written or removed behind the
application's back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, Group, Permission, User
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F

from ledger.events import event_record
from portal.records.models import (
    ClinicalNote,
    ClinicalNoteUserObjectPermission,
    Patient,
    PatientGroupObjectPermission,
    PatientUserObjectPermission,
)

GRANT_ADDED = "grant.added"
GRANT_REMOVED = "grant.removed"
GRANT_MODELS: tuple[type[models.Model], ...] = (
    PatientUserObjectPermission,
    PatientGroupObjectPermission,
    ClinicalNoteUserObjectPermission,
)
# The chart (patient id) and hospital a row belongs to, as query expressions per model.
_CHART = {
    PatientUserObjectPermission: ("content_object_id", "content_object__hospital_id"),
    PatientGroupObjectPermission: ("content_object_id", "content_object__hospital_id"),
    ClinicalNoteUserObjectPermission: (
        "content_object__patient_id",
        "content_object__hospital_id",
    ),
}


def _row_event(
    *, kind: str, row: Any, hospital_id: int, patient_id: int, actor: User | None
) -> None:
    event_record(
        kind=kind, hospital=hospital_id, subject=row, actor=actor, patient=patient_id,
        attrs={
            "user": getattr(row, "user_id", None), "group": getattr(row, "group_id", None),
            "permission": row.permission_id, "source": row.source,
        },
    )  # fmt: skip


def _rows_add(
    model: type[models.Model],
    rows: Sequence[Any],
    *,
    holder: dict[str, Any],
    target: models.Model,
    hospital_id: int,
    patient_id: int,
    actor: User | None,
) -> None:
    """Insert the rows this grant does not hold yet, each with its `grant.added` event
    (idempotent per grant: a row already there is left as it is)."""
    for attempt in range(2):
        existing = set(
            model._default_manager.filter(
                **holder, content_object=target, source=rows[0].source if rows else ""
            ).values_list("permission_id", flat=True)
        )
        new = [row for row in rows if row.permission_id not in existing]
        if not new:
            return
        try:
            with transaction.atomic():  # a savepoint: a concurrent twin of this grant won
                if connection.features.can_return_rows_from_bulk_insert:
                    model._default_manager.bulk_create(new)
                else:
                    for row in new:
                        row.save(force_insert=True)
                for row in new:
                    _row_event(
                        kind=GRANT_ADDED, row=row, hospital_id=hospital_id,
                        patient_id=patient_id, actor=actor,
                    )  # fmt: skip
            return
        except IntegrityError:
            if attempt:
                raise
            for row in new:
                row.pk = None


def _rows_remove(queryset: models.QuerySet, *, actor: User | None) -> int:
    """Delete these rows, each with its `grant.removed` event (read first, locked: the event's
    digest is the row as it was, and a concurrent removal records none twice)."""
    model = queryset.model
    chart, hospital = _CHART[model]
    with transaction.atomic():
        rows = list(
            queryset.select_for_update(of=("self",))
            .annotate(ledger_patient=F(chart), ledger_hospital=F(hospital))
            .order_by("pk")
        )
        for row in rows:
            _row_event(
                kind=GRANT_REMOVED, row=row, hospital_id=row.ledger_hospital,
                patient_id=row.ledger_patient, actor=actor,
            )  # fmt: skip
        if rows:
            model._default_manager.filter(pk__in=[row.pk for row in rows]).delete()
    return len(rows)


def _permissions(model: type, codenames: Iterable[str]) -> list[Permission]:
    codenames = list(codenames)
    perms = list(
        Permission.objects.filter(
            content_type__app_label="records",
            content_type__model=model._meta.model_name,
            codename__in=codenames,
        )
    )
    if len(perms) != len(set(codenames)):
        raise ValueError(f"unknown permission among {codenames}")
    return perms


def chart_grant(
    *,
    patient: Patient,
    codenames: Iterable[str],
    user: AbstractBaseUser | None = None,
    group: Group | None = None,
    source: str = "",
    starts_at: datetime | None = None,
    expires_at: datetime | None = None,
    actor: User | None = None,
) -> None:
    """Give a user or a group these permissions on one chart (idempotent per grant)."""
    if (user is None) == (group is None):
        raise ValueError("grant to exactly one of user or group")
    perms = _permissions(Patient, codenames)
    if user is not None:
        rows = [
            PatientUserObjectPermission(
                user=user,
                permission=p,
                content_object=patient,
                source=source,
                starts_at=starts_at,
                expires_at=expires_at,
            )
            for p in perms
        ]
        _rows_add(
            PatientUserObjectPermission, rows, holder={"user": user}, target=patient,
            hospital_id=patient.hospital_id, patient_id=patient.pk, actor=actor,
        )  # fmt: skip
    else:
        grows = [
            PatientGroupObjectPermission(
                group=group,
                permission=p,
                content_object=patient,
                source=source,
                starts_at=starts_at,
                expires_at=expires_at,
            )
            for p in perms
        ]
        _rows_add(
            PatientGroupObjectPermission, grows, holder={"group": group}, target=patient,
            hospital_id=patient.hospital_id, patient_id=patient.pk, actor=actor,
        )  # fmt: skip


def chart_revoke(
    *,
    patient: Patient,
    codenames: Iterable[str],
    user: AbstractBaseUser | None = None,
    group: Group | None = None,
    source: str = "",
    actor: User | None = None,
) -> None:
    """Remove exactly the rows of one grant; rows of other grants stay."""
    codenames = list(codenames)
    if user is not None:
        _rows_remove(
            PatientUserObjectPermission.objects.filter(
                user=user, content_object=patient, source=source,
                permission__codename__in=codenames,
            ),
            actor=actor,
        )  # fmt: skip
    if group is not None:
        _rows_remove(
            PatientGroupObjectPermission.objects.filter(
                group=group, content_object=patient, source=source,
                permission__codename__in=codenames,
            ),
            actor=actor,
        )  # fmt: skip


def chart_group_grants_remove(
    *, patient: Patient, source: str = "", actor: User | None = None
) -> None:
    """Drop every group grant of one source on a chart (restriction removes hospital-wide)."""
    _rows_remove(
        PatientGroupObjectPermission.objects.filter(content_object=patient, source=source),
        actor=actor,
    )


def note_grant_write(
    *,
    note: ClinicalNote,
    user: AbstractBaseUser,
    source: str = "",
    starts_at: datetime | None = None,
    expires_at: datetime | None = None,
    actor: User | None = None,
) -> None:
    (perm,) = _permissions(ClinicalNote, ["view_clinicalnote"])
    row = ClinicalNoteUserObjectPermission(
        user=user,
        permission=perm,
        content_object=note,
        source=source,
        starts_at=starts_at,
        expires_at=expires_at,
    )
    _rows_add(
        ClinicalNoteUserObjectPermission, [row], holder={"user": user}, target=note,
        hospital_id=note.hospital_id, patient_id=note.patient_id, actor=actor,
    )  # fmt: skip


def grant_source_remove(*, source: str, actor: User | None = None) -> int:
    """Delete every row a grant wrote (consent revoked, proxy ended, break-glass expired)."""
    if not source:
        raise ValueError("registration and care-team rows are removed by their own services")
    removed = 0
    for model in GRANT_MODELS:
        removed += _rows_remove(model._default_manager.filter(source=source), actor=actor)
    return removed


def grant_rows_ended_remove(*, prefix: str, now: datetime) -> int:
    """Delete the rows of grants of one kind (e.g. "breakglass:") whose time has passed;
    they already grant nothing (the selectors ignore them), this only tidies up."""
    removed = 0
    for model in GRANT_MODELS:
        removed += _rows_remove(
            model._default_manager.filter(source__startswith=prefix, expires_at__lte=now),
            actor=None,
        )
    return removed
