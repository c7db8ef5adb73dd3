"""portal.hotsql's own behaviour, while portal.accounts still reads through it (the records
app no longer does: its access rule is portal.records.access, tested in tests/records).
"""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest

from portal import hotsql


def test_statements_are_built_once_per_name():
    calls = []

    def build():
        calls.append(1)
        return "SELECT 1"

    assert hotsql.statement("test.once", build) == hotsql.statement("test.once", build)
    assert len(calls) == 1


def test_rows_binds_parameters(db):
    assert hotsql.rows("SELECT 1 WHERE 1 = %s", [1]) == [(1,)]
    assert hotsql.rows("SELECT 1 WHERE 1 = %s", [2]) == []


@pytest.mark.django_db(transaction=True)
def test_a_failing_statement_raises_djangos_error_and_leaves_the_connection_usable():
    """hotsql.rows goes straight to psycopg on PostgreSQL: its errors must still arrive as
    Django's, and a failure inside a transaction must still leave it as Django's cursor does."""
    from django.db import DatabaseError, transaction
    from django.db.transaction import TransactionManagementError

    missing = "SELECT * FROM no_such_table WHERE 1 = %s"
    with pytest.raises(DatabaseError):
        hotsql.rows(missing, [0])
    assert hotsql.rows("SELECT 1 + %s", [1]) == [(2,)]
    with transaction.atomic():
        with pytest.raises(DatabaseError), transaction.atomic():
            hotsql.rows(missing, [0])
        assert hotsql.rows("SELECT %s", [3]) == [(3,)]  # the savepoint rolled back
    # A failure that left an atomic block marks the outer one broken: no statement runs.
    with transaction.atomic():
        with contextlib.suppress(DatabaseError), transaction.atomic(savepoint=False):
            hotsql.rows(missing, [0])
        with pytest.raises(TransactionManagementError):
            hotsql.rows("SELECT %s", [4])
    assert hotsql.rows("SELECT %s", [5]) == [(5,)]


@pytest.mark.django_db
def test_the_hot_cursors_timestamps_are_djangos():
    """The hot cursor loads timestamptz with psycopg's compiled loader, not Django's
    (hotsql._load_timestamps_in_c): the same instants with the same tzinfo, whatever the
    offset and precision they were written with."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the hot cursor is PostgreSQL's; this runs in the PostgreSQL pass")
    connection.ensure_connection()
    hot = hotsql._hot_cursor(connection)
    oid = connection.connection.adapters.types["timestamptz"].oid
    assert hot.adapters.get_loader(oid, 0) is not connection.connection.adapters.get_loader(oid, 0)
    texts = [
        "2026-03-29 00:30:00+00",
        "2026-03-29 01:30:00.000001+01",
        "1969-12-31 23:59:59.999999-03:30",
        "0005-01-09 12:00:00+00",
        "9999-12-31 23:59:59+00",
        "2026-10-25 01:30:00+05:45",
    ]
    for text in texts:
        sql = "SELECT %s::timestamptz"
        (fast,) = hot.execute(sql, [text]).fetchone()
        with connection.cursor() as cursor:
            cursor.execute(sql, [text])
            (django,) = cursor.fetchone()
        assert fast == django and fast.tzinfo is django.tzinfo is dt.UTC, text
        assert fast.isoformat() == django.isoformat()
