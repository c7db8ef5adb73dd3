"""Categories of a chart: the unit in which consents and proxies share records.

A consent may cover the whole chart or only some categories ("labs and medications");
restricted notes are never in a category and are shared only when named one by one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

CHART_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("vitals", "Vital signs"),
    ("labs", "Laboratory results"),
    ("conditions", "Problems"),
    ("medications", "Medications"),
    ("allergies", "Allergies"),
    ("immunizations", "Immunizations"),
    ("procedures", "Procedures"),
    ("encounters", "Encounters"),
    ("notes", "Clinical notes (not restricted ones)"),
    ("documents", "Documents"),
    ("reports", "Test reports and imaging"),
    ("careplans", "Care plans and goals"),
)
CATEGORY_CODES = frozenset(code for code, _ in CHART_CATEGORIES)
CATEGORY_LABELS = dict(CHART_CATEGORIES)

# Record type (model name) -> category; observations split by their own category field.
MODEL_CATEGORY = {
    "encounter": "encounters",
    "condition": "conditions",
    "medicationrequest": "medications",
    "allergyintolerance": "allergies",
    "immunization": "immunizations",
    "procedure": "procedures",
    "clinicalnote": "notes",
    "document": "documents",
    "diagnosticreport": "reports",
    "imagingstudy": "reports",
    "careplan": "careplans",
    "goal": "careplans",
}
OBSERVATION_CATEGORY = {"vital-signs": "vitals", "laboratory": "labs"}


class Category(NamedTuple):
    """A category by its code and its name (what a partial chart says it withholds)."""

    category: str
    label: str


def categories_named(codes: Iterable[str]) -> list[Category]:
    """`codes` with their names, in the chart's order (the same order on every page)."""
    wanted = set(codes)
    return [Category(code, label) for code, label in CHART_CATEGORIES if code in wanted]


def type_categories(record_type: str) -> frozenset[str]:
    """The categories records of a type (model name) fall in: observations two."""
    if record_type == "observation":
        return frozenset(OBSERVATION_CATEGORY.values())
    return frozenset({MODEL_CATEGORY[record_type]})


def category_codename(code: str) -> str:
    return f"view_chart_{code}"


def record_category(record: Any) -> str:
    name = record._meta.model_name
    if name == "observation":
        return OBSERVATION_CATEGORY[record.category]
    return MODEL_CATEGORY[name]
