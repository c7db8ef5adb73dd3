"""Canonical content of each record, as digested into the ledger.

Every field that matters clinically is here, so that an edit made behind the application's
back changes the digest and verify_ledger names the row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from portal.records.models import Observation, Patient


def _decimal(value: Decimal | None, places: int) -> str | None:
    # As the column stores it, whatever precision the caller passed in.
    return (
        None if value is None else format(Decimal(value).quantize(Decimal(1).scaleb(-places)), "f")
    )


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def patient(obj: Patient) -> dict[str, Any]:
    return {
        "hospital": obj.hospital_id,
        "mrn": obj.mrn,
        "given_name": obj.given_name,
        "family_name": obj.family_name,
        "birth_date": obj.birth_date.isoformat() if obj.birth_date else None,
        "user": obj.user_id,
    }


def observation(obj: Observation) -> dict[str, Any]:
    return {
        "hospital": obj.hospital_id,
        "patient": obj.patient_id,
        "code": obj.code,
        "display": obj.display,
        "value": _decimal(obj.value, Observation._meta.get_field("value").decimal_places),
        "unit": obj.unit,
        "effective_at": _instant(obj.effective_at),
        "recorded_by": obj.recorded_by_id,
    }
