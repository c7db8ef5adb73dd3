"""The session row: Django's, plus the two ids the per-request read joins on."""

from __future__ import annotations

from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models


class Session(AbstractBaseSession):
    """Django's database session, with copies of the user id and the TOTP device id its
    (signed, encoded) data holds, written on every save (`SessionStore`).

    They let one statement read the session together with its user's context (user,
    device, memberships: accounts.selectors.session_fetch) instead of one after the other.
    They decide nothing: the backend uses what the join read only when the decoded data
    names the same user and device, and reads them itself otherwise.
    """

    user_pk = models.BigIntegerField(null=True, blank=True)
    device_pk = models.BigIntegerField(null=True, blank=True)

    class Meta(AbstractBaseSession.Meta):
        db_table = "accounts_session"

    @classmethod
    def get_session_store_class(cls):
        from portal.accounts.sessions import SessionStore

        return SessionStore
