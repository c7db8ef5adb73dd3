"""FHIR search parameters: which each type supports, and their values parsed and checked.

One table (SEARCH_PARAMS) says what each type is searched by: the views parse with it and
the CapabilityStatement lists it, so the two cannot disagree. Parsing only reads the
parameters; what they select is the selectors' (portal.fhir.selectors), and who may see it
the access module's.

FHIR's lenient default (R4 3.1.1.4.1): a parameter the server does not know is ignored and
the Bundle says so (an OperationOutcome entry, search mode "outcome"); with
`Prefer: handling=strict` it is a 400 instead. A known parameter with a value that does not
parse is a 400 either way.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict
from django.utils import timezone

from portal.fhir import resources
from portal.fhir.rest import FhirError

DEFAULT_COUNT = 50
MAX_COUNT = 200
# Parameters about the result, not the match (R4 3.1.1.5); `_format` is rest.py's.
RESULT_PARAMS = ("_count", "_sort", "_include", "_total", "_format", "_page")
PATIENT_SEARCH = ("identifier", "name", "family", "given", "birthdate")
DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    documentation: str = ""


_LAST_UPDATED = Param("_lastUpdated", "date", "When the resource (its version) was recorded.")
COUNT_DOC = f"Page size: {DEFAULT_COUNT} by default, at most {MAX_COUNT}."
_BY_PATIENT = Param("patient", "reference", "Required: the chart searched (Patient/{id}).")


def _record_params(resource_type: str) -> tuple[Param, ...]:
    params = [_BY_PATIENT, _LAST_UPDATED, Param("code", "token", "system|code, code or |code")]
    if resource_type == "Observation":
        params += [
            Param("category", "token", "vital-signs, laboratory, ... (system|code too)"),
            Param("date", "date", "effective time; prefixes eq ne gt lt ge le sa eb ap"),
        ]
    return tuple(params)


# What each type is searched by (beyond `_count`, `_include` and `_sort`: SORTS, INCLUDES).
SEARCH_PARAMS: dict[str, tuple[Param, ...]] = {
    "Patient": (
        Param("identifier", "token", "the MRN: system|value or value"),
        Param("name", "string"),
        Param("family", "string"),
        Param("given", "string"),
        Param("birthdate", "date", "an exact date (YYYY-MM-DD)"),
        _LAST_UPDATED,
    ),
    **{rtype: _record_params(rtype) for rtype in resources.RESOURCE_MODELS},
    "AuditEvent": (_BY_PATIENT, _LAST_UPDATED),
    "Consent": (_BY_PATIENT, _LAST_UPDATED),
    "Provenance": (
        Param("target", "reference", "Required: {type}/{id} of a record."),
        _LAST_UPDATED,
    ),
}
# `_sort` values by type (default: the order the records were stored in).
SORTS: dict[str, tuple[str, ...]] = {
    **{rtype: ("_lastUpdated", "-_lastUpdated") for rtype in resources.RESOURCE_MODELS},
    "Observation": ("date", "-date", "_lastUpdated", "-_lastUpdated"),
    "Patient": ("_lastUpdated", "-_lastUpdated"),
    "Consent": ("_lastUpdated", "-_lastUpdated"),
}
# `_include` values by type: every record names its patient (the chart searched).
INCLUDES: dict[str, tuple[str, ...]] = {
    rtype: (f"{rtype}:patient", f"{rtype}:subject") for rtype in resources.RESOURCE_MODELS
}


@dataclass(frozen=True)
class DateRange:
    """One date parameter: its prefix and the instants its value covers, [start, end)."""

    prefix: str
    start: dt.datetime
    end: dt.datetime

    def bounds(self) -> tuple[str, dt.datetime, dt.datetime]:
        return self.prefix, self.start, self.end


@dataclass(frozen=True)
class Search:
    """A parsed search. `params` is the normalised form of what was used (sorted names,
    values as given): the page token keeps it, so each page runs the same search."""

    resource_type: str
    params: dict[str, list[str]]
    count: int
    ignored: tuple[str, ...] = ()
    patient: str = ""
    codes: tuple[tuple[str | None, str], ...] = ()
    categories: tuple[tuple[str | None, str], ...] = ()
    dates: tuple[DateRange, ...] = ()
    last_updated: tuple[DateRange, ...] = ()
    include_patient: bool = False
    sort: str = ""
    with_total: bool = True  # `_total=none` spares the COUNT
    patient_search: dict[str, str] = field(default_factory=dict)

    @property
    def code_systems(self) -> bool:
        """Does any code name a system (which only the decrypted record can tell)."""
        return any(system is not None for system, _ in self.codes)


def _values(query: QueryDict, name: str) -> list[str]:
    return [v.strip() for v in query.getlist(name) if v.strip()]


def count_parse(value: str | None) -> int:
    """`_count`: a whole number; above MAX_COUNT it is capped, 0 asks for the total only."""
    if value is None or not value.strip():
        return DEFAULT_COUNT
    if not value.strip().isdigit():
        raise FhirError(400, f"_count must be a whole number from 0 to {MAX_COUNT}.")
    return min(int(value), MAX_COUNT)


def token_parse(value: str) -> list[tuple[str | None, str]]:
    """A token parameter's value: comma-separated (OR) `system|code`, `|code` (no system:
    None matches only codes without one) or `code` (any system: None). Returns (system,
    code) pairs, system "" for `|code`."""
    out: list[tuple[str | None, str]] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        if "|" in part:
            system, _, code = part.partition("|")
            out.append((system, code))
        else:
            out.append((None, part))
    if not out:
        raise FhirError(400, "A token parameter needs a value: code, system|code or |code.")
    return out


_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def date_parse(value: str, *, name: str) -> DateRange:
    """A date parameter (R4 3.1.1.4.2 and .6): a prefix and a date or dateTime of any
    precision (YYYY, YYYY-MM, YYYY-MM-DD, YYYY-MM-DDThh:mm[:ss[.fff]][zone]). A value is the
    range its precision covers; a date without a zone is in the server's zone."""
    prefix = value[:2] if value[:2] in DATE_PREFIXES else "eq"
    text = value[2:] if value[:2] in DATE_PREFIXES else value
    bad = FhirError(
        400,
        f"{name} must be [prefix]YYYY, YYYY-MM, YYYY-MM-DD or a dateTime with a zone "
        f"(YYYY-MM-DDThh:mm:ss+hh:mm); prefixes: {', '.join(DATE_PREFIXES)}.",
    )
    zone = timezone.get_current_timezone()
    match = _DATE.match(text)
    try:
        if match:
            year, month, day = (int(g) if g else None for g in match.groups())
            assert year is not None
            start = dt.datetime(year, month or 1, day or 1, tzinfo=zone)
            if day is not None:
                end = start + dt.timedelta(days=1)
            elif month is not None:
                end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
            else:
                end = dt.datetime(year + 1, 1, 1, tzinfo=zone)
            return DateRange(prefix, start, end)
        if "T" not in text:
            raise bad
        start = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise bad from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=zone)
    time_part = text.split("T", 1)[1]
    if "." in time_part:
        step = dt.timedelta(microseconds=1)
    elif time_part.count(":") >= 2 and len(re.split(r"[+\-Z]", time_part)[0]) > 5:
        step = dt.timedelta(seconds=1)
    else:
        step = dt.timedelta(minutes=1)
    return DateRange(prefix, start, start + step)


