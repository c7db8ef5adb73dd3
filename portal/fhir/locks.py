"""The lock that serializes conditional creates with the same criteria.

A conditional create (If-None-Exist, a Bundle entry's ifNoneExist) reads "is there one
already?" and then writes: two concurrent requests could both read nothing and both create.
Each takes a transaction-level PostgreSQL advisory lock on a key derived from (hospital,
type, criteria) before it reads, so the second one waits for the first one's commit and then
finds its row. The key is a keyed digest (portal.fhir.models.import_source_token): the
criteria (an identifier, a name) never reach pg_locks in clear.

Other databases take no lock here: SQLite lets one writer at a time, and the unique
constraint on ImportIdentity (hospital, type, source token, part) refuses a second identity
for the same criteria there and everywhere (the callers retry after an IntegrityError and
then find the first one's row).
"""

from __future__ import annotations

from django.db import connection

from portal.fhir.models import import_source_token


def conditional_lock(*, hospital_id: int, resource_type: str, key: str) -> None:
    """Wait for, then hold until this transaction ends, the lock of (hospital, type, key).
    Call inside transaction.atomic()."""
    if connection.vendor != "postgresql":
        return
    token = import_source_token(
        hospital_id=hospital_id, value=f"{resource_type}|{key}", purpose="conditional-lock"
    )
    # A signed 64-bit number from the token's hex digits (advisory locks take a bigint).
    number = int(token[:16], 16)
    number = number - (1 << 64) if number >= 1 << 63 else number
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [number])
