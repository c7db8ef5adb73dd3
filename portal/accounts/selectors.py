"""Who a user is to the portal: staff, patient, auditor. Decided here and nowhere else."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.http import Http404
from django.utils import timezone

from portal.accounts.models import TOTPDevice
from portal.ids import row_id
from portal.tenancy.models import Membership

# An enrolment (a new device shown but not yet confirmed by a code from it) must be finished
# within this time; older unconfirmed devices are never confirmed and are cleaned away.
UNCONFIRMED_DEVICE_TTL = timedelta(minutes=10)


def user_is_staff_member(*, user: User | AnonymousUser) -> bool:
    if not user.is_authenticated:
        return False
    return Membership._base_manager.filter(user=user, is_active=True).exists()


def user_role_requires_otp(*, user: User, memberships: list[Membership] | None = None) -> bool:
    """Staff, hospital admins and superusers: they must use TOTP (and always keep a device),
    and have the staff idle time-out. `memberships`: the user's active memberships, when
    they were read already (a request's, tenancy.selectors.membership_list_for_request)."""
    if user.is_superuser or user.is_staff:
        return True
    if memberships is not None:
        return bool(memberships)
    return user_is_staff_member(user=user)


def user_requires_otp(*, user: User, memberships: list[Membership] | None = None) -> bool:
    """Staff, hospital admins and superusers must use TOTP; patients may opt in."""
    if user_role_requires_otp(user=user, memberships=memberships):
        return True
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def user_idle_timeout(*, user: User) -> timedelta:
    if user_role_requires_otp(user=user):
        return settings.SESSION_IDLE_TIMEOUT_STAFF
    return settings.SESSION_IDLE_TIMEOUT_PATIENT


def totp_device_confirmed(*, user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()


def totp_devices_for_user(*, user: User) -> list[TOTPDevice]:
    """The account's confirmed devices, oldest first."""
    return list(TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id"))


def access_totp_device(*, user: User, device_id: Any) -> TOTPDevice:
    """One of `user`'s own confirmed devices; 404 for anyone else's and for missing ones."""
    pk = row_id(device_id)
    device = (
        TOTPDevice.objects.filter(user=user, confirmed=True, pk=pk).first()
        if pk is not None
        else None
    )
    if device is None:
        raise Http404("No such device.")
    return device


def totp_device_pending(*, user: User, device_id: Any) -> TOTPDevice | None:
    """The unconfirmed device `device_id` of `user` if it is still young enough to confirm."""
    pk = row_id(device_id)
    if pk is None:
        return None
    return TOTPDevice.objects.filter(
        user=user,
        pk=pk,
        confirmed=False,
        created_at__gt=timezone.now() - UNCONFIRMED_DEVICE_TTL,
    ).first()


def account_hospital_ids(*, user: User) -> list[int]:
    """The hospitals where the account is active staff: an event about its sign-in device
    goes to each of them, so each hospital's admins can audit their own staff."""
    return sorted(
        set(
            Membership._base_manager.filter(user=user, is_active=True).values_list(
                "hospital_id", flat=True
            )
        )
    )
