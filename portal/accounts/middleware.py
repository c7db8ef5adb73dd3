from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import middleware as django_auth_middleware
from django.contrib.auth.middleware import (
    AuthenticationMiddleware as DjangoAuthenticationMiddleware,
)
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.middleware import OTPMiddleware as DjangoOTPMiddleware

from portal.accounts.backends import AUTH_REQUEST
from portal.accounts.selectors import AuthContext, session_totp_device_id

AUTH_AT = "auth_at"
SEEN_AT = "seen_at"
IDLE_SECONDS = "idle_seconds"
SEEN_AT_RESOLUTION = 30.0


class SessionTimeoutMiddleware:
    """Idle and absolute log-off, enforced on the server.

    The limits are written into the session at log-in (staff 15 minutes idle, patients 30,
    everyone 12 hours absolute). A session without them was not made by our log-in views
    and is ended as well. `logout()` deletes the session row, so the old cookie is worthless.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = time.time()
            session = request.session
            auth_at = session.get(AUTH_AT)
            seen_at = session.get(SEEN_AT)
            idle = session.get(IDLE_SECONDS, settings.SESSION_IDLE_TIMEOUT_STAFF.total_seconds())
            absolute = settings.SESSION_ABSOLUTE_TIMEOUT.total_seconds()
            if auth_at is None or seen_at is None or now - auth_at > absolute:
                return self._end(request, "Your session has ended. Please sign in again.")
            if now - seen_at > idle:
                minutes = round(idle / 60)
                return self._end(
                    request, f"You were signed out after {minutes} minutes without activity."
                )
            if now - seen_at > SEEN_AT_RESOLUTION:
                # Refreshed at most every 30 s: idle limits are minutes, and not writing the
                # session row on every request saves a database write per page.
                session[SEEN_AT] = now
        return self.get_response(request)

    def _end(self, request: HttpRequest, message: str) -> HttpResponse:
        logout(request)
        messages.info(request, message)
        return redirect_to_login(request.get_full_path())


class AuthenticationMiddleware(DjangoAuthenticationMiddleware):
    """Django's, with the request named to the backend while it loads the user, so the
    user's per-request context comes from one statement (see accounts.backends).

    The user is loaded here, not lazily: SessionTimeoutMiddleware asks every request
    whether it is signed in, so a lazy user was always loaded anyway, and each later read of
    `request.user` went through two lazy proxies (Django's and django-otp's), each raising
    and catching an AttributeError per attribute: a chart reads it about 170 times."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)  # request.auser stays Django's, lazy
        request.user = _load_user(request)


def _load_user(request: HttpRequest):
    token = AUTH_REQUEST.set(request)
    try:
        return django_auth_middleware.get_user(request)  # Django's checks, cached per request
    finally:
        AUTH_REQUEST.reset(token)


def request_auth_context(request: HttpRequest, user) -> AuthContext | None:
    """The AuthContext read with the request's signed-in `user`, if it is that user's
    (`user` is passed in: the OTP middleware asks while request.user is being set up)."""
    context = getattr(request, "auth_context", None)
    if context is None or not user.is_authenticated or context.user.pk != user.pk:
        return None
    return context


class OTPMiddleware(DjangoOTPMiddleware):
    """django-otp's middleware, taking the session's TOTP device (the only kind this portal
    enrols) from the request's AuthContext when it was read there; otherwise, and for any
    other device kind, django-otp's own lookup. The binding and confirmation checks stay
    django-otp's own (`_finalize_device`)."""

    def _install_lazy_accessors(self, request):
        # django-otp's, but verifying the (already loaded) user at once rather than behind
        # another lazy proxy: see AuthenticationMiddleware. request.auser stays lazy.
        auser = getattr(request, "auser", None)
        if auser is not None:
            request.auser = partial(self._verify_user_async_via_auser, request, auser)
        user = getattr(request, "user", None)
        if user is not None:
            request.user = self._verify_user_sync(request, user)

    def _verify_user_sync(self, request, user):
        # django-otp's method, but for where the device comes from.
        self._init_user_fields(user)
        if user.is_authenticated:
            persistent_id = request.session.get(DEVICE_ID_SESSION_KEY)
            device = None
            if persistent_id:
                context = request_auth_context(request, user)
                device_id = session_totp_device_id(persistent_id)
                if context is not None and device_id is not None and context.device_id == device_id:
                    device = context.device
                else:
                    device = self._device_from_persistent_id(persistent_id)
            user.otp_device = self._finalize_device(request, user, device)
        return user
