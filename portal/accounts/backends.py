"""Django's ModelBackend, reading the user of every signed-in request with a prepared
statement instead of a queryset built and compiled each time.

While AuthenticationMiddleware loads a request's user (`AUTH_REQUEST` names the request),
the user comes with its context: the session's TOTP device, the memberships and whether
the account has a registration, for the OTP and hospital middleware and the page header.
The session store read them with the session (accounts.selectors.session_fetch); when the
signed session data names another user or device than that row did, they are read here
(auth_context_fetch). Django still makes every decision about the user (the backend path,
the session hash, `is_active`) exactly as before.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django_otp import DEVICE_ID_SESSION_KEY

from portal.accounts.selectors import auth_context_fetch, session_totp_device_id

AUTH_REQUEST: ContextVar[HttpRequest | None] = ContextVar("auth_request", default=None)


class ModelBackend(DjangoModelBackend):
    def get_user(self, user_id: Any) -> AbstractBaseUser | None:
        User = get_user_model()
        try:
            pk = User._meta.pk.to_python(user_id)
        except (ValidationError, TypeError, ValueError):  # a malformed id is no user
            return None
        request = AUTH_REQUEST.get()
        if request is not None:
            device_id = session_totp_device_id(request.session.get(DEVICE_ID_SESSION_KEY))
            # Read with the session (accounts.sessions), if it is this user's and device's.
            context = getattr(request.session, "auth_context", None)
            if context is None or context.user.pk != pk or context.device_id != device_id:
                context = auth_context_fetch(user_id=pk, device_id=device_id)
            if context is None:
                return None
            request.auth_context = context
            user = context.user
        else:  # not while a request's user is loaded: Django's own lookup
            return super().get_user(pk)
        return user if self.user_can_authenticate(user) else None
