"""Log-in steps and the sign-in devices (TOTP) of an account.

The password step and the TOTP step are separate requests; between them the session only
holds the id of a user who has not signed in yet. An account enrols a device during log-in
only while it has no confirmed device; every later change (add, replace, remove, turn off, an
admin's reset) is made from a session signed in with two factors, after a current code, and
is a ledger event in the same transaction.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from django.contrib.auth import get_user_model, login
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp import login as otp_login
from django_otp import verify_token as otp_verify_token

from portal.accounts import selectors
from portal.accounts.middleware import AUTH_AT, IDLE_SECONDS, SEEN_AT
from portal.accounts.models import TOTPDevice
from portal.records.crypto import KeyRing

PENDING = "pending_login"
PENDING_TTL_SECONDS = 300
MAX_TOKEN_FAILURES = 5
# The session's count of wrong codes on the two-factor pages (signed out at MAX_TOKEN_FAILURES).
CODE_FAILURES = "two_factor_failures"
SECRET_BYTES = 20  # 160 bits, as RFC 4226 recommends for HMAC-SHA1


class TwoFactorRefused(Exception):
    """A device change or enrolment that may not happen now; the message is for the page."""


def login_complete(
    *, request: HttpRequest, user: User, backend: str, device: TOTPDevice | None
) -> None:
    request.session.pop(PENDING, None)
    # login() rotates the session key, so a session id planted before log-in is useless.
    login(request, user, backend=backend)
    if device is not None:
        otp_login(request, device)
    now = time.time()
    request.session[AUTH_AT] = now
    request.session[SEEN_AT] = now
    request.session[IDLE_SECONDS] = selectors.user_idle_timeout(user=user).total_seconds()


def login_pending_start(*, request: HttpRequest, user: User, backend: str) -> None:
    request.session[PENDING] = {
        "user_id": user.pk,
        "backend": backend,
        "at": time.time(),
        "failures": 0,
    }


def login_pending_get(*, request: HttpRequest) -> tuple[User, str] | None:
    pending = request.session.get(PENDING)
    if not pending or time.time() - pending["at"] > PENDING_TTL_SECONDS:
        request.session.pop(PENDING, None)
        return None
    user = get_user_model()._default_manager.filter(pk=pending["user_id"], is_active=True).first()
    if user is None:
        return None
    return user, pending["backend"]


def login_pending_end(*, request: HttpRequest) -> None:
    request.session.pop(PENDING, None)


def login_pending_token_failed(*, request: HttpRequest, user: User) -> bool:
    """Count a wrong code. Returns False once the pending log-in is used up.

    Each wrong code is also reported to django-axes as a failed log-in, so guessing codes
    leads to the same lockout as guessing passwords.
    """
    _report_failure(request=request, user=user)
    pending = request.session.get(PENDING) or {}
    pending["failures"] = pending.get("failures", 0) + 1
    if pending["failures"] >= MAX_TOKEN_FAILURES:
        request.session.pop(PENDING, None)
        return False
    request.session[PENDING] = pending
    return True


def login_pending_enrolment_device(*, request: HttpRequest, user: User) -> TOTPDevice:
    """The new device this pending log-in enrols (its id kept in the pending log-in), made on
    first use. Each log-in attempt gets its own: no other session ever sees its secret."""
    pending = request.session[PENDING]
    device = totp_device_for_enrolment(user=user, device_id=pending.get("device"))
    if pending.get("device") != device.pk:
        pending["device"] = device.pk
        request.session[PENDING] = pending
    return device


def login_pending_enrolment_device_id(*, request: HttpRequest) -> int | None:
    return (request.session.get(PENDING) or {}).get("device")


def _report_failure(*, request: HttpRequest, user: User) -> None:
    user_login_failed.send(
        sender=__name__,
        credentials={"username": user.get_username()},
        request=request,
    )


# --- devices --------------------------------------------------------------------------------


def totp_device_create(
    *,
    user: User,
    name: str = "Authenticator app",
    confirmed: bool = False,
    secret: bytes | None = None,
) -> TOTPDevice:
    """A device with a new random secret (or `secret`), encrypted before it is written, with
    the device row's `totpdevice.created` event. The account's own `totp.*` event comes once
    it is confirmed (totp_enrol_confirm, totp_device_confirm_new); set-up code (seed_demo,
    tests) may make it confirmed directly."""
    device = TOTPDevice(user=user, name=name, confirmed=confirmed)
    device.set_key(os.urandom(SECRET_BYTES) if secret is None else secret)
    with transaction.atomic():
        device.save()
        _device_row_event(kind=DEVICE_CREATED, device=device, actor=user)
    return device


DEVICE_CREATED = "totpdevice.created"
DEVICE_CONFIRMED = "totpdevice.confirmed"
DEVICE_REMOVED = "totpdevice.removed"


def device_canonical(device: Any) -> dict[str, Any]:
    """A device row's ledger content (accounts.apps registers it): whose, confirmed or not,
    and its TOTP parameters. Not the secret, nor what changes with every code (last_t, drift,
    throttling, last use) or with a key rotation (the wrapped key)."""
    return {
        "row_uuid": str(device.row_uuid), "user": device.user_id, "name": device.name,
        "confirmed": device.confirmed, "step": device.step, "t0": device.t0,
        "digits": device.digits, "tolerance": device.tolerance,
    }  # fmt: skip


def _device_row_event(*, kind: str, device: TOTPDevice, actor: User | None) -> None:
    """The device row's own event (verify_ledger accounts for every device row); the
    account's `totp.*` events say what happened to the account."""
    from ledger.events import event_record

    event_record(
        kind=kind, hospital=None, subject=device, actor=actor,
        attrs={"user": device.user_id, "device": device.pk},
    )  # fmt: skip


