"""Comparing Observations as given and as served: the matcher of the round-trip tests.

General, not fixture-specific: a source Observation is matched to a served one by its code,
effective time and value (and components), then compared element by element: codes, category
codes, effective[x] (same type, same instants), issued, value (same type; a Quantity's
number at 3 decimals, its unit, system and code; any other type as given), components,
dataAbsentReason and status.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.utils.dateparse import parse_datetime

EFFECTIVE_KEYS = ("effectiveDateTime", "effectivePeriod", "effectiveInstant", "effectiveTiming")


def _q(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN)


def _moment(text: Any) -> Any:
    """A FHIR dateTime/instant as a comparable value: an aware instant, else the text (a
    date, a year-month: compared as written)."""
    if not isinstance(text, str):
        return text
    parsed = parse_datetime(text)
    return parsed if parsed is not None and parsed.tzinfo is not None else text


def _value_of(item: dict[str, Any]) -> tuple[str, Any] | None:
    keys = [k for k in item if k.startswith("value") and len(k) > 5]
    assert len(keys) <= 1, keys
    return (keys[0], item[keys[0]]) if keys else None


def value_signature(item: dict[str, Any]) -> Any:
    """What a value says, comparably: a Quantity by its number at 3 decimals and its unit
    code, anything else by its canonical JSON."""
    found = _value_of(item)
    if found is None:
        return None
    key, content = found
    if key == "valueQuantity" and "value" in content:
        rest = {k: v for k, v in content.items() if k != "value"}
        return (key, _q(content["value"]), json.dumps(rest, sort_keys=True))
    return (key, json.dumps(content, sort_keys=True))


def _codings(concept: Any) -> list[tuple[Any, Any, Any]]:
    concept = concept or {}
    return sorted(
        (c.get("system"), c.get("code"), c.get("display")) for c in concept.get("coding") or []
    )


def _effective(resource: dict[str, Any]) -> tuple[str, Any] | None:
    for key in EFFECTIVE_KEYS:
        if key in resource:
            value = resource[key]
            if key == "effectivePeriod":
                return key, tuple(sorted((k, _moment(v)) for k, v in value.items()))
            return key, _moment(value)
    return None


def signature(resource: dict[str, Any]) -> Any:
    """The matching key: code, effective time, value and components."""
    components = tuple(
        sorted(
            (json.dumps(_codings(c.get("code"))), json.dumps(str(value_signature(c))))
            for c in resource.get("component") or []
        )
    )
    return (
        json.dumps(_codings(resource.get("code"))),
        str(_effective(resource)),
        str(value_signature(resource)),
        components,
    )


def assert_same_observation(src: dict[str, Any], out: dict[str, Any]) -> None:
    """`out` (served) says what `src` (given) says."""
    label = f"Observation/{src.get('id')}"
    assert _codings(out["code"]) == _codings(src["code"]), label
    assert out["code"].get("text") == src["code"].get("text"), label
    src_categories = sorted(
        (c.get("system"), c.get("code")) for k in src.get("category") or [] for c in k["coding"]
    )
    out_categories = sorted(
        (c.get("system"), c.get("code")) for k in out.get("category") or [] for c in k["coding"]
    )
    assert out_categories == src_categories, label
    assert _effective(out) == _effective(src), label
    assert _moment(out.get("issued")) == _moment(src.get("issued")), label
    assert value_signature(out) == value_signature(src), label
    assert out.get("dataAbsentReason") == src.get("dataAbsentReason"), label
    assert out["status"] == src["status"], label
    src_parts, out_parts = src.get("component") or [], out.get("component") or []
    assert len(out_parts) == len(src_parts), label
    for given, served in zip(src_parts, out_parts, strict=True):
        assert _codings(served["code"]) == _codings(given["code"]), label
        assert value_signature(served) == value_signature(given), label
        assert served.get("dataAbsentReason") == given.get("dataAbsentReason"), label


def match_observations(
    sources: list[dict[str, Any]], served: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each source Observation with the one served Observation of the same signature (each
    served one used once). Fails naming the first source without a match, and if any served
    Observation is left over (one source resource must not come back as several)."""
    pool: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for resource in served:
        pool[signature(resource)].append(resource)
    pairs = []
    for src in sources:
        candidates = pool.get(signature(src))
        assert candidates, f"Observation/{src.get('id')} did not come back: {signature(src)}"
        pairs.append((src, candidates.pop()))
    left = [r["id"] for found in pool.values() for r in found]
    assert not left, f"served Observations that match no source one: {left[:10]}"
    return pairs
