"""Who a user is to the portal: staff, patient, auditor. Decided here and nowhere else."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.tenancy.models import Membership


def user_is_staff_member(*, user: AbstractBaseUser | AnonymousUser) -> bool:
    if not user.is_authenticated:
        return False
    return Membership._base_manager.filter(user=user, is_active=True).exists()


def user_requires_otp(*, user: AbstractBaseUser) -> bool:
    """Staff, hospital admins and superusers must use TOTP; patients may opt in."""
    if user.is_superuser or user.is_staff or user_is_staff_member(user=user):
        return True
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def user_idle_timeout(*, user: AbstractBaseUser) -> timedelta:
    if user.is_superuser or user.is_staff or user_is_staff_member(user=user):
        return settings.SESSION_IDLE_TIMEOUT_STAFF
    return settings.SESSION_IDLE_TIMEOUT_PATIENT


def totp_device_confirmed(*, user: AbstractBaseUser) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()