def _devices_delete(devices: QuerySet[TOTPDevice], *, actor: User | None) -> int:
    """Delete these devices, each with its `totpdevice.removed` event, recorded first (its
    digest is the row as it was). In the caller's transaction."""
    rows = list(devices.order_by("pk"))
    for device in rows:
        _device_row_event(kind=DEVICE_REMOVED, device=device, actor=actor)
    if rows:
        TOTPDevice.objects.filter(pk__in=[device.pk for device in rows]).delete()
    return len(rows)


def totp_device_for_enrolment(*, user: User, device_id: Any) -> TOTPDevice:
    """The unconfirmed device `device_id` while it may still be confirmed, else a new one.
    Unconfirmed devices too old to confirm are removed on the way."""
    device = selectors.totp_device_pending(user=user, device_id=device_id)
    if device is None:
        cutoff = timezone.now() - selectors.UNCONFIRMED_DEVICE_TTL
        with transaction.atomic():
            _devices_delete(
                TOTPDevice.objects.filter(user=user, confirmed=False, created_at__lte=cutoff),
                actor=user,
            )
        device = totp_device_create(user=user)
    return device


def totp_code_check(*, user: User, token: str, exclude: int | None = None):
    """The confirmed device of `user` that accepts `token` (a current code), or None.

    Each device is checked through django-otp (`verify_token`: row locked, throttled after a
    wrong code, a code accepted once). `exclude` leaves one device out (removing a device
    needs a code from one that stays). Must not run inside a transaction that a later error
    rolls back: a wrong code's throttling is written as the check returns."""
    for device in selectors.totp_devices_for_user(user=user):
        if device.pk == exclude:
            continue
        matched = otp_verify_token(user, device.persistent_id, token)
        if matched is not None:
            return matched
    return None


def two_factor_code_failed(*, request: HttpRequest, user: User, report: bool = True) -> bool:
    """Count a wrong code (or password) on the two-factor pages; a wrong current code is
    reported to django-axes too, as at log-in (`report`; authenticate() reports a wrong
    password itself). Returns False once MAX_TOKEN_FAILURES are used up: the caller signs
    the session out, and the next log-in meets the lockout."""
    if report:
        _report_failure(request=request, user=user)
    failures = request.session.get(CODE_FAILURES, 0) + 1
    request.session[CODE_FAILURES] = failures
    return failures < MAX_TOKEN_FAILURES


