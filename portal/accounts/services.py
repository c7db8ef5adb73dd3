"""Log-in steps. The password step and the TOTP step are separate requests; between them
the session only holds the id of a user who has not signed in yet."""

from __future__ import annotations

import time

from django.contrib.auth import login
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.accounts import selectors
from portal.accounts.middleware import AUTH_AT, IDLE_SECONDS, SEEN_AT

PENDING = "pending_login"
PENDING_TTL_SECONDS = 300
MAX_TOKEN_FAILURES = 5


def login_complete(
    *, request: HttpRequest, user: AbstractBaseUser, backend: str, device: TOTPDevice | None
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


def login_pending_start(*, request: HttpRequest, user: AbstractBaseUser, backend: str) -> None:
    request.session[PENDING] = {
        "user_id": user.pk,
        "backend": backend,
        "at": time.time(),
        "failures": 0,
    }


def login_pending_get(*, request: HttpRequest) -> tuple[AbstractBaseUser, str] | None:
    from django.contrib.auth import get_user_model

    pending = request.session.get(PENDING)
    if not pending or time.time() - pending["at"] > PENDING_TTL_SECONDS:
        request.session.pop(PENDING, None)
        return None
    user = get_user_model()._default_manager.filter(pk=pending["user_id"], is_active=True).first()
    if user is None:
        return None
    return user, pending["backend"]


def login_pending_token_failed(*, request: HttpRequest, user: AbstractBaseUser) -> bool:
    """Count a wrong code. Returns False once the pending log-in is used up.

    Each wrong code is also reported to django-axes as a failed log-in, so guessing codes
    leads to the same lockout as guessing passwords.
    """
    user_login_failed.send(
        sender=__name__,
        credentials={"username": user.get_username()},
        request=request,
    )
    pending = request.session.get(PENDING) or {}
    pending["failures"] = pending.get("failures", 0) + 1
    if pending["failures"] >= MAX_TOKEN_FAILURES:
        request.session.pop(PENDING, None)
        return False
    request.session[PENDING] = pending
    return True


def totp_device_for_setup(*, user: AbstractBaseUser) -> TOTPDevice:
    """The user's unconfirmed device (created once), shown until a code confirms it."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("id").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device
