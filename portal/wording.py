"""How the portal says things to people: the one vocabulary of pages, exports and admin.

Codes stay codes in storage, the ledger and FHIR (UCUM units, HL7 purpose codes, event kinds,
model names); this module turns them into the words clinicians, patients and auditors read.
Every page, the admin and the patient's exports ask it, so one word changes in one place.
It imports nothing of the portal's apps (any of them may use it).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

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
        number = Decimal(str(value))
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


def date_label(value: date | datetime | None) -> str:
    """A day as people read it: "31 Jan 2027"."""
    if value is None:
        return ""
    return f"{value.day} {value.strftime('%b %Y')}"


# --- the admin's access events (issue 16: auditors find things) ----------------------------

# Staff roles as recorded on reads (tenancy Role values, and the admin site's two).
ROLE_LABELS: dict[str, str] = {
    "clinician": "Clinician",
    "nurse": "Nurse",
    "records_clerk": "Records clerk",
    "hospital_admin": "Hospital admin",
    "auditor": "Auditor",
}

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


def role_label(role: str | None) -> str:
    if not role:
        return ""
    return ROLE_LABELS.get(role, role.replace("_", " ").capitalize())


def audit_channel_label(via: str | None) -> str:
    if not via:
        return ""
    return AUDIT_CHANNEL_LABELS.get(via, via.replace("_", " "))
