"""Writes about hospitals and memberships."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest

from portal.requesttypes import PortalRequest
from portal.tenancy import selectors
from portal.tenancy.middleware import SESSION_KEY
from portal.tenancy.models import CLINICAL_ROLES, Department, Hospital, Membership


def active_hospital_switch(*, request: HttpRequest, hospital_id: int) -> Hospital:
    """Make one of the user's own hospitals the active one; any other id is a 404."""
    # request.memberships, .membership and .hospital: set by ActiveHospitalMiddleware.
    portal_request = cast(PortalRequest, request)
    membership = selectors.membership_for_hospital(
        memberships=portal_request.memberships, hospital_id=hospital_id
    )
    if membership is None:
        raise Http404("No such hospital.")
    request.session[SESSION_KEY] = membership.hospital_id
    portal_request.membership = membership
    portal_request.hospital = membership.hospital
    return membership.hospital


def hospital_ensure(*, slug: str, name: str) -> Hospital:
    hospital, _ = Hospital.objects.update_or_create(slug=slug, defaults={"name": name})
    return hospital


@transaction.atomic
def membership_ensure(
    *, user: User, hospital: Hospital, role: str, department: Department | None = None,
    actor: User | None = None,
) -> Membership:  # fmt: skip
    """An active membership with this role (seeding, maintenance): created or updated through
    membership_create / membership_update, so every change is a ledger event."""
    existing = Membership._base_manager.filter(user=user, hospital=hospital).first()
    if existing is None:
        return membership_create(
            user=user, hospital=hospital, role=role, department=department, actor=actor
        )
    return membership_update(
        membership=existing, role=role, department=department, is_active=True, actor=actor
    )


GROUP_MEMBER_ADDED = "groupmember.added"
GROUP_MEMBER_REMOVED = "groupmember.removed"


def membership_canonical(membership: Any) -> dict[str, Any]:
    """A membership's ledger content (tenancy.apps registers it): who, where, which role,
    department and whether active. The same dict the events before registration digested."""
    return _membership_state(membership)


def group_member_canonical(row: Any) -> dict[str, Any]:
    """A group membership row's ledger content (auth's User.groups table): the hospital-wide
    clinical and department groups open charts, so each row is a ledger subject."""
    return {"user": row.user_id, "group": row.group_id}


def _membership_state(membership: Membership) -> dict:
    return {
        "user": membership.user_id,
        "hospital": membership.hospital_id,
        "role": membership.role,
        "department": membership.department_id,
        "active": membership.is_active,
    }


def _membership_event(*, membership: Membership, actor: User | None, before: dict | None) -> None:
    """`membership.changed`: ids and codes only (the old and new role, department, active)."""
    from ledger.events import event_record

    before = before or {}
    event_record(
        kind="membership.changed", hospital=membership.hospital_id,
        subject=membership, actor=actor,
        attrs={
            "user": membership.user_id,
            "created": not before,
            "role": membership.role,
            "old_role": before.get("role"),
            "department": membership.department_id,
            "old_department": before.get("department"),
            "active": membership.is_active,
            "old_active": before.get("active"),
        },
    )  # fmt: skip


def _refuse_own_membership(*, actor: User | None, user_id: int) -> None:
    """Nobody gives themselves a role or changes their own, superusers included: a hospital
    admin who made themselves a clinician would read charts. (No actor: seeding, maintenance.)"""
    if actor is not None and actor.pk == user_id:
        raise PermissionDenied("Nobody can add or change their own membership.")


@transaction.atomic
def membership_create(
    *, user: User, hospital: Hospital, role: str,
    department: Department | None = None, is_active: bool = True,
    actor: User | None,
) -> Membership:  # fmt: skip
    """A new membership (the admin's add form): a ledger event, groups in step."""
    _refuse_own_membership(actor=actor, user_id=user.pk)
    if department is not None and department.hospital_id != hospital.pk:
        raise ValueError("the department belongs to another hospital")
    membership = Membership._base_manager.create(
        user=user, hospital=hospital, role=role, department=department, is_active=is_active
    )
    _membership_event(membership=membership, actor=actor, before=None)
    membership_sync_groups(membership=membership, actor=actor)
    return membership


@transaction.atomic
def membership_update(
    *, membership: Membership, role: str, department: Department | None, is_active: bool,
    actor: User | None,
) -> Membership:  # fmt: skip
    """Change a membership's role, department or active flag.

    The row is locked, the change and its `membership.changed` ledger event commit together,
    and the hospital-wide and department groups are brought in step. No change, no event.
    """
    _refuse_own_membership(actor=actor, user_id=membership.user_id)
    if department is not None and department.hospital_id != membership.hospital_id:
        raise ValueError("the department belongs to another hospital")
    locked = Membership._base_manager.select_for_update().get(pk=membership.pk)
    before = _membership_state(locked)
    locked.role = role
    locked.department = department
    locked.is_active = is_active
    if _membership_state(locked) == before:
        membership_sync_groups(membership=locked, actor=actor)  # idempotent; repairs drift
        return locked
    locked.save(update_fields=["role", "department", "is_active"])
    _membership_event(membership=locked, actor=actor, before=before)
    membership_sync_groups(membership=locked, actor=actor)
    return locked


def membership_sync_groups(*, membership: Membership, actor: User | None = None) -> None:
    """Keep the hospital-wide clinical group in step with the membership.

    Clinicians, nurses and records clerks of a hospital see its (unrestricted) patients
    through this group's object permissions; hospital admins administer and are not in it.
    Department groups: only the membership's own department, only while clinical. Each
    group row added or removed is a ledger event of its own (`groupmember.added` /
    `groupmember.removed`), in the caller's transaction.
    """
    from ledger.events import event_record

    clinical = membership.is_active and membership.role in CLINICAL_ROLES
    hospital_group = selectors.hospital_clinical_group(hospital_id=membership.hospital_id)
    managed = {hospital_group.pk}
    managed.update(
        Group.objects.filter(
            name__in=[
                f"department-{pk}"
                for pk in Department.objects.filter(hospital_id=membership.hospital_id).values_list(
                    "pk", flat=True
                )
            ]
        ).values_list("pk", flat=True)
    )
    wanted: set[int] = set()
    if clinical:
        wanted.add(hospital_group.pk)
        if membership.department_id is not None:
            department = selectors.department_group(department_id=membership.department_id)
            wanted.add(department.pk)
            managed.add(department.pk)
    through = User.groups.through
    rows = through.objects.filter(user_id=membership.user_id, group_id__in=managed)
    current = {row.group_id: row for row in rows.select_for_update().order_by("pk")}
    for group_id, row in current.items():
        if group_id not in wanted:
            event_record(
                kind=GROUP_MEMBER_REMOVED, hospital=membership.hospital_id, subject=row,
                actor=actor, attrs={"user": row.user_id, "group": group_id},
            )  # fmt: skip
            through.objects.filter(pk=row.pk).delete()
    for group_id in sorted(wanted - set(current)):
        row = through.objects.create(user_id=membership.user_id, group_id=group_id)
        event_record(
            kind=GROUP_MEMBER_ADDED, hospital=membership.hospital_id, subject=row, actor=actor,
            attrs={"user": row.user_id, "group": group_id},
        )  # fmt: skip


def department_ensure(*, hospital: Hospital, slug: str, name: str) -> Department:
    department, _ = Department.objects.update_or_create(
        hospital=hospital, slug=slug, defaults={"name": name}
    )
    return department
