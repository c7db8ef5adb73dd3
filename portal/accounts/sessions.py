"""Django's database session store, reading the session and its user's context in one
prepared statement (accounts.selectors.session_fetch).

Everything else (create, save, rotation at log-in, delete at log-out, expiry) is Django's;
saving also copies the user and device ids into their columns (accounts.models.Session).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django_otp import DEVICE_ID_SESSION_KEY

from portal import hotsql
from portal.accounts.selectors import AuthContext, session_fetch, session_totp_device_id


class SessionStore(DatabaseSessionStore):
    # The user context the load read with the session, for the backend (None if the
    # session names no user, or was not loaded).
    auth_context: AuthContext | None = None

    @classmethod
    def get_model_class(cls):
        from portal.accounts.models import Session

        return Session

    def create_model_instance(self, data: dict[str, Any]):
        instance = super().create_model_instance(data)
        instance.user_pk = hotsql.row_id(data.get(SESSION_KEY))
        instance.device_pk = session_totp_device_id(data.get(DEVICE_ID_SESSION_KEY))
        return instance

    def load(self) -> dict:
        key = self.session_key  # None when the cookie's value is not a valid key
        found = session_fetch(session_key=key) if key is not None else None
        if found is None:
            # As Django's store does for a missing or expired session: a new key on save.
            self._session_key = None
            return {}
        session_data, self.auth_context = found
        return self.decode(session_data)
