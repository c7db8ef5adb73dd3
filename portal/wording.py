"""How the portal says things to people: the one vocabulary of pages, exports and admin.

Codes stay codes in storage, the ledger and FHIR (UCUM units, HL7 purpose codes, event kinds,
model names); this module turns them into the words clinicians, patients and auditors read.
Every page, the admin and the patient's exports ask it, so one word changes in one place.
It imports nothing of the portal's apps (any of them may use it).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

# Record types (model names) as people call them.
RECORD_TYPE_LABELS: dict[str, str] = {
    "patient": "Patient",
    "observation": "Measurement",
    "encounter": "Encounter",
    "condition": "Problem",
    "medicationrequest": "Medication",
    "allergyintolerance": "Allergy",
    "immunization": "Immunization",
    "procedure": "Procedure",
    "clinicalnote": "Clinical note",
    "document": "Document",
    "diagnosticreport": "Test report",
    "imagingstudy": "Imaging study",
    "careplan": "Care plan",
    "goal": "Health goal",
    "careteammember": "Care team member",
    "consent": "Consent",
    "accessrequest": "Access request",
    "proxygrant": "Proxy access",
    "proxyinvitation": "Proxy invitation",
    "breakglass": "Emergency access",
    "membership": "Staff membership",
    "groupmember": "Department membership",
    "grant": "Access grant",
    "apitoken": "API token",
    "api_token": "API token",
    "totpdevice": "Authenticator app",
    "totp": "Authenticator app",
}

# Staff roles (tenancy.Role values) and the ledger's reader roles.
ROLE_LABELS: dict[str, str] = {
    "clinician": "Clinician",
    "nurse": "Nurse",
    "records_clerk": "Records clerk",
    "hospital_admin": "Hospital admin",
    "auditor": "Auditor",
}

# Stored content types: how people call them and the extension a download's name carries.
CONTENT_TYPE_LABELS: dict[str, str] = {
    "application/pdf": "PDF",
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "text/plain": "plain text",
    "application/json": "JSON",
    "application/fhir+json": "FHIR JSON",
}
CONTENT_TYPE_EXTENSIONS: dict[str, str] = {
    "application/pdf": "pdf",
    "image/png": "png",
    "image/jpeg": "jpg",
    "text/plain": "txt",
    "application/json": "json",
    "application/fhir+json": "json",
}

# HL7 v3 PurposeOfUse codes recorded on access events.
PURPOSE_LABELS: dict[str, str] = {
    "TREAT": "Treatment",
    "ETREAT": "Emergency treatment",
    "CAREMGT": "Care coordination",
    "PATRQT": "At the patient's request",
    "HRESCH": "Research",
    "HOPERAT": "Hospital operations",
    "HSYSADMIN": "Hospital administration",
    "PUBHLTH": "Public health",
    "FAMRQT": "Family or carer, on the patient's behalf",
}

# The channel a read came through (records.access.Via values and the admin's).
CHANNEL_LABELS: dict[str, str] = {
    "staff": "the hospital's own staff",
    "consent": "your consent",
    "breakglass": "emergency access",
    "owner": "your own account",
    "proxy": "proxy access",
    "admin": "the administration site",
    "api": "the API",
    "fhir": "FHIR",
}

# Whole event kinds whose words are not "<record type> <verb>".
EVENT_KIND_LABELS: dict[str, str] = {
    "chart.read": "Opened a chart",
    "record.read": "Opened a record",
    "document.read": "Downloaded a document",
    "breakglass.opened": "Used emergency access",
    "breakglass.failed": "Emergency access refused",
    "breakglass.ended": "Ended emergency access",
    "patient.registered": "Registered a patient",
    "patient.restricted": "Restricted a chart",
    "clinicalnote.granted": "Shared a restricted note",
    "membership.changed": "Changed a staff role",
    "membership.removed": "Removed a staff role",
    "careteam.added": "Added to a care team",
    "careteam.removed": "Removed from a care team",
    "api_token.issued": "Issued an API token",
    "api_token.revoked": "Revoked an API token",
    "totp.enrolled": "Set up an authenticator app",
    "totp.added": "Added an authenticator app",
    "totp.replaced": "Replaced an authenticator app",
    "totp.removed": "Removed an authenticator app",
    "totp.reset": "Reset an authenticator app",
    "totp.turned_on": "Turned on two-factor sign-in",
    "totp.turned_off": "Turned off two-factor sign-in",
    "accessrequest.created": "Access requested",
    "proxy.invited": "Proxy invited",
    "proxy.accepted": "Proxy invitation accepted",
    "proxy.declined": "Proxy invitation declined",
    "proxy.withdrawn": "Proxy invitation withdrawn",
    "proxy.granted": "Proxy access granted",
    "proxy.revoked": "Proxy access ended",
}

VERB_LABELS: dict[str, str] = {
    "created": "added",
    "corrected": "corrected",
    "entered-in-error": "marked entered in error",
    "registered": "registered",
    "granted": "granted",
    "revoked": "revoked",
    "expired": "expired",
    "withdrawn": "withdrawn",
    "declined": "declined",
    "accepted": "accepted",
    "invited": "invited",
    "approved": "approved",
    "denied": "denied",
    "added": "added",
    "removed": "removed",
    "changed": "changed",
    "confirmed": "confirmed",
    "opened": "opened",
    "ended": "ended",
    "read": "read",
}

# UCUM units as people write them (storage and FHIR keep the UCUM code).
UNIT_LABELS: dict[str, str] = {
    "mm[Hg]": "mmHg",
    "Cel": "°C",
    "[degF]": "°F",
    "/min": "/min",
    "{beats}/min": "/min",
    "{breaths}/min": "/min",
    "%": "%",
    "kg": "kg",
    "g": "g",
    "cm": "cm",
    "[in_i]": "in",
    "[lb_av]": "lb",
    "kg/m2": "kg/m²",
    "mg/dL": "mg/dL",
    "g/dL": "g/dL",
    "mmol/L": "mmol/L",
    "10*3/uL": "\u00d710\u00b3/\u00b5L",
    "10*6/uL": "\u00d710\u2076/\u00b5L",
    "fL": "fL",
    "pg": "pg",
    "U/L": "U/L",
    "mL/min/{1.73_m2}": "mL/min/1.73 m²",
    "{score}": "",
    "1": "",
}


# What a partial chart says where a category is withheld (records.access: OpenedChart.withheld):
# never "None recorded", which would read as "the patient has none".
NOT_SHARED = "Not shared with you"


def not_shared_label(labels: Iterable[str] = ()) -> str:
    """ "Not shared with you: Allergies, Medications"; "Not shared with you" alone."""
    names = ", ".join(labels)
    return f"{NOT_SHARED}: {names}" if names else NOT_SHARED


# Document types (the store's content types) as people call them.
DOCUMENT_TYPE_LABELS: dict[str, str] = {
    "application/pdf": "PDF",
    "image/png": "PNG image",
    "image/jpeg": "JPEG image",
    "text/plain": "Text",
}


def document_type_label(content_type: str | None) -> str:
    if not content_type:
        return ""
    return DOCUMENT_TYPE_LABELS.get(content_type, content_type)


def record_type_label(name: str) -> str:
    """ "Clinical note" for "clinicalnote" (a model name, any case)."""
    key = (name or "").lower().replace(" ", "")
    return RECORD_TYPE_LABELS.get(key, (name or "").replace("_", " ").capitalize())


def purpose_label(code: str | None) -> str:
    if not code:
        return ""
    return PURPOSE_LABELS.get(code, code)


def channel_label(via: str | None) -> str:
    if not via:
        return ""
    return CHANNEL_LABELS.get(via, via.replace("_", " "))


def event_kind_label(kind: str | None) -> str:
    """ "Measurement corrected" for "observation.corrected"; whole kinds by their own words."""
    if not kind:
        return ""
    if kind in EVENT_KIND_LABELS:
        return EVENT_KIND_LABELS[kind]
    subject, _, verb = kind.partition(".")
    words = record_type_label(subject)
    if verb:
        words = f"{words} {VERB_LABELS.get(verb, verb.replace('_', ' ').replace('-', ' '))}"
    return words


def unit_label(unit: str | None) -> str:
    """ "mmHg" for UCUM "mm[Hg]"; an unknown unit as it is, without UCUM's {annotations}."""
    if not unit:
        return ""
    if unit in UNIT_LABELS:
        return UNIT_LABELS[unit]
    return unit.replace("{", "").replace("}", "")


