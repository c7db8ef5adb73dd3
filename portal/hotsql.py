"""The reads on the path of every signed-in page, written as SQL once per process.

Building and compiling a queryset costs the ORM 0.5 to 4 ms (the chart's grants union:
about 4 ms), against 0.1 to 0.3 ms for the database to run it. The session, the user, the
second factor, the memberships, the chart's patient and its grants were therefore most of
a chart's time, and the bare view with a signed-in session ran at a seventh of the
anonymous one. These statements are built once from the models' own metadata (table and
column names, never user input).

Rows become model instances as the ORM makes them: the same backend and field converters
(encrypted fields stay ciphertext until read, as with the ORM) and `Model.from_db`. The
tests run every caller on SQLite and PostgreSQL, against the ORM semantics they replace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper


@dataclass(frozen=True)
class Columns:
    """One model's concrete columns as a SELECT list under a table alias, with the
    converters the ORM would apply to each."""

    model: type[models.Model]
    sql: str
    attnames: tuple[str, ...]
    converters: tuple[tuple[int, tuple[Callable, ...], Any], ...]

    @property
    def width(self) -> int:
        return len(self.attnames)

    def load(self, row: Sequence[Any], start: int = 0, conn: Any = None) -> models.Model:
        """The instance of `row[start:]` (`conn`: the connection, if the caller holds it;
        looking it up costs about a microsecond, and a chart loads a few dozen rows)."""
        values = list(row[start : start + len(self.attnames)])
        if self.converters:
            conn = conn or db()
            for index, funcs, expression in self.converters:
                value = values[index]
                for func in funcs:
                    value = func(value, expression, conn)
                values[index] = value
        return self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, values)

    def load_all(self, rows: Sequence[Sequence[Any]]) -> list[models.Model]:
        conn = db() if self.converters else None
        return [self.load(row, 0, conn) for row in rows]

    def load_with(self, field: str, related: Columns, row: Sequence[Any], start: int = 0):
        """This model's instance with its foreign key `field` already holding the related
        row that follows its columns (what select_related gives)."""
        instance = self.load(row, start)
        self.model._meta.get_field(field).set_cached_value(
            instance, related.load(row, start + self.width)
        )
        return instance


_COLUMNS: dict[tuple[type[models.Model], str, str], Columns] = {}


def db() -> BaseDatabaseWrapper:
    """This thread's default connection itself: `django.db.connection` is a proxy that
    looks the connection up on every attribute read, a dozen times per statement here."""
    return connections[DEFAULT_DB_ALIAS]


@cache
def vendor() -> str:
    """The default database's vendor, looked up once: it is the process's settings."""
    return db().vendor


def columns(model: type[models.Model], alias: str) -> Columns:
    key = (model, alias, vendor())
    found = _COLUMNS.get(key)
    if found is None:
        connection = db()
        qn = connection.ops.quote_name
        fields = model._meta.concrete_fields
        converters = []
        for index, field in enumerate(fields):
            col = field.get_col(alias)
            funcs = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if funcs:
                converters.append((index, tuple(funcs), col))
        found = _COLUMNS[key] = Columns(
            model=model,
            sql=", ".join(f"{qn(alias)}.{qn(f.column)}" for f in fields),
            attnames=tuple(f.attname for f in fields),
            converters=tuple(converters),
        )
    return found


def join(model: type[models.Model], alias: str, field: str, related_alias: str) -> str:
    """`FROM <model> alias INNER JOIN <field's model> related_alias ON ...`."""
    fk = model._meta.get_field(field)
    target = fk.related_model
    target_key, key = column(target, fk.target_field.name), column(model, field)
    return (
        f"FROM {table(model)} {alias} INNER JOIN {table(target)} {related_alias} "
        f"ON {related_alias}.{target_key} = {alias}.{key}"
    )


def live(model: type[models.Model], alias: str) -> str:
    """The condition "this grant row is in its time window" (`_live_q` in the records
    selectors), for a permission table under `alias`. Parameters: now, now."""
    ends, starts = column(model, "expires_at"), column(model, "starts_at")
    return (
        f"({alias}.{ends} IS NULL OR {alias}.{ends} > %s) "
        f"AND ({alias}.{starts} IS NULL OR {alias}.{starts} <= %s)"
    )


_CONVERTERS: dict[tuple[type[models.Model], str, str], tuple[tuple[Callable, ...], Any]] = {}


def convert(model: type[models.Model], name: str, value: Any) -> Any:
    """A single selected column's value as the ORM would give it (SQLite returns times as
    text, for one)."""
    conn = db()
    key = (model, name, conn.vendor)
    found = _CONVERTERS.get(key)
    if found is None:
        col = model._meta.get_field(name).get_col(model._meta.db_table)
        found = _CONVERTERS[key] = (
            tuple(conn.ops.get_db_converters(col) + col.get_db_converters(conn)),
            col,
        )
    funcs, expression = found
    for func in funcs:
        value = func(value, expression, conn)
    return value


def table(model: type[models.Model]) -> str:
    return db().ops.quote_name(model._meta.db_table)


def column(model: type[models.Model], name: str) -> str:
    return db().ops.quote_name(model._meta.get_field(name).column)


_SQL: dict[tuple[str, str], str] = {}


def statement(name: str, build: Callable[[], str]) -> str:
    """The statement `name`, built once per process and database vendor."""
    key = (name, vendor())
    sql = _SQL.get(key)
    if sql is None:
        sql = _SQL[key] = build()
    return sql


def rows(sql: str, params: Sequence[Any]) -> list[tuple]:
    conn = db()
    if conn.vendor == "postgresql" and not conn.queries_logged and not conn.execute_wrappers:
        # Straight to a psycopg cursor kept per connection, with Django's broken-transaction
        # check and error translation kept (the latter only when something failed): Django's
        # cursor wrapper and a new cursor cost about 40 us a statement on top of psycopg's
        # own (measured), and a chart runs four of these. While queries are logged, and
        # while an execute wrapper is installed, the Django cursor below.
        conn.ensure_connection()
        conn.validate_no_broken_transaction()
        cursor = _hot_cursor(conn)
        try:
            cursor.execute(sql, params)
            return cursor.fetchall()
        except Exception:
            with conn.wrap_database_errors:
                raise
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _hot_cursor(conn: BaseDatabaseWrapper) -> Any:
    """A server-binding psycopg cursor on this connection, made once per connection."""
    raw = conn.connection
    cursor = getattr(conn, "_hotsql_cursor", None)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        from django.db.backends.postgresql.base import ServerBindingCursor

        cursor = conn._hotsql_cursor = ServerBindingCursor(raw)
        _load_timestamps_in_c(conn, cursor)
    return cursor


def _load_timestamps_in_c(conn: BaseDatabaseWrapper, cursor: Any) -> None:
    """psycopg's own timestamptz loader on the hot cursor, instead of Django's.

    Django's (`psycopg_any.BaseTzLoader`) subclasses psycopg's pure-Python loader to put
    the connection's time zone on each value; psycopg's default one is compiled (about 3 us
    less per value, and a chart loads about 28). With USE_TZ and the connection in UTC,
    which is how Django runs PostgreSQL (it sets the session's TimeZone to UTC), psycopg's
    loader gives the same value with the same tzinfo, `datetime.timezone.utc`:
    tests/test_hotsql.py compares the two loaders, and every hot reader with the ORM.
    """
    import psycopg
    from psycopg.postgres import types

    if not (
        settings.USE_TZ
        and conn.timezone is UTC
        and cursor.connection.pgconn.parameter_status(b"TimeZone") in (b"UTC", b"Etc/UTC")
    ):
        return
    oid = types["timestamptz"].oid
    loader = psycopg.adapters.get_loader(oid, psycopg.pq.Format.TEXT)
    if loader is not None:
        cursor.adapters.register_loader(oid, loader)


def row_id(value: Any) -> int | None:
    """An id from a URL, a form or a session, or None: no row has an id outside the 64-bit
    range, so such a value never reaches the database."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if -(2**63) <= number < 2**63 else None


def moment(value: datetime) -> Any:
    """A datetime as the ORM would send it to this database in a comparison."""
    return db().ops.adapt_datetimefield_value(value)
