"""Django's database session store, with its one per-request read as a prepared statement.

Everything else (create, save, rotation at log-in, delete at log-out, expiry) is Django's.
"""

from __future__ import annotations

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from portal import hotsql


def _load_sql() -> str:
    return (
        f"SELECT {hotsql.column(Session, 'session_data')} FROM {hotsql.table(Session)} "  # noqa: S608
        f"WHERE {hotsql.column(Session, 'session_key')} = %s "
        f"AND {hotsql.column(Session, 'expire_date')} > %s"
    )


class SessionStore(DatabaseSessionStore):
    def load(self) -> dict:
        key = self.session_key  # None when the cookie's value is not a valid key
        found = []
        if key is not None:
            found = hotsql.rows(
                hotsql.statement("session.load", _load_sql),
                [key, hotsql.moment(timezone.now())],
            )
        if not found:
            # As Django's store does for a missing or expired session: a new key on save.
            self._session_key = None
            return {}
        return self.decode(found[0][0])