def number_label(value: Any) -> str:
    """A measured value without trailing zeros: "97" for 97.000, "36.6" for 36.60."""
    if value is None or value == "":
        return ""
    try:
        # A Decimal as it is (the trend charts label every value they draw).
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if not number.is_finite():
        return str(value)
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "") else text


def quantity_label(value: Any, unit: str | None) -> str:
    """ "97 %", "120 mmHg", "36.6 °C", "72 /min"."""
    shown, words = number_label(value), unit_label(unit)
    return f"{shown} {words}".strip()


def yes_no(value: Any) -> str:
    if value is None:
        return ""
    return "Yes" if value else "No"


def person_label(user: Any, role: str | None = None) -> str:
    """Staff by name and role ("Ana Silva, Clinician"); the username only when no name."""
    if user is None:
        return "System"
    full_name = ""
    get_full_name = getattr(user, "get_full_name", None)
    if callable(get_full_name):
        full_name = get_full_name() or ""
    name = full_name or getattr(user, "username", "") or str(user)
    return f"{name}, {role}" if role else name


def role_label(role: str | None) -> str:
    if not role:
        return ""
    return ROLE_LABELS.get(role, role.replace("_", " ").capitalize())


def staff_label(user: Any, role: str | None = None, hospital: Any = None) -> str:
    """ "Ana Silva, Clinician, St Mary's Hospital": a person_label with the role's words and,
    where the page does not say it already, the hospital."""
    text = person_label(user, role_label(role) or None)
    name = getattr(hospital, "name", hospital)
    return f"{text}, {name}" if user is not None and name else text


