"""Changing the database the way someone with direct access would, past the ledger's
triggers: on PostgreSQL as only a superuser can (the replication role, for which ordinary
triggers do not fire); on SQLite, which has no such role, by dropping the triggers for the
statement and creating them again."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connection

# Triggers dropped for a transactional test's flush, created again before the next test.
_stashed: dict[str, str] = {}


def sqlite_triggers_drop() -> dict[str, str]:
    """Drop the SQLite triggers on ledger tables; returns their CREATE statements by name."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
            "AND tbl_name LIKE 'ledger\\_%' ESCAPE '\\'"
        )
        found = dict(cursor.fetchall())
        for name in found:
            cursor.execute(f'DROP TRIGGER "{name}"')
    return found


def sqlite_triggers_create(triggers: dict[str, str]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        present = {name for (name,) in cursor.fetchall()}
        for name, sql in triggers.items():
            if name not in present:
                cursor.execute(sql)


@contextlib.contextmanager
def triggers_off() -> Iterator[None]:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET session_replication_role = DEFAULT")
    elif connection.vendor == "sqlite":
        dropped = sqlite_triggers_drop()
        try:
            yield
        finally:
            sqlite_triggers_create(dropped)
    else:
        yield


def tamper(sql: str, params: tuple | list = ()) -> None:
    """One statement, run past the ledger's triggers."""
    with triggers_off(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def before_flush() -> None:
    """A transactional test ends with a flush (DELETE of every row on SQLite), which the
    ledger's triggers rightly refuse: they are dropped for it and restored by `after_flush`
    before the next test."""
    _stashed.update(sqlite_triggers_drop())


def after_flush() -> None:
    if _stashed:
        sqlite_triggers_create(_stashed)