def _approximately(date: DateRange) -> tuple[dt.datetime, dt.datetime]:
    """`ap`: the value's range widened by a tenth of its distance from now (R4's
    recommendation), and by at least a day."""
    gap = abs(timezone.now() - date.start) / 10
    margin = max(gap, dt.timedelta(days=1))
    return date.start - margin, date.end + margin


def date_q(column: str, date: DateRange) -> Any:
    """The condition on an instant column (a point in time) for one date parameter."""
    from django.db.models import Q

    prefix, start, end = date.bounds()
    if prefix == "eq":
        return Q(**{f"{column}__gte": start, f"{column}__lt": end})
    if prefix == "ne":
        return Q(**{f"{column}__lt": start}) | Q(**{f"{column}__gte": end})
    if prefix in ("gt", "sa"):
        return Q(**{f"{column}__gte": end})
    if prefix in ("lt", "eb"):
        return Q(**{f"{column}__lt": start})
    if prefix == "ge":
        return Q(**{f"{column}__gte": start})
    if prefix == "le":
        return Q(**{f"{column}__lt": end})
    low, high = _approximately(date)
    return Q(**{f"{column}__gte": low, f"{column}__lt": high})


def date_matches(value: dt.datetime, date: DateRange) -> bool:
    """The same condition as date_q, on a value in memory."""
    prefix, start, end = date.bounds()
    if prefix == "eq":
        return start <= value < end
    if prefix == "ne":
        return not start <= value < end
    if prefix in ("gt", "sa"):
        return value >= end
    if prefix in ("lt", "eb"):
        return value < start
    if prefix == "ge":
        return value >= start
    if prefix == "le":
        return value < end
    low, high = _approximately(date)
    return low <= value < high