def date_label(value: date | datetime | None) -> str:
    """A day as people read it: "31 Jan 2027" (an aware time on the user's own day)."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime) and timezone.is_aware(value):
        value = timezone.localtime(value)
    return f"{value.day} {MONTH_ABBREVIATIONS[value.month - 1]} {value.year}"


def datetime_label(value: datetime | date | None, *, seconds: bool = False) -> str:
    """A time to the minute in the user's time zone (the one the request activated):
    "6 Dec 2026, 14:05" ("14:05:09" with seconds, for a proof); a date alone as date_label."""
    if value is None or value == "":
        return ""
    if not isinstance(value, datetime):
        return date_label(value)
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    clock = f"{value.hour:02d}:{value.minute:02d}"
    if seconds:
        clock = f"{clock}:{value.second:02d}"
    # The month's abbreviation from a tuple, not strftime: pages write a time per row.
    return f"{value.day} {MONTH_ABBREVIATIONS[value.month - 1]} {value.year}, {clock}"


# --- FHIR values (an imported Observation's value[x]: records.observations) ---------------


def concept_label(concept: Any) -> str:
    """A FHIR CodeableConcept or Coding in words: its text, else its display, else its (first
    LOINC) coding's display, else a code."""
    if not isinstance(concept, dict):
        return ""
    for key in ("text", "display"):
        if isinstance(concept.get(key), str) and concept[key]:
            return concept[key]
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("code")]
    chosen = next((c for c in codings if c.get("system") == "http://loinc.org"),
                  codings[0] if codings else {})  # fmt: skip
    return str(chosen.get("display") or chosen.get("code") or concept.get("code") or "")


def fhir_quantity_label(quantity: Any) -> str:
    """A FHIR Quantity: "120 mmHg", "<5 mmol/L" (its UCUM code as unit_label says it)."""
    if not isinstance(quantity, dict):
        return ""
    ucum = quantity.get("system") == "http://unitsofmeasure.org" and quantity.get("code")
    unit = str((ucum and quantity["code"]) or quantity.get("unit") or quantity.get("code") or "")
    # UCUM's "1" is a pure number (a ratio's terms, a count): no unit to say.
    shown = quantity_label(quantity.get("value"), "" if unit == "1" else unit)
    return f"{quantity.get('comparator') or ''}{shown}"


