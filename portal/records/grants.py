"""The object-permission rows themselves: written here, and only by services.

Registration, care-team, restriction (portal.records.services) and consent, break-glass and
proxy grants (consent.services) call these helpers; nothing else writes the permission
tables. Rows carry their grant (`source`) and an optional expiry, so several grants of the
same permission coexist and revoking one touches only its own rows. Guardian's own
assign_perm/remove_perm are not used: they assume one row per (user, permission, object).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, Group, Permission

from portal.records.models import (
    ClinicalNote,
    ClinicalNoteUserObjectPermission,
    Patient,
    PatientGroupObjectPermission,
    PatientUserObjectPermission,
)


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
        PatientUserObjectPermission.objects.bulk_create(rows, ignore_conflicts=True)
    else:
        rows = [
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
        PatientGroupObjectPermission.objects.bulk_create(rows, ignore_conflicts=True)


def chart_revoke(
    *,
    patient: Patient,
    codenames: Iterable[str],
    user: AbstractBaseUser | None = None,
    group: Group | None = None,
    source: str = "",
) -> None:
    """Remove exactly the rows of one grant; rows of other grants stay."""
    codenames = list(codenames)
    if user is not None:
        PatientUserObjectPermission.objects.filter(
            user=user, content_object=patient, source=source, permission__codename__in=codenames
        ).delete()
    if group is not None:
        PatientGroupObjectPermission.objects.filter(
            group=group, content_object=patient, source=source, permission__codename__in=codenames
        ).delete()


def chart_group_grants_remove(*, patient: Patient, source: str = "") -> None:
    """Drop every group grant of one source on a chart (restriction removes hospital-wide)."""
    PatientGroupObjectPermission.objects.filter(content_object=patient, source=source).delete()


def note_grant_write(
    *,
    note: ClinicalNote,
    user: AbstractBaseUser,
    source: str = "",
    starts_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> None:
    (perm,) = _permissions(ClinicalNote, ["view_clinicalnote"])
    ClinicalNoteUserObjectPermission.objects.bulk_create(
        [
            ClinicalNoteUserObjectPermission(
                user=user,
                permission=perm,
                content_object=note,
                source=source,
                starts_at=starts_at,
                expires_at=expires_at,
            )
        ],
        ignore_conflicts=True,
    )


def grant_source_remove(*, source: str) -> int:
    """Delete every row a grant wrote (consent revoked, proxy ended, break-glass expired)."""
    if not source:
        raise ValueError("registration and care-team rows are removed by their own services")
    removed = 0
    for model in (
        PatientUserObjectPermission,
        PatientGroupObjectPermission,
        ClinicalNoteUserObjectPermission,
    ):
        removed += model.objects.filter(source=source).delete()[0]
    return removed


def grant_rows_ended_remove(*, prefix: str, now: datetime) -> int:
    """Delete the rows of grants of one kind (e.g. "breakglass:") whose time has passed;
    they already grant nothing (the selectors ignore them), this only tidies up."""
    removed = 0
    for model in (
        PatientUserObjectPermission,
        PatientGroupObjectPermission,
        ClinicalNoteUserObjectPermission,
    ):
        removed += model.objects.filter(source__startswith=prefix, expires_at__lte=now).delete()[0]
    return removed