def two_factor_code_passed(*, request: HttpRequest, device: TOTPDevice) -> None:
    """The session is now verified by `device` (a code from it was just accepted)."""
    request.session.pop(CODE_FAILURES, None)
    otp_login(request, device)


def _lock_account(user: User) -> None:
    """Serialize device changes of one account (enrolment races, concurrent removals)."""
    list(get_user_model()._default_manager.select_for_update().filter(pk=user.pk).values("pk"))


def _device_event(*, kind: str, user: User, actor: User, attrs: dict[str, Any]) -> None:
    """One event per hospital where the account is active staff (each hospital's admins
    audit their own staff), or one that belongs to no hospital. Ids and codes only: the
    digest covers the account, its confirmed devices' ids after the change and the attrs,
    never a secret."""
    from ledger.events import event_record
    from ledger.subjects import digest_content

    devices = sorted(
        TOTPDevice.objects.filter(user=user, confirmed=True).values_list("pk", flat=True)
    )
    attrs = {"user": user.pk, "remaining": len(devices), **attrs}
    state = {"kind": kind, "devices": devices, **attrs}
    # No hospital: one event that belongs to none.
    hospital_ids: Sequence[int | None] = selectors.account_hospital_ids(user=user) or [None]
    for hospital_id in hospital_ids:
        event_record(
            kind=kind, hospital=hospital_id, subject=(user._meta.label_lower, user.pk),
            actor=actor, digest=digest_content(state, hospital_id=hospital_id), attrs=attrs,
        )  # fmt: skip


def totp_enrol_confirm(*, user: User, device_id: Any, token: str) -> TOTPDevice | None:
    """Confirm the enrolment device of a pending log-in with a code from it: the account's
    first device (`totp.enrolled`). None for a wrong code (throttled, recorded).

    Raises TwoFactorRefused when the account has a confirmed device (enrolment during log-in
    is only for an account with none: the device may have been confirmed in another session
    since), or when this device is gone or too old. The account row is locked, so two
    sessions cannot both enrol; the other unconfirmed devices go with the confirmation."""
    with transaction.atomic():
        _lock_account(user)
        if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
            raise TwoFactorRefused("This account already has an authenticator app.")
        device = selectors.totp_device_pending(user=user, device_id=device_id)
        if device is None:
            raise TwoFactorRefused("That set-up has expired. Please sign in again.")
        if not device.verify_token(token):
            return None  # leaves the block normally: the throttling is kept
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        _device_row_event(kind=DEVICE_CONFIRMED, device=device, actor=user)
        _devices_delete(TOTPDevice.objects.filter(user=user, confirmed=False), actor=user)
        _device_event(
            kind="totp.enrolled", user=user, actor=user, attrs={"device": device.pk, "via": "login"}
        )
    return device


def totp_device_confirm_new(
    *,
    user: User,
    device_id: Any,
    token: str,
    verified_by: TOTPDevice | None,
    replace: TOTPDevice | None = None,
) -> TOTPDevice | None:
    """Confirm a new device from a signed-in session with a code from it, after the caller
    checked a current code (`verified_by`; None only for an account that has no device yet,
    a patient turning two-factor sign-in on, whose password the caller checked).

    `totp.added`, `totp.replaced` (`replace` removed in the same transaction) or
    `totp.turned_on`. None for a wrong code. TwoFactorRefused if the new device is gone or too
    old, or the account's devices changed since the current code was checked."""
    with transaction.atomic():
        _lock_account(user)
        confirmed = set(
            TOTPDevice.objects.filter(user=user, confirmed=True).values_list("pk", flat=True)
        )
        # A current code from one of them, or (turning on) no device at all: as checked.
        if (verified_by.pk not in confirmed) if verified_by is not None else bool(confirmed):
            raise TwoFactorRefused("Your devices changed meanwhile. Please start again.")
        if replace is not None and replace.pk not in confirmed:
            raise TwoFactorRefused("That device is no longer yours to replace.")
        device = selectors.totp_device_pending(user=user, device_id=device_id)
        if device is None:
            raise TwoFactorRefused("That set-up has expired. Please start again.")
        if not device.verify_token(token):
            return None  # leaves the block normally: the throttling is kept
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        _device_row_event(kind=DEVICE_CONFIRMED, device=device, actor=user)
        attrs: dict[str, Any] = {"device": device.pk}
        if verified_by is not None:
            attrs["verified_by"] = verified_by.pk
        if replace is not None:
            _devices_delete(TOTPDevice.objects.filter(pk=replace.pk, user=user), actor=user)
            kind, attrs["replaced"] = "totp.replaced", replace.pk
        else:
            kind = "totp.added" if confirmed else "totp.turned_on"
        _device_event(kind=kind, user=user, actor=user, attrs=attrs)
    return device