def fhir_time_label(text: Any) -> str:
    """A FHIR date, dateTime or instant as people read it; a partial date as written."""
    if not isinstance(text, str):
        return ""
    with suppress(ValueError):
        day = parse_date(text)  # first: parse_datetime takes a date for its midnight
        if day is not None:
            return date_label(day)
        moment = parse_datetime(text)
        if moment is not None:
            return datetime_label(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return text


def fhir_value_label(kind: str, content: Any) -> str:
    """A FHIR value[x] in words, by its type ("CodeableConcept" or a value[x] suffix such as
    "Boolean"): "Never smoker", "3", "Yes", "2 mmol/L to 5.5 mmol/L", "1 / 128"."""
    kind = kind[:1].upper() + kind[1:]
    part = content if isinstance(content, dict) else {}
    if kind == "Quantity":
        return fhir_quantity_label(content)
    if kind == "CodeableConcept":
        return concept_label(content)
    if kind == "Boolean":
        return yes_no(content) if isinstance(content, bool) else str(content)
    if kind == "Range":
        low, high = fhir_quantity_label(part.get("low")), fhir_quantity_label(part.get("high"))
        if low and high:
            return f"{low} to {high}"
        return f"at least {low}" if low else (f"at most {high}" if high else "")
    if kind == "Ratio":
        return (f"{fhir_quantity_label(part.get('numerator'))} / "
                f"{fhir_quantity_label(part.get('denominator'))}")  # fmt: skip
    if kind == "Period":
        start, end = fhir_time_label(part.get("start")), fhir_time_label(part.get("end"))
        return f"{start} to {end}" if start and end else (start or (f"until {end}" if end else ""))
    if kind == "DateTime":
        return fhir_time_label(content)
    if kind == "SampledData":
        return "sampled data (a series of readings)"
    return "" if content is None else str(content)


def no_value_label(reason: Any) -> str:
    """An observation without a value, and why (its dataAbsentReason)."""
    said = concept_label(reason)
    return f"no value ({said})" if said else "no value"


def zone_label() -> str:
    """The time zone times are shown in ("Europe/Lisbon"), for a page to say so."""
    return str(timezone.get_current_timezone_name())


def content_type_label(content_type: str | None) -> str:
    key = (content_type or "").split(";")[0].strip().lower()
    return CONTENT_TYPE_LABELS.get(key, key)


def size_label(size: int | None) -> str:
    """Bytes as people say them: "10 MB", "512 KB", "900 bytes" (binary multiples)."""
    if size is None:
        return ""
    for limit, unit in ((1024 * 1024, "MB"), (1024, "KB")):
        if size >= limit:
            return f"{number_label(round(Decimal(size) / limit, 1))} {unit}"
    return f"{size} bytes"


def accepted_files_label(content_types: Iterable[str], max_bytes: int) -> str:
    """ "PDF, PNG, JPEG or plain text, up to 5 MB" from an upload rule's own types and limit."""
    names = [content_type_label(t) for t in content_types]
    listed = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)
    return f"{listed}, up to {size_label(max_bytes)}"


def download_filename(stem: str, content_type: str | None) -> str:
    """A download's name with the extension of its stored type: "document-12.pdf". The stem
    is reduced to letters, digits, "-" and "_" (a header value, and no PHI in it)."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in stem)
    safe = safe.strip("-") or "download"
    key = (content_type or "").split(";")[0].strip().lower()
    extension = CONTENT_TYPE_EXTENSIONS.get(key, "bin")
    return f"{safe}.{extension}"


# -- The days a period covers -------------------------------------------------------------------
# A patient picks the last day a consent or a proxy grant covers; it is stored as the
# instant that day ends: midnight after it in the site's time zone (settings.TIME_ZONE, the
# hospitals'), the exclusive end every grant compares with `now`. Every page says that day
# back, whoever reads it and whatever time zone their browser is in.


def end_of_day(day: date) -> datetime:
    """The instant `day` ends in the site's time zone (the next midnight there)."""
    return datetime.combine(
        day + timedelta(days=1), time.min, tzinfo=timezone.get_default_timezone()
    )


def period_end_label(value: datetime | None) -> str:
    """The last day a period covers ("31 Jan 2027") for an end stored by `end_of_day`; an
    end at another time of day (the API and FHIR take any instant) with its time, to the
    minute, in the site's time zone."""
    if value is None:
        return ""
    local = timezone.localtime(value, timezone.get_default_timezone())
    if (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0):
        return date_label(local.date() - timedelta(days=1))
    return f"{date_label(local.date())} {local:%H:%M}"


def period_start_label(value: datetime | None) -> str:
    """The first day a period covers, in the site's time zone (as its end)."""
    if value is None:
        return ""
    return date_label(timezone.localtime(value, timezone.get_default_timezone()).date())


# --- Trend charts (records.trends) ----------------------------------------------------------

# Measurements by the names people use (LOINC codes; the stored display is LOINC's long name,
# "Glucose [Mass/volume] in Blood"). An unknown code keeps its stored display.
MEASURE_LABELS: dict[str, str] = {
    "8867-4": "Heart rate",
    "8480-6": "Systolic blood pressure",
    "8462-4": "Diastolic blood pressure",
    "85354-9": "Blood pressure",
    "8310-5": "Body temperature",
    "9279-1": "Breathing rate",
    "59408-5": "Oxygen saturation",
    "29463-7": "Weight",
    "8302-2": "Height",
    "39156-5": "Body mass index",
    "2339-0": "Blood glucose",
    "4548-4": "HbA1c",
    "2093-3": "Cholesterol",
    "2160-0": "Creatinine",
    "718-7": "Haemoglobin",
}
# The two lines of the one blood-pressure chart.
BLOOD_PRESSURE_LINE_LABELS: dict[str, str] = {"8480-6": "Systolic", "8462-4": "Diastolic"}


