"""SMART App Launch scopes: what an app may ask for, what each scope allows, and how the
consent screen says it in plain words.

SMART v2 clinical scopes are `patient|user / Type|* . cruds [?category=...]`. The portal
serves reads: `r` (read) and `s` (search) only; a scope asking to create, update or delete is
refused. SMART v1's `.read` is taken as `.rs`. Granular scopes narrow Observations by their
category (`patient/Observation.rs?category=laboratory`). `system/` scopes (backend services)
are not offered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from portal.records import categories

CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
# The Observation categories a scope may narrow to: those that are chart categories of their
# own (records.categories.OBSERVATION_CATEGORY); the others share one ("observations"), so
# narrowing to one of them would grant its siblings too.
OBSERVATION_CATEGORIES = {"vital-signs": "vital signs", "laboratory": "lab results"}

# Scopes that are not about clinical data.
CONTEXT_SCOPES = {
    "openid": "Know who you are in this portal",
    "fhirUser": "Know who you are in this portal",
    "profile": "Know who you are in this portal",
    "launch": "Open with the patient you have open in the portal",
    "launch/patient": "Know which of your records you share with it",
    "offline_access": "Keep access when you are not using the app, until you disconnect it",
    "online_access": "Keep access while you are signed in to the portal",
}
# What a patient reads in "Read your ..." (every type the portal serves: a test checks).
TYPE_WORDS = {
    "Patient": "name, date of birth and contact details",
    "Observation": "lab results, vital signs and other observations",
    "Condition": "problems (diagnoses)",
    "Encounter": "visits and admissions",
    "MedicationRequest": "medications",
    "AllergyIntolerance": "allergies",
    "Immunization": "immunizations",
    "Procedure": "procedures",
    "DocumentReference": "clinical notes and documents",
    "DiagnosticReport": "test reports",
    "ImagingStudy": "imaging studies",
    "CarePlan": "care plans",
    "Goal": "health goals",
}
# The FHIR types the portal serves, and the chart categories of each (records.categories).
RESOURCE_TYPES = ("Patient", *categories.RESOURCE_TYPES)
TYPE_CATEGORIES = {rtype: categories.resource_categories(rtype) for rtype in RESOURCE_TYPES}
OBSERVATION_CHART_CATEGORY = categories.OBSERVATION_CATEGORY

_CLINICAL = re.compile(
    r"^(?P<level>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]{1,63})"
    r"\.(?P<perms>read|write|\*|c?r?u?d?s?)(?:\?(?P<query>[^\s]{1,200}))?$"
)


class ScopeError(ValueError):
    """A scope the portal does not grant (the message says why, for the app's developer)."""


@dataclass(frozen=True)
class ClinicalScope:
    """One clinical scope: the level (patient or user), the resource type ("*" for all),
    read/search, and the Observation categories it narrows to (empty: all)."""

    scope: str
    level: str
    resource_type: str
    read: bool
    search: bool
    categories: frozenset[str]

    def words(self) -> str:
        if self.resource_type == "*":
            what = "health records"
        elif self.categories:
            what = " and ".join(sorted(OBSERVATION_CATEGORIES[c] for c in self.categories))
        else:
            what = TYPE_WORDS[self.resource_type]
        if self.level == "patient":
            return f"Read your {what}"
        return f"Read the {what} of patients you may see"

    def allows_type(self, resource_type: str) -> bool:
        return self.resource_type in ("*", resource_type)


def _categories(query: str | None, resource_type: str) -> frozenset[str]:
    if not query:
        return frozenset()
    if resource_type != "Observation":
        raise ScopeError("Only Observation scopes may be narrowed (by ?category=).")
    found = set()
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name != "category" or not value:
            raise ScopeError("A scope may be narrowed by ?category= only.")
        system, bar, code = value.rpartition("|")
        if bar and system != CATEGORY_SYSTEM:
            raise ScopeError(f"Categories are codes of {CATEGORY_SYSTEM}.")
        if code not in OBSERVATION_CATEGORIES:
            raise ScopeError(
                f"Observation category {code!r} is not kept here "
                f"(kept: {', '.join(OBSERVATION_CATEGORIES)})."
            )
        found.add(code)
    return frozenset(found)


def clinical_scope(scope: str) -> ClinicalScope | None:
    """The clinical scope `scope` is, None for a context scope (openid, launch, ...), or
    ScopeError for anything the portal does not grant."""
    if scope in CONTEXT_SCOPES:
        return None
    match = _CLINICAL.match(scope)
    if match is None:
        raise ScopeError(f"Unknown scope {scope!r}.")
    level, rtype, perms = match["level"], match["type"], match["perms"]
    if level == "system":
        raise ScopeError("system/ scopes (backend services) are not offered.")
    if rtype != "*" and rtype not in RESOURCE_TYPES:
        raise ScopeError(f"{rtype} is not served here.")
    if perms in ("read", "*"):  # SMART v1: read (and "*", of which only reading is granted)
        perms = "rs"
    if perms == "write" or not perms or set(perms) - {"r", "s"}:
        raise ScopeError("Only reading (r) and searching (s) are granted here.")
    return ClinicalScope(
        scope=scope, level=level, resource_type=rtype, read="r" in perms,
        search="s" in perms, categories=_categories(match["query"], rtype),
    )  # fmt: skip


def scopes_valid(scopes: Iterable[str]) -> bool:
    try:
        for scope in scopes:
            clinical_scope(scope)
    except ScopeError:
        return False
    return True


def scope_words(scope: str) -> str:
    """What a scope lets the app do, as a patient reads it."""
    clinical = clinical_scope(scope)
    return CONTEXT_SCOPES[scope] if clinical is None else clinical.words()


def scopes_worded(scopes: Iterable[str]) -> list[str]:
    """What a set of scopes lets an app do, each thing said once (`openid` and `fhirUser`
    both say who you are), in the scopes' order."""
    return list(dict.fromkeys(scope_words(scope) for scope in scopes))


@dataclass(frozen=True)
class ScopeAccess:
    """What a set of granted scopes lets a token read: by level ("patient", "user"), the
    resource types (None: all) and, for Observations, the categories (None: all)."""

    clinical: tuple[ClinicalScope, ...]
    launch_patient: bool
    offline: bool

    def levels(self) -> frozenset[str]:
        return frozenset(s.level for s in self.clinical)

    def resource_types(self, *, level: str | None = None) -> frozenset[str] | None:
        """The types readable (None: every type)."""
        chosen = [s for s in self.clinical if level is None or s.level == level]
        if any(s.resource_type == "*" for s in chosen):
            return None
        return frozenset(s.resource_type for s in chosen)

    def observation_categories(self, *, level: str | None = None) -> frozenset[str] | None:
        """The Observation categories readable (None: all of them)."""
        chosen = [
            s for s in self.clinical
            if (level is None or s.level == level) and s.allows_type("Observation")
        ]  # fmt: skip
        if not chosen or any(not s.categories for s in chosen):
            return None if chosen else frozenset()
        return frozenset(c for s in chosen for c in s.categories)

    def chart_categories(self) -> frozenset[str] | None:
        """The chart categories (records.categories) the clinical scopes reach; None: all."""
        found: set[str] = set()
        for s in self.clinical:
            if s.resource_type == "*":
                return None
            if s.resource_type == "Observation" and s.categories:
                found |= {OBSERVATION_CHART_CATEGORY[c] for c in s.categories}
            else:
                found |= TYPE_CATEGORIES[s.resource_type]
        return frozenset(found)

    def may(self, resource_type: str, *, interaction: str = "read") -> bool:
        return any(
            s.allows_type(resource_type) and (s.read if interaction == "read" else s.search)
            for s in self.clinical
        )


def scope_access(scopes: Iterable[str]) -> ScopeAccess:
    """What granted scopes allow (the scopes were validated when they were granted)."""
    names = set(scopes)
    clinical = tuple(c for c in (clinical_scope(s) for s in sorted(names)) if c is not None)
    return ScopeAccess(
        clinical=clinical,
        launch_patient=bool(names & {"launch/patient", "launch"}),
        offline=bool(names & {"offline_access", "online_access"}),
    )


class ScopeDescriptions(dict):
    """The fixed scopes' descriptions, and any other valid scope's words on demand (DOT's
    consent screen looks each requested scope up by name)."""

    def __missing__(self, key: str) -> str:
        return scope_words(key)


class SmartScopes:
    """DOT's scopes backend (OAUTH2_PROVIDER["SCOPES_BACKEND_CLASS"]): the fixed scopes,
    described; the clinical ones are a grammar, which the validator checks (SmartValidator
    .validate_scopes) and scope_words describes."""

    def get_all_scopes(self) -> dict[str, str]:
        return ScopeDescriptions({scope: scope_words(scope) for scope in SUPPORTED_SCOPES})

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        return list(self.get_all_scopes())

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        return ["launch/patient", "patient/*.rs", "openid", "fhirUser"]


SUPPORTED_SCOPES = [
    "openid", "fhirUser", "launch", "launch/patient", "offline_access", "online_access",
    "patient/*.rs", "user/*.rs",
    *(f"patient/{t}.rs" for t in RESOURCE_TYPES),
    "patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=vital-signs",
]  # fmt: skip
