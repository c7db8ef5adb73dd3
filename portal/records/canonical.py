"""Canonical content of patients and records, as digested into the ledger.

Every concrete field except the surrogate key and the creation timestamp is included, so an
edit made behind the application's back changes the digest and verify_ledger names the row.
Values are normalized to what the database gives back (UTC instants, decimals at the
column's scale), so a row digests the same before and after a round trip.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.db import models

from ledger.subjects import SubjectUnreadable
from portal.records.crypto import DecryptionError

SKIPPED = {"id", "created_at"}
# Search tokens added after rows were first ledgered: digesting them would change every
# earlier row's digest. Each is derived from a digested value instead, and checked against
# it: a stored row whose token was altered cannot be read back (verify_ledger names it).
# (At creation the token is computed by the INSERT, after the event's digest.)
CHECKED_TOKENS: dict[str, tuple[str, ...]] = {"records.observation": ("code_index",)}
# Fields added after rows were first ledgered, empty on those rows: digested only when they
# hold a value, so every earlier row digests as before (and a value written into one behind
# the application's back, or a value removed, still changes the digest).
LATER_FIELDS = frozenset(
    {"correction_reason", "valid_until", "value_fhir", "components", "fhir_details",
     "effective_end", "issued"}
)  # fmt: skip


def _value(field: models.Field, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal) or isinstance(field, models.DecimalField):
        places = getattr(field, "decimal_places", None)
        dec = Decimal(value)
        return format(dec.quantize(Decimal(1).scaleb(-places)) if places is not None else dec, "f")
    if isinstance(value, bytes | bytearray | memoryview):
        return "sha256:" + hashlib.sha256(bytes(value)).hexdigest()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def canonical(obj: models.Model) -> dict[str, Any]:
    tokens = CHECKED_TOKENS.get(obj._meta.label_lower, ())
    try:
        content = {
            field.attname: _value(field, getattr(obj, field.attname))
            for field in obj._meta.concrete_fields
            if field.name not in SKIPPED
            and field.name not in tokens
            and not (field.name in LATER_FIELDS and getattr(obj, field.attname) is None)
        }
        if obj.pk is not None:
            for name in tokens:
                field = obj._meta.get_field(name)
                if getattr(obj, field.attname) != field.token(obj):
                    raise SubjectUnreadable(
                        f"{obj._meta.label} {obj.pk}: its {name} does not match the value it is "
                        "derived from (altered behind the application's back)"
                    )
        return content
    except DecryptionError as exc:  # MissingDataKey included
        raise SubjectUnreadable(str(exc)) from exc
