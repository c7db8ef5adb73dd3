"""An event's facts as its leaf states them, compared with the event's columns.

What the portal shows (the patient's access log and Verify page, the admin's access events
and CSV, FHIR AuditEvent and Provenance) is read from ledger_event's columns. The database
refuses to change them once written (migration 0006), and `verify_ledger` and the patient's
"Verify" compare them with the leaf through `facts_differing`: one comparison, both places.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ledger.models import Event

# How a finding names each fact (the leaf's keys; attributes are "attrs.<name>").
FACT_LABELS = {
    "event": "event id",
    "kind": "kind",
    "hospital": "hospital",
    "subject": "subject",
    "patient": "patient",
    "actor": "actor",
    "actor_hospital": "actor's hospital",
    "time": "time",
    "digest": "digest",
    "attrs": "attributes",
}

# The Event columns the facts are read from (values_list order for `facts_of_values`).
FACT_COLUMNS = (
    "event_id", "kind", "hospital_id", "subject_type", "subject_id", "patient_id", "actor_id",
    "actor_hospital_id", "recorded_at", "digest", "attrs",
)  # fmt: skip


class LeafUnreadable(ValueError):
    """The leaf is not a JSON object (so it states no facts)."""


def leaf_document(leaf: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(bytes(leaf))
    except (ValueError, UnicodeDecodeError) as exc:
        raise LeafUnreadable("the leaf is not JSON") from exc
    if not isinstance(doc, dict):
        raise LeafUnreadable("the leaf is not a JSON object")
    return doc


def facts_of_values(
    event_id: uuid.UUID | str,
    kind: str,
    hospital_id: int | None,
    subject_type: str,
    subject_id: str,
    patient_id: int | None,
    actor_id: int | None,
    actor_hospital_id: int | None,
    recorded_at: datetime,
    digest: str,
    attrs: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The facts the columns state, keyed as in the leaf (positional: FACT_COLUMNS)."""
    return {
        "event": str(event_id),
        "kind": kind,
        "hospital": hospital_id,
        "subject": f"{subject_type}:{subject_id}",
        "patient": patient_id,
        "actor": actor_id,
        "actor_hospital": actor_hospital_id,
        "time": recorded_at,
        "digest": digest,
        "attrs": attrs,
    }


def facts_of_event(event: Event) -> dict[str, Any]:
    return facts_of_values(*(getattr(event, column) for column in FACT_COLUMNS))


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python; a forged `"break_glass": 1` is not the leaf's `true`.
    return type(a) is type(b) and a == b


def _same_time(stated: Any, recorded_at: Any) -> bool:
    if not isinstance(stated, str) or not isinstance(recorded_at, datetime):
        return False
    try:
        return datetime.fromisoformat(stated) == recorded_at
    except (ValueError, TypeError):  # TypeError: naive vs aware
        return False


def facts_differing(facts: Mapping[str, Any], leaf: bytes) -> list[str]:
    """The facts whose column value differs from the leaf's (leaf keys, "attrs.<name>" for
    attributes), in a stable order; [] when all agree. Raises LeafUnreadable."""
    doc = leaf_document(leaf)
    differing: list[str] = []
    for key, value in facts.items():
        stated = doc.get(key)
        if key == "time":
            if not _same_time(stated, value):
                differing.append(key)
        elif key == "attrs":
            mine = dict(value or {})
            if not isinstance(stated, dict):
                differing.append(key)
                continue
            for name in sorted(set(mine) | set(stated)):
                if name not in mine or name not in stated or not _same(mine[name], stated[name]):
                    differing.append(f"attrs.{name}")
        elif not _same(stated, value):
            differing.append(key)
    return differing


def describe(differing: list[str]) -> str:
    """'actor, attributes (break_glass, purpose, via)' for a finding or a page."""
    plain = [FACT_LABELS.get(name, name) for name in differing if not name.startswith("attrs.")]
    attrs = [name.removeprefix("attrs.") for name in differing if name.startswith("attrs.")]
    if attrs:
        plain.append(f"attributes ({', '.join(attrs)})")
    return ", ".join(plain)
