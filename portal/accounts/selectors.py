"""Who a user is to the portal: staff, patient, auditor. Decided here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal import hotsql
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


@dataclass
class AuthContext:
    """What every signed-in request needs about its user, read in one statement: the user,
    the TOTP device the session names (whoever's it is: django-otp's own checks decide
    whether it verifies this user), the active memberships with their hospitals, and
    whether the account has a registration anywhere (the "My records" link)."""

    user: AbstractBaseUser
    device_id: int | None
    device: TOTPDevice | None
    memberships: list[Membership]
    is_patient: bool


def auth_context_fetch(*, user_id: int, device_id: int | None) -> AuthContext | None:
    """The user `user_id` and the rest of its AuthContext, or None if there is no such
    user. Four lookups (the user, the device, the memberships, a registration) that every
    page used to make one by one: one round trip instead of four."""
    from portal.records.models import Patient
    from portal.tenancy.models import Hospital

    User = get_user_model()
    u, d = hotsql.columns(User, "u"), hotsql.columns(TOTPDevice, "d")
    m, h = hotsql.columns(Membership, "m"), hotsql.columns(Hospital, "h")

    def build() -> str:
        user_col, m_col = partial(hotsql.column, User), partial(hotsql.column, Membership)
        pk = user_col(User._meta.pk.name)
        return (
            f"SELECT {u.sql}, {d.sql}, {m.sql}, {h.sql}, "  # noqa: S608 - names from the models
            f"EXISTS (SELECT 1 FROM {hotsql.table(Patient)} p "
            f"WHERE p.{hotsql.column(Patient, 'user')} = u.{pk}) "
            f"FROM {hotsql.table(User)} u "
            f"LEFT JOIN {hotsql.table(TOTPDevice)} d ON d.{hotsql.column(TOTPDevice, 'id')} = %s "
            f"LEFT JOIN {hotsql.table(Membership)} m ON m.{m_col('user')} = u.{pk} "
            f"AND m.{m_col('is_active')} = %s "
            f"LEFT JOIN {hotsql.table(Hospital)} h "
            f"ON h.{hotsql.column(Hospital, 'id')} = m.{m_col('hospital')} "
            f"WHERE u.{pk} = %s "
            f"ORDER BY h.{hotsql.column(Hospital, 'name')}, m.{m_col('hospital')}"
        )

    rows = hotsql.rows(hotsql.statement("accounts.auth_context", build), [device_id, True, user_id])
    if not rows:
        return None
    first = rows[0]
    device_at, membership_at = u.width, u.width + d.width
    memberships = []
    for row in rows:
        if row[membership_at] is None:  # no active membership: the LEFT JOIN's one empty row
            continue
        memberships.append(m.load_with("hospital", h, row, membership_at))
    return AuthContext(
        user=u.load(first),
        device_id=device_id,
        device=d.load(first, device_at) if first[device_at] is not None else None,
        memberships=memberships,
        is_patient=bool(first[-1]),
    )