def strict_handling(prefer: str) -> bool:
    """`Prefer: handling=strict` (R4 3.1.1.4.1)."""
    parts = {p.strip().replace(" ", "") for p in prefer.split(",") if p.strip()}
    return any(p.split(";")[0] == "handling=strict" for p in parts)


def search_parse(*, resource_type: str, query: QueryDict, strict: bool = False) -> Search:
    """A search of `resource_type` from its parameters (query string and POST body)."""
    known = {p.name for p in SEARCH_PARAMS.get(resource_type, ())}
    if resource_type in resources.RESOURCE_MODELS or resource_type in ("AuditEvent", "Consent"):
        known.add("subject")  # the same as `patient`
    ignored = sorted(name for name in query if name not in known and name not in RESULT_PARAMS)
    if strict and ignored:
        raise FhirError(
            400, f"Not supported here (Prefer: handling=strict): {', '.join(ignored)}.",
            "not-supported",
        )  # fmt: skip
    used: dict[str, list[str]] = {}
    for name in sorted(query):
        if name in known or name in ("_count", "_sort", "_include", "_total"):
            values = _values(query, name)
            if values:
                used[name] = values
    count = count_parse(query.get("_count"))
    used["_count"] = [str(count)]
    sort = (query.get("_sort") or "").strip()
    if sort and sort not in SORTS.get(resource_type, ()):
        raise FhirError(400, f"_sort on {resource_type}: one of "
                        f"{', '.join(SORTS.get(resource_type, ())) or 'none'}.")  # fmt: skip
    total = (query.get("_total") or "").strip()
    if total and total not in ("none", "estimate", "accurate"):
        raise FhirError(400, "_total: none, estimate or accurate.")
    include = False
    for value in _values(query, "_include"):
        if ":".join(value.split(":")[:2]) in INCLUDES.get(resource_type, ()):
            include = True
        elif strict:
            raise FhirError(400, f"_include not supported: {value}.", "not-supported")
        else:
            ignored.append("_include")
    last_updated = tuple(date_parse(v, name="_lastUpdated") for v in _values(query, "_lastUpdated"))
    patient = ""
    if "patient" in known:
        patient = (query.get("patient") or query.get("subject") or "").strip()
    codes: list[tuple[str | None, str]] = []
    for value in _values(query, "code"):
        if codes:  # repeated: AND of ORs; one code list here is what records carry
            raise FhirError(400, "Give `code` once (a comma-separated list: any of them).")
        codes += token_parse(value)
    categories: list[tuple[str | None, str]] = []
    for value in _values(query, "category"):
        if categories:
            raise FhirError(400, "Give `category` once (a comma-separated list: any of them).")
        categories += token_parse(value)
    dates = tuple(date_parse(v, name="date") for v in _values(query, "date"))
    birthdate = (query.get("birthdate") or "").strip().removeprefix("eq")
    if resource_type == "Patient" and birthdate:
        try:
            dt.date.fromisoformat(birthdate)
        except ValueError:
            raise FhirError(400, "birthdate must be a date (YYYY-MM-DD).") from None
    return Search(
        resource_type=resource_type,
        params=used,
        count=count,
        ignored=tuple(sorted(set(ignored))),
        patient=patient,
        codes=tuple(codes),
        categories=tuple(categories),
        dates=dates,
        last_updated=last_updated,
        include_patient=include,
        sort=sort,
        with_total=total != "none",
        patient_search={
            k: (query.get(k) or "").strip() for k in PATIENT_SEARCH if resource_type == "Patient"
        },
    )


def search_query(params: dict[str, list[str]]) -> QueryDict:
    """The normalised parameters back as a QueryDict (a page token's search, re-run)."""
    query = QueryDict(mutable=True)
    for name, values in params.items():
        query.setlist(name, list(values))
    return query
