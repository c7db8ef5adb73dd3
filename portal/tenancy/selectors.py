"""Reads about hospitals and memberships. The one place that decides who is staff where."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group, User
from django.db.models import QuerySet
from django.http import HttpRequest

from portal.requesttypes import PortalRequest
from portal.tenancy.models import Hospital, Membership, Role


def membership_list_for_user(*, user: User | AnonymousUser) -> list[Membership]:
    """The user's active memberships, with their hospitals, in one query.

    This is how a request's hospital scope is found in the first place, so it reads through
    the unscoped base manager, filtered by the user: it can only ever return the user's own.
    ActiveHospitalMiddleware reads them once per request (`request.memberships`).
    """
    if not user.is_authenticated:
        return []
    return list(
        Membership._base_manager.filter(user=user, is_active=True)
        .select_related("hospital")
        .order_by("hospital__name", "hospital_id")
    )


def membership_list_for_request(*, request: HttpRequest) -> list[Membership]:
    """The signed-in user's active memberships: `request.memberships`, which
    ActiveHospitalMiddleware reads once per request; read (and kept there) for a request
    that did not pass through it."""
    memberships = getattr(request, "memberships", None)
    if memberships is None:
        memberships = membership_list_for_user(user=request.user)
        cast(PortalRequest, request).memberships = memberships
    return memberships


def membership_for_hospital(
    *, memberships: list[Membership], hospital_id: int | None
) -> Membership | None:
    for membership in memberships:
        if membership.hospital_id == hospital_id:
            return membership
    return None


def membership_roles_at(*, hospital_id: int, user_ids: Iterable[int]) -> dict[int, str]:
    """The role codes these users hold at one hospital, by user id, for naming staff on a
    page ("Ana Silva, Clinician"); one query. The hospital's filter is explicit, as above."""
    ids = [i for i in user_ids if i is not None]
    if not ids:
        return {}
    return dict(
        Membership._base_manager.filter(hospital_id=hospital_id, user_id__in=ids).values_list(
            "user_id", "role"
        )
    )


def hospital_ids_administered(*, user: User | AnonymousUser) -> list[int]:
    """Hospitals whose Django admin this (non-superuser) user may use."""
    if not user.is_authenticated:
        return []
    return list(
        Membership._base_manager.filter(
            user=user, is_active=True, role=Role.HOSPITAL_ADMIN
        ).values_list("hospital_id", flat=True)
    )


def hospital_ids_administered_for_request(*, request: HttpRequest) -> list[int]:
    """`hospital_ids_administered` for the request's user, from the request's memberships
    (no query of its own once the middleware has read them)."""
    return sorted(
        m.hospital_id
        for m in membership_list_for_request(request=request)
        if m.role == Role.HOSPITAL_ADMIN
    )


def membership_candidates(*, actor: User) -> QuerySet:
    """The accounts `actor` may give a new membership to in the admin (typed by their exact
    username; this is never shown as a list).

    Never the actor's own account: nobody gives themselves a role. A superuser may name any
    other active account. A hospital admin may name only active, non-superuser accounts tied
    to no hospital but theirs: their own hospitals' staff and patients, and accounts with no
    membership and no patient registration anywhere yet. Another hospital's staff or
    patients are refused with the same words as an unknown username, so typing names
    reveals nothing about other hospitals.
    """
    from portal.records.models import Patient

    users = get_user_model()._default_manager.filter(is_active=True).exclude(pk=actor.pk)
    if actor.is_superuser:
        return users
    ids = hospital_ids_administered(user=actor)
    staff_elsewhere = Membership._base_manager.exclude(hospital_id__in=ids).values("user_id")
    patient_elsewhere = (
        Patient._base_manager.exclude(hospital_id__in=ids)
        .filter(user__isnull=False)
        .values("user_id")
    )
    return (
        users.filter(is_superuser=False)
        .exclude(pk__in=staff_elsewhere)
        .exclude(pk__in=patient_elsewhere)
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
