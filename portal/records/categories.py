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
    ("observations", "Other observations (social history, surveys, exams)"),
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
# Observation category (FHIR's observation-category code, "" for none) -> chart category:
# vital signs and labs are categories of their own (the trend charts, consents that share
# "labs only"); every other kind of observation (smoking status, questionnaire scores, exam
# findings) is "observations", so that a consent for labs never shares a survey's answers.
OBSERVATION_CATEGORY = {
    "vital-signs": "vitals",
    "laboratory": "labs",
    **{
        code: "observations"
        for code in ("social-history", "imaging", "procedure", "survey", "exam", "therapy",
                     "activity", "")
    },
}  # fmt: skip
# The chart categories the trend charts draw (numeric series of vital signs and labs).
MEASURED_CATEGORIES = frozenset({"vitals", "labs"})


class Category(NamedTuple):
    """A category by its code and its name (what a partial chart says it withholds)."""

    category: str
    label: str


def categories_named(codes: Iterable[str]) -> list[Category]:
    """`codes` with their names, in the chart's order (the same order on every page)."""
    wanted = set(codes)
    return [Category(code, label) for code, label in CHART_CATEGORIES if code in wanted]


def type_categories(record_type: str) -> frozenset[str]:
    """The categories records of a type (model name) fall in: observations three."""
    if record_type == "observation":
        return frozenset(OBSERVATION_CATEGORY.values())
    return frozenset({MODEL_CATEGORY[record_type]})


# The FHIR resource type each record type (model name) is served as: portal.fhir.resources
# builds RESOURCE_MODELS from it, and SMART scopes (portal.smart.scopes) narrow by it.
MODEL_RESOURCE = {
    "encounter": "Encounter",
    "observation": "Observation",
    "condition": "Condition",
    "medicationrequest": "MedicationRequest",
    "allergyintolerance": "AllergyIntolerance",
    "immunization": "Immunization",
    "procedure": "Procedure",
    "clinicalnote": "DocumentReference",
    "document": "DocumentReference",
    "diagnosticreport": "DiagnosticReport",
    "imagingstudy": "ImagingStudy",
    "careplan": "CarePlan",
    "goal": "Goal",
}
RESOURCE_TYPES: tuple[str, ...] = tuple(dict.fromkeys(MODEL_RESOURCE.values()))


def resource_categories(resource_type: str) -> frozenset[str]:
    """The chart categories the records of a FHIR type fall in (Patient and others: none)."""
    found: frozenset[str] = frozenset()
    for record_type, rtype in MODEL_RESOURCE.items():
        if rtype == resource_type:
            found |= type_categories(record_type)
    return found


def category_codename(code: str) -> str:
    return f"view_chart_{code}"


def record_category(record: Any) -> str:
    name = record._meta.model_name
    if name == "observation":
        return OBSERVATION_CATEGORY[record.category]
    return MODEL_CATEGORY[name]
