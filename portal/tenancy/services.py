"""Writes about hospitals and memberships."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404, HttpRequest

from portal.tenancy import selectors
from portal.tenancy.middleware import SESSION_KEY
from portal.tenancy.models import Hospital, Membership


def active_hospital_switch(*, request: HttpRequest, hospital_id: int) -> Hospital:
    """Make one of the user's own hospitals the active one; any other id is a 404."""
    membership = selectors.membership_for_hospital(
        memberships=request.memberships, hospital_id=hospital_id
    )
    if membership is None:
        raise Http404("No such hospital.")
    request.session[SESSION_KEY] = membership.hospital_id
    request.membership = membership
    request.hospital = membership.hospital
    return membership.hospital


def hospital_ensure(*, slug: str, name: str) -> Hospital:
    hospital, _ = Hospital.objects.update_or_create(slug=slug, defaults={"name": name})
    return hospital


def membership_ensure(*, user: AbstractBaseUser, hospital: Hospital, role: str) -> Membership:
    membership, _ = Membership._base_manager.update_or_create(
        user=user, hospital=hospital, defaults={"role": role, "is_active": True}
    )
    return membership
