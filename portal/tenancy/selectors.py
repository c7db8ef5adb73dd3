"""Reads about hospitals and memberships. The one place that decides who is staff where."""

from __future__ import annotations

from functools import partial

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group

from portal import hotsql
from portal.tenancy.models import Hospital, Membership, Role


def membership_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> list[Membership]:
    """The user's active memberships, with their hospitals, in one query.

    This is how a request's hospital scope is found in the first place, so it reads by the
    user, outside any scope: it can only ever return the user's own. Every signed-in request
    asks, so the statement is built once (portal.hotsql), not compiled per request.
    """
    if not user.is_authenticated:
        return []
    found = hotsql.rows(hotsql.statement("tenancy.memberships", _memberships_sql), [user.pk, True])
    m_cols, h_cols = hotsql.columns(Membership, "m"), hotsql.columns(Hospital, "h")
    memberships = []
    for row in found:
        membership = m_cols.load(row)
        Membership.hospital.field.set_cached_value(membership, h_cols.load(row, m_cols.width))
        memberships.append(membership)
    return memberships


def _memberships_sql() -> str:
    m_cols, h_cols = hotsql.columns(Membership, "m"), hotsql.columns(Hospital, "h")
    col = partial(hotsql.column, Membership)
    return (
        f"SELECT {m_cols.sql}, {h_cols.sql} FROM {hotsql.table(Membership)} m "  # noqa: S608
        f"INNER JOIN {hotsql.table(Hospital)} h ON h.{hotsql.column(Hospital, 'id')} = "
        f"m.{col('hospital')} WHERE m.{col('user')} = %s AND m.{col('is_active')} = %s "
        f"ORDER BY h.{hotsql.column(Hospital, 'name')}, m.{col('hospital')}"
    )


def membership_for_hospital(
    *, memberships: list[Membership], hospital_id: int | None
) -> Membership | None:
    for membership in memberships:
        if membership.hospital_id == hospital_id:
            return membership
    return None


def hospital_ids_administered(*, user: AbstractBaseUser | AnonymousUser) -> list[int]:
    """Hospitals whose Django admin this (non-superuser) user may use."""
    if not user.is_authenticated:
        return []
    return list(
        Membership._base_manager.filter(
            user=user, is_active=True, role=Role.HOSPITAL_ADMIN
        ).values_list("hospital_id", flat=True)
    )


def hospital_get_by_slug(*, slug: str) -> Hospital | None:
    return Hospital.objects.filter(slug=slug).first()


def hospital_clinical_group(*, hospital_id: int) -> Group:
    """The group whose object permissions make a patient visible hospital-wide."""
    group, _ = Group.objects.get_or_create(name=f"hospital-{hospital_id}-clinical-staff")
    return group


def department_group(*, department_id: int) -> Group:
    """The group whose object permissions a department's consents write."""
    group, _ = Group.objects.get_or_create(name=f"department-{department_id}")
    return group
