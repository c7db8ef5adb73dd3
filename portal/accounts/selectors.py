"""Who a user is to the portal: staff, patient, auditor. Decided here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import Http404
from django.utils import timezone
from django_otp.middleware import OTPMiddleware as DjangoOTPMiddleware

from portal import hotsql
from portal.accounts.models import TOTPDevice
from portal.tenancy.models import Membership

# An enrolment (a new device shown but not yet confirmed by a code from it) must be finished
# within this time; older unconfirmed devices are never confirmed and are cleaned away.
UNCONFIRMED_DEVICE_TTL = timedelta(minutes=10)


def user_is_staff_member(*, user: AbstractBaseUser | AnonymousUser) -> bool:
    if not user.is_authenticated:
        return False
    return Membership._base_manager.filter(user=user, is_active=True).exists()


def user_role_requires_otp(*, user: AbstractBaseUser) -> bool:
    """Staff, hospital admins and superusers: they must use TOTP (and always keep a device),
    and have the staff idle time-out."""
    return bool(user.is_superuser or user.is_staff or user_is_staff_member(user=user))


def user_requires_otp(*, user: AbstractBaseUser) -> bool:
    """Staff, hospital admins and superusers must use TOTP; patients may opt in."""
    if user_role_requires_otp(user=user):
        return True
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def user_idle_timeout(*, user: AbstractBaseUser) -> timedelta:
    if user_role_requires_otp(user=user):
        return settings.SESSION_IDLE_TIMEOUT_STAFF
    return settings.SESSION_IDLE_TIMEOUT_PATIENT


def totp_device_confirmed(*, user: AbstractBaseUser) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()


def totp_devices_for_user(*, user: AbstractBaseUser) -> list[TOTPDevice]:
    """The account's confirmed devices, oldest first."""
    return list(TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id"))


def access_totp_device(*, user: AbstractBaseUser, device_id: Any) -> TOTPDevice:
    """One of `user`'s own confirmed devices; 404 for anyone else's and for missing ones."""
    pk = hotsql.row_id(device_id)
    device = (
        TOTPDevice.objects.filter(user=user, confirmed=True, pk=pk).first()
        if pk is not None
        else None
    )
    if device is None:
        raise Http404("No such device.")
    return device


def totp_device_pending(*, user: AbstractBaseUser, device_id: Any) -> TOTPDevice | None:
    """The unconfirmed device `device_id` of `user` if it is still young enough to confirm."""
    pk = hotsql.row_id(device_id)
    if pk is None:
        return None
    return TOTPDevice.objects.filter(
        user=user,
        pk=pk,
        confirmed=False,
        created_at__gt=timezone.now() - UNCONFIRMED_DEVICE_TTL,
    ).first()


def account_hospital_ids(*, user: AbstractBaseUser) -> list[int]:
    """The hospitals where the account is active staff: an event about its sign-in device
    goes to each of them, so each hospital's admins can audit their own staff."""
    return sorted(
        set(
            Membership._base_manager.filter(user=user, is_active=True).values_list(
                "hospital_id", flat=True
            )
        )
    )


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


def session_totp_device_id(persistent_id: Any) -> int | None:
    """The id in the session's "otp_totp.totpdevice/<id>", or None for anything else."""
    if not isinstance(persistent_id, str):
        return None
    # Read as django-otp reads it (legacy ids were full import paths).
    normalized = DjangoOTPMiddleware._normalize_persistent_id(persistent_id)
    label, _, device_id = normalized.rpartition("/")
    if label != TOTPDevice.model_label() or not device_id.isdigit():
        return None
    number = int(device_id)
    return number if number < 2**63 else None


def _auth_context_sql(*, first: str, source: str, device: str, where: str) -> str:
    """The user context's SELECT: the `first` columns, then the user (`u` in `source`),
    the device whose id is `device`, the active memberships with their hospitals and the
    registration flag; one row per membership (or one with empty membership columns)."""
    from portal.records.models import Patient
    from portal.tenancy.models import Hospital

    User = get_user_model()
    u, d = hotsql.columns(User, "u"), hotsql.columns(TOTPDevice, "d")
    m, h = hotsql.columns(Membership, "m"), hotsql.columns(Hospital, "h")
    user_col, m_col = partial(hotsql.column, User), partial(hotsql.column, Membership)
    pk = user_col(User._meta.pk.name)
    return (
        f"SELECT {first}{u.sql}, {d.sql}, {m.sql}, {h.sql}, "  # noqa: S608 - names from the models
        f"EXISTS (SELECT 1 FROM {hotsql.table(Patient)} p "
        f"WHERE p.{hotsql.column(Patient, 'user')} = u.{pk}) "
        f"FROM {source} "
        f"LEFT JOIN {hotsql.table(TOTPDevice)} d ON d.{hotsql.column(TOTPDevice, 'id')} = {device} "
        f"LEFT JOIN {hotsql.table(Membership)} m ON m.{m_col('user')} = u.{pk} "
        f"AND m.{m_col('is_active')} = %s "
        f"LEFT JOIN {hotsql.table(Hospital)} h "
        f"ON h.{hotsql.column(Hospital, 'id')} = m.{m_col('hospital')} "
        f"WHERE {where} "
        f"ORDER BY h.{hotsql.column(Hospital, 'name')}, m.{m_col('hospital')}"
    )


def _auth_context_load(rows: list[tuple], *, at: int, device_id: int | None) -> AuthContext:
    from portal.tenancy.models import Hospital

    u, d = hotsql.columns(get_user_model(), "u"), hotsql.columns(TOTPDevice, "d")
    m, h = hotsql.columns(Membership, "m"), hotsql.columns(Hospital, "h")
    first = rows[0]
    device_at = at + u.width
    membership_at = device_at + d.width
    memberships = []
    for row in rows:
        if row[membership_at] is None:  # no active membership: the LEFT JOIN's one empty row
            continue
        memberships.append(m.load_with("hospital", h, row, membership_at))
    return AuthContext(
        user=u.load(first, at),
        device_id=device_id,
        device=d.load(first, device_at) if first[device_at] is not None else None,
        memberships=memberships,
        is_patient=bool(first[-1]),
    )


def auth_context_fetch(*, user_id: int, device_id: int | None) -> AuthContext | None:
    """The user `user_id` and the rest of its AuthContext, or None if there is no such
    user. Four lookups (the user, the device, the memberships, a registration) that every
    page used to make one by one: one round trip instead of four."""
    User = get_user_model()

    def build() -> str:
        pk = hotsql.column(User, User._meta.pk.name)
        return _auth_context_sql(
            first="", source=f"{hotsql.table(User)} u", device="%s", where=f"u.{pk} = %s"
        )

    rows = hotsql.rows(hotsql.statement("accounts.auth_context", build), [device_id, True, user_id])
    if not rows:
        return None
    return _auth_context_load(rows, at=0, device_id=device_id)


def session_fetch(*, session_key: str) -> tuple[str, AuthContext | None] | None:
    """A live session's encoded data, with the context of the user and device its row
    names (accounts.models.Session), in one statement; None if there is no such live
    session. The context is None when the row names no user, or no user that exists."""
    from portal.accounts.models import Session

    User = get_user_model()

    def build() -> str:
        col = partial(hotsql.column, Session)
        pk = hotsql.column(User, User._meta.pk.name)
        return _auth_context_sql(
            first=f"s.{col('session_data')}, s.{col('device_pk')}, ",
            source=(
                f"{hotsql.table(Session)} s LEFT JOIN {hotsql.table(User)} u "
                f"ON u.{pk} = s.{col('user_pk')}"
            ),
            device=f"s.{col('device_pk')}",
            where=f"s.{col('session_key')} = %s AND s.{col('expire_date')} > %s",
        )

    now = hotsql.moment(timezone.now())
    rows = hotsql.rows(hotsql.statement("accounts.session", build), [True, session_key, now])
    if not rows:
        return None
    session_data, device_id = rows[0][0], rows[0][1]
    if rows[0][2] is None:  # no user (signed out, or not yet signed in)
        return session_data, None
    return session_data, _auth_context_load(rows, at=2, device_id=device_id)
