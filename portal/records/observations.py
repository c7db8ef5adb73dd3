"""An Observation's value, components and FHIR details: the one reader of the JSON that
records.models.Observation keeps encrypted, and what the pages say of it.

- `value` / `unit` hold a Quantity (UCUM unit code): the trend charts and the provider
  forms use them. `value_fhir` holds the FHIR value[x] the columns cannot ({"type":
  "CodeableConcept", "value": {...}}; a Quantity too when its details would be lost: a
  comparator, a unit text other than its code, another system, more than 3 decimals).
- `components` is a panel's components as FHIR gives them (blood pressure 85354-9: its
  8480-6 and 8462-4), so the panel stays one Observation: one FHIR resource in, one out.
  `component_numbers` reads their numeric values for the trend charts (records.chart),
  which draw them beside the provider form's rows of those codes. (Numeric rows kept
  beside the panel were the other way: every reader of observations, FHIR and the API
  and the timeline, would then have to hide them.)
- `fhir_details` keeps the rest of what an import received (the code's other codings,
  every category coding, dataAbsentReason, effective[x]'s type and text, ...).

The JSON is canonical (sorted keys, no spaces), so equal content digests alike (ledger).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from portal import wording

if TYPE_CHECKING:
    from portal.records.models import Observation

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
PLACES = Decimal("0.001")  # the value column's scale
# What else an Observation may say that an import keeps as given (in fhir_details) and the
# FHIR interface gives back; references to other resources are not kept.
KEPT_ELEMENTS = ("dataAbsentReason", "interpretation", "note", "bodySite", "method",
                 "referenceRange")  # fmt: skip


def json_number(value: Decimal) -> int | float:
    """A decimal as a JSON number: an int when whole, else the shortest float."""
    value = Decimal(value)
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def quantity_from_columns(value: Decimal, unit: str) -> dict[str, Any]:
    """The Quantity that `value` and `unit` say (a UCUM code, which is also its text)."""
    return {"value": json_number(value), "unit": unit, "system": UCUM, "code": unit}


def decimal_of(number: Any) -> Decimal | None:
    """A JSON number (not a boolean) as a decimal at the column's scale, else None."""
    if isinstance(number, bool) or not isinstance(number, int | float | str):
        return None
    try:
        value = Decimal(str(number)).quantize(PLACES, rounding=ROUND_HALF_EVEN)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def details(obs: Observation) -> dict[str, Any]:
    found = obs.fhir_details
    return found if isinstance(found, dict) else {}


def components(obs: Observation) -> list[dict[str, Any]]:
    found = obs.components
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def value(obs: Observation) -> tuple[str, Any] | None:
    """The value[x] as (type name, FHIR content), or None when there is none.

    A Quantity kept verbatim counts only while it still says what the columns say: a
    correction (provider forms) writes the columns, and the columns win."""
    kept = obs.value_fhir
    if isinstance(kept, dict) and isinstance(kept.get("type"), str):
        if kept["type"] != "Quantity":
            return kept["type"], kept.get("value")
        quantity = kept.get("value") if isinstance(kept.get("value"), dict) else {}
        if obs.value is None or decimal_of(quantity.get("value")) == obs.value:
            return "Quantity", quantity  # (none in the columns: "< 5", no number, ...)
    if obs.value is not None:
        unit: str = obs.unit or ""  # type: ignore[assignment]  # str, typed by its column
        return "Quantity", quantity_from_columns(obs.value, unit)
    return None


def _code_of(concept: Any) -> tuple[str, str]:
    """(code, display) of a CodeableConcept: its LOINC coding if any, else its first."""
    if not isinstance(concept, dict):
        return "", ""
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("code")]
    chosen = next((c for c in codings if c.get("system") == LOINC), codings[0] if codings else {})
    display = chosen.get("display") or concept.get("text") or chosen.get("code") or ""
    return str(chosen.get("code") or ""), str(display)


def _quantity_unit(quantity: dict[str, Any]) -> str:
    if quantity.get("system") == UCUM and isinstance(quantity.get("code"), str):
        return quantity["code"]
    return str(quantity.get("unit") or quantity.get("code") or "")


def component_numbers(obs: Observation) -> list[tuple[str, str, str, Decimal]]:
    """A panel's numeric component values, as (code, display, unit, value), for the trend
    charts (a blood pressure panel: its systolic and diastolic values, under their own
    codes, beside the rows the provider form records under those codes)."""
    found: list[tuple[str, str, str, Decimal]] = []
    for component in components(obs):
        quantity = component.get("valueQuantity")
        if not isinstance(quantity, dict) or quantity.get("comparator"):
            continue
        number = decimal_of(quantity.get("value"))
        code, display = _code_of(component.get("code"))
        if number is not None and code:
            found.append((code, display, _quantity_unit(quantity), number))
    return found


# --- in words (portal.wording says each value[x]) -----------------------------------------


def value_label(obs: Observation) -> str:
    """What the observation says, in words, for the pages (timeline, tables, exports):
    its value, a panel's components ("Systolic blood pressure 120 mmHg; Diastolic blood
    pressure 80 mmHg") or why there is none."""
    parts = []
    own = value(obs)
    if own is not None:
        parts.append(wording.fhir_value_label(*own))
    for component in components(obs):
        _, display = _code_of(component.get("code"))
        kind = next((k[5:] for k in component if k.startswith("value") and len(k) > 5), "")
        shown = wording.fhir_value_label(kind, component.get(f"value{kind}")) if kind else ""
        if not shown:
            shown = wording.no_value_label(component.get("dataAbsentReason"))
        parts.append(f"{display} {shown}".strip())
    if not parts:
        parts.append(wording.no_value_label(details(obs).get("dataAbsentReason")))
    return "; ".join(p for p in parts if p)


def primary_code(concept: Any) -> str:
    """The code a CodeableConcept is stored under (its LOINC coding's, else its first)."""
    return _code_of(concept)[0]