def totp_device_remove(*, user: User, device: TOTPDevice, verified_by: TOTPDevice) -> None:
    """Remove one of the account's devices (`totp.removed`), after a current code from a
    device that stays (`verified_by`). Staff always keep one: TwoFactorRefused otherwise."""
    with transaction.atomic():
        _lock_account(user)
        others = TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk)
        if not others.exists():
            raise TwoFactorRefused(
                "Staff accounts must keep an authenticator app: replace this one instead."
                if selectors.user_role_requires_otp(user=user)
                else "To remove your only device, turn two-factor sign-in off."
            )
        if not others.filter(pk=verified_by.pk).exists():
            raise TwoFactorRefused("Enter a code from a device you keep.")
        if not TOTPDevice.objects.filter(pk=device.pk, user=user, confirmed=True).exists():
            raise TwoFactorRefused("That device was already removed.")
        _devices_delete(TOTPDevice.objects.filter(pk=device.pk, user=user), actor=user)
        _device_event(
            kind="totp.removed", user=user, actor=user,
            attrs={"device": device.pk, "verified_by": verified_by.pk},
        )  # fmt: skip


def totp_turn_off(*, user: User, verified_by: TOTPDevice) -> int:
    """A patient turns two-factor sign-in off (`totp.turned_off`): every device goes.
    Staff, hospital admins and superusers may not (TwoFactorRefused)."""
    if selectors.user_role_requires_otp(user=user):
        raise TwoFactorRefused("Staff accounts must keep two-factor sign-in.")
    with transaction.atomic():
        _lock_account(user)
        removed = _devices_delete(TOTPDevice.objects.filter(user=user), actor=user)
        _device_event(
            kind="totp.turned_off", user=user, actor=user,
            attrs={"removed": removed, "verified_by": verified_by.pk},
        )  # fmt: skip
    return removed


def totp_devices_reset(*, user: User, actor: User, verified_by: TOTPDevice) -> int:
    """An admin's reset (`totp.reset`): every device of `user` goes, so their next log-in
    enrols a new one (and their sessions verified by a removed device are verified no more).
    Who may reset whom is the admin's (accounts.admin); `verified_by` is the device that
    accepted the admin's own current code."""
    with transaction.atomic():
        _lock_account(user)
        removed = _devices_delete(TOTPDevice.objects.filter(user=user), actor=actor)
        _device_event(
            kind="totp.reset", user=user, actor=actor,
            attrs={"removed": removed, "verified_by": verified_by.pk},
        )  # fmt: skip
    return removed


def totp_device_secret_set(*, device: TOTPDevice, secret: bytes, actor: User | None) -> None:
    """Set-up code only (seed_demo re-seeded with another SECRET_KEY): give a device this
    secret and confirm it, with the device row's event."""
    with transaction.atomic():
        device.set_key(secret)
        device.confirmed = True
        device.save(update_fields=["key_master_id", "encrypted_key", "confirmed"])
        _device_row_event(kind=DEVICE_CONFIRMED, device=device, actor=actor)


def totp_device_rewrap(*, device_id: int, ring: KeyRing) -> bool:
    """Re-encrypt one device's secret under the ring's current master key (rotate_keys), in
    a short transaction with the row locked. False if it already was (or is gone)."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(pk=device_id).first()
        if device is None or not device.rewrap(ring):
            return False
        device.save(update_fields=["key_master_id", "encrypted_key"])
    return True


def session_device_forget(*, request: HttpRequest) -> None:
    """The session is no longer verified by a device (its devices were removed)."""
    request.session.pop(DEVICE_ID_SESSION_KEY, None)