def measure_label(code: str | None, display: str | None = None) -> str:
    """ "Blood glucose" for LOINC 2339-0; an unknown code by its stored display."""
    return MEASURE_LABELS.get(code or "", display or code or "")


# Month abbreviations as date_label's strftime("%b") writes them in the portal's (C) locale,
# without strftime's cost: a chart labels every value it draws.
MONTH_ABBREVIATIONS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # fmt: skip


def short_date_label(value: date | datetime) -> str:
    """A day within a year, as on a chart's axis: "3 Dec"."""
    return f"{value.day} {MONTH_ABBREVIATIONS[value.month - 1]}"


def clock_label(value: datetime) -> str:
    """A time of day to the minute, 24-hour: "14:05"."""
    return f"{value.hour:02d}:{value.minute:02d}"


def reading_time_label(value: datetime) -> str:
    """When a value was measured, to the minute: "3 Dec 2026, 14:05" (already local)."""
    return f"{short_date_label(value)} {value.year}, {clock_label(value)}"


# --- the admin's access events (issue 16: auditors find things) ----------------------------

# How a read reached a chart, as an auditor reads it (CHANNEL_LABELS speak to the patient).
AUDIT_CHANNEL_LABELS: dict[str, str] = {
    "staff": "as the hospital's staff",
    "consent": "through the patient's consent",
    "breakglass": "through emergency access",
    "owner": "the patient's own account",
    "proxy": "through proxy access",
    "admin": "in the administration site",
    "api": "through the API",
    "fhir": "through FHIR",
}


def audit_channel_label(via: str | None) -> str:
    if not via:
        return ""
    return AUDIT_CHANNEL_LABELS.get(via, via.replace("_", " "))


# --- FHIR's nested values (reports, care plans, goals, imaging), in words ------------------

# Workflow states of FHIR resources as people say them; any other: its words, capitalised.
STATUS_LABELS: dict[str, str] = {
    "final": "Final",
    "preliminary": "Preliminary",
    "amended": "Amended",
    "in-progress": "In progress",
    "not-started": "Not started",
    "on-hold": "On hold",
    "entered-in-error": "Entered in error",
    "available": "Available",
}


def status_label(code: str | None) -> str:
    """ "In progress" for "in-progress"."""
    if not code:
        return ""
    return STATUS_LABELS.get(code, code.replace("-", " ").capitalize())


def count_label(n: int, one: str, many: str | None = None) -> str:
    """ "1 image", "3 images"."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def nested_label(value: Any) -> str:
    """A stored FHIR structure (a list of concepts, links, activities, targets, series,
    attachments) as lines people read; never a code dump of Python values."""
    if isinstance(value, list):
        return "\n".join(line for line in (nested_label(v) for v in value) if line)
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    if "coding" in value or "text" in value:
        return concept_label(value)
    if "detail" in value or ("reference" in value and isinstance(value["reference"], dict)):
        detail = value.get("detail") or {}
        what = concept_label(detail.get("code")) or str(detail.get("description") or "")
        what = what or str((value.get("reference") or {}).get("display") or "Activity")
        status = status_label(detail.get("status"))
        where = str((detail.get("location") or {}).get("display") or "")
        return what + (f" ({status})" if status else "") + (f", at {where}" if where else "")
    if "measure" in value or any(k.startswith("detail") for k in value):
        what = concept_label(value.get("measure")) or "Target"
        for key in ("detailQuantity", "detailRange", "detailString", "detailBoolean",
                    "detailInteger", "detailCodeableConcept", "detailRatio"):  # fmt: skip
            if key in value:  # a target's detail[x] is a value[x]: the same words
                what = f"{what}: {fhir_value_label(key.removeprefix('detail'), value[key])}"
        if value.get("dueDate"):
            what += f", by {value['dueDate']}"
        return what
    if "uid" in value and ("modality" in value or "instance" in value):
        modality = concept_label(value.get("modality"))
        site = concept_label(value.get("bodySite"))
        n = value.get("numberOfInstances") or len(value.get("instance") or [])
        what = modality or "Series"
        if site:
            what += f" of the {site.lower()}"
        return f"{what}: {count_label(int(n), 'image')}"
    if "contentType" in value:
        return str(value.get("title") or content_type_label(str(value["contentType"])))
    if "display" in value:
        return str(value["display"])
    if "value" in value and "system" in value:  # an identifier
        return str(value["value"])
    return ", ".join(f"{k}: {v}" for k, v in value.items() if isinstance(v, str | int))
