"""Who may enter which part of the portal: the one place that decides "signed in, with the
second factor the account's role requires, and staff / patient / admin as the part needs".

Every door asks `entry_refusal`: the portal decorators (accounts.decorators), the API's and
FHIR's permission classes (api.base) and the admin site (portal.admin_site). What is behind
the door (which charts, which rows) is decided by the access module, not here.

The second factor is django-otp's (`request.user.is_verified()`, set by its OTPMiddleware).
An API token carries its own: the token rule (api.selectors.token_refusal) decides it, and
the caller says so with `token_checked=True`.
"""

from __future__ import annotations

import enum
from typing import Any, cast

from django.contrib.auth.models import User
from django.http import HttpRequest

from portal.accounts.selectors import user_requires_otp, user_role_requires_otp
from portal.records.selectors import patient_registrations_for_user
from portal.requesttypes import OTPVerifiable, PortalRequest
from portal.tenancy.selectors import (
    hospital_ids_administered_for_request,
    membership_list_for_request,
)


class Audience(enum.StrEnum):
    STAFF = "staff"  # staff of a hospital (an active membership); always two factors
    PATIENT = "patient"  # an account with a patient registration
    ACCOUNT = "account"  # any signed-in account acting for itself (proxies)
    DEVICES = "devices"  # the account's own sign-in devices: two factors if it has a device
    ADMIN = "admin"  # auditors (superusers) and hospital admins; always two factors


class Refusal(enum.StrEnum):
    # Nobody signed in, or the session lacks the second factor: sign in (again).
    SIGN_IN = "sign_in"
    # Signed in, but this part is not for this account.
    NOT_FOR_YOU = "not_for_you"


# The requesting membership was not given: use the request's active one (the middleware's).
_ACTIVE = object()


def _second_factor_missing(request: HttpRequest, user: User, audience: Audience) -> bool:
    """The session has not passed the second factor this part or the account needs: staff
    and admin parts always; any part for staff, admins and superusers; the sign-in devices
    also for an account that has a device (a patient who turned two factors on)."""
    if cast(OTPVerifiable, user).is_verified():
        return False
    if audience in (Audience.STAFF, Audience.ADMIN):
        return True
    memberships = membership_list_for_request(request=request)
    if audience == Audience.DEVICES:
        return user_requires_otp(user=user, memberships=memberships)
    return user_role_requires_otp(user=user, memberships=memberships)


def entry_refusal(
    request: HttpRequest,
    audience: Audience | str,
    *,
    membership: Any = _ACTIVE,
    token_checked: bool = False,
) -> Refusal | None:
    """Why `request` may not enter the part of the portal for `audience`, or None.

    STAFF needs a membership: `membership` (the API's, picked by its X-Hospital header),
    else the request's active one (`request.membership`). PATIENT needs a registration; they
    are left on `request.patient_registrations` for the view. The account's role decides
    before the second factor, so a patient is told a staff page is not for them rather than
    asked for a code. `token_checked`: the request came with an API token that the token
    rule already accepted (tokens carry their own second factor).
    """
    audience = Audience(audience)
    user = request.user
    if not user.is_authenticated or not user.is_active:
        return Refusal.SIGN_IN
    if audience == Audience.STAFF:
        if membership is _ACTIVE:
            membership = getattr(request, "membership", None)
        if membership is None:
            return Refusal.NOT_FOR_YOU
    elif audience == Audience.PATIENT:
        registrations = patient_registrations_for_user(user=user)
        if not registrations:
            return Refusal.NOT_FOR_YOU
        cast(PortalRequest, request).patient_registrations = registrations
    elif audience == Audience.ADMIN and not (
        user.is_superuser or hospital_ids_administered_for_request(request=request)
    ):
        return Refusal.NOT_FOR_YOU
    if not token_checked and _second_factor_missing(request, user, audience):
        return Refusal.SIGN_IN
    return None
