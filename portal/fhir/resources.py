"""The portal's patients, records and ledger events as HL7 FHIR R4 resources (JSON dicts).

Pure mapping: no query decides access here (the selectors do). Every function returns a
plain dict that validates with fhir.resources' R4B models (`validate_resource`).

Ids: a Patient and each record type are named by their primary key (`Observation/12`).
Notes and documents are both DocumentReference, so their ids carry a prefix
(`DocumentReference/note-3`, `DocumentReference/doc-7`). AuditEvent and Provenance are named
by the ledger event's UUID, Consent by its row UUID.

Versions: a record's corrections are versions of ONE FHIR resource. Its logical id is its
FIRST version's row id, stable across corrections; `meta.versionId` is the row's `version`
(1, 2, ...), `meta.lastUpdated` the row's creation. A version that a correction replaced is
served with its entered-in-error status (Observation.status, Condition.verificationStatus,
... see `_in_error`). Every other version's row id still names the resource: a read of it
answers the current version under the logical id (portal.fhir.history resolves the chain;
these functions name a row by its own id, and history renames it). Searches and $everything
answer current versions; `[type]/{id}/_history` and `/_history/{vid}` the others. Patients,
consents and ledger events keep no versions: versionId "1", lastUpdated their creation.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any, Literal

from django.utils.dateparse import parse_datetime
from fhir.resources.R4B import get_fhir_model_class

from portal.records import observations
from portal.records.categories import (
    CHART_CATEGORIES,
    MODEL_RESOURCE,
    RESOURCE_TYPES,
    resource_categories,
)
from portal.records.models import (
    RECORD_MODELS,
    AllergyIntolerance,
    CarePlan,
    ClinicalNote,
    ClinicalRecord,
    Condition,
    DiagnosticReport,
    Document,
    Encounter,
    Goal,
    ImagingStudy,
    Immunization,
    MedicationRequest,
    Observation,
    Patient,
    Procedure,
    RecordStatus,
    model_name,
)
from portal.wording import not_shared_label

FHIR_JSON = "application/fhir+json"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
UCUM = "http://unitsofmeasure.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
USER_SYSTEM = "urn:hospital-portal:user"

# The records model each FHIR resource type is stored as (DocumentReference: two models).
RESOURCE_MODELS: dict[str, tuple[type[ClinicalRecord], ...]] = {
    rtype: tuple(m for m in RECORD_MODELS if MODEL_RESOURCE[model_name(m)] == rtype)
    for rtype in RESOURCE_TYPES
}
DOCREF_PREFIX: dict[type[ClinicalRecord], str] = {ClinicalNote: "note-", Document: "doc-"}


class FhirValidationError(ValueError):
    """A resource does not validate against the FHIR R4(B) models."""


def validate_resource(resource: dict[str, Any]) -> None:
    """Raise FhirValidationError unless `resource` validates with fhir.resources R4B."""
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(resource_type, str):
        raise FhirValidationError("not a FHIR resource (no resourceType)")
    try:
        model = get_fhir_model_class(resource_type)
    except (ValueError, KeyError):
        raise FhirValidationError(f"unknown resourceType {resource_type!r}") from None
    try:
        model.model_validate(resource)
    except Exception as exc:  # pydantic's ValidationError and fhir_core's own errors
        raise FhirValidationError(_short_error(exc)) from None


def _short_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        with contextlib.suppress(Exception):  # fall back to the message
            parts = [
                f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                for e in errors()[:5]
            ]
            return "; ".join(parts)
    return str(exc).splitlines()[0][:300]


def fhir_id(record: ClinicalRecord | Patient) -> str:
    return f"{DOCREF_PREFIX.get(type(record), '')}{record.pk}"


def resource_type_of(record: ClinicalRecord | Patient) -> str:
    if isinstance(record, Patient):
        return "Patient"
    for resource_type, models in RESOURCE_MODELS.items():
        if type(record) in models:
            return resource_type
    raise LookupError(type(record).__name__)


def reference(record: ClinicalRecord | Patient) -> dict[str, str]:
    return {"reference": f"{resource_type_of(record)}/{fhir_id(record)}"}


def _instant(value: datetime) -> str:
    return value.isoformat()


def _date(value: date) -> str:
    return value.isoformat()


def _concept(system: str, code: str, display: str = "") -> dict[str, Any]:
    if not code:  # described in free text: a concept with text only
        return {"text": display}
    coding: dict[str, str] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    concept: dict[str, Any] = {"coding": [coding]}
    if display:
        concept["text"] = display
    return concept


def _in_error(record: ClinicalRecord) -> bool:
    return record.status == RecordStatus.ENTERED_IN_ERROR


def _base(record: ClinicalRecord) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": resource_type_of(record),
        "id": fhir_id(record),
        "meta": {
            "versionId": str(record.version),
            "lastUpdated": _instant(record.created_at),
        },
    }
    return resource


def _first_version(created_at: datetime) -> dict[str, str]:
    """The meta of what keeps no versions (patients, consents, ledger events)."""
    return {"versionId": "1", "lastUpdated": _instant(created_at)}


def _subject(record: ClinicalRecord) -> dict[str, str]:
    return {"reference": f"Patient/{record.patient_id}"}


def patient_to_fhir(patient: Patient) -> dict[str, Any]:
    hospital = patient.hospital
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient.pk),
        "identifier": [
            {
                "use": "usual",
                "type": _concept(V2_0203, "MR", "Medical record number"),
                "system": mrn_system(hospital.slug),
                "value": patient.mrn,
            }
        ],
        "active": True,
        "name": [{"use": "official", "family": patient.family_name, "given": [patient.given_name]}],
        "gender": patient.sex,
        "birthDate": _date(patient.birth_date),
        "managingOrganization": {"display": hospital.name},
    }
    if patient.phone:
        resource["telecom"] = [{"system": "phone", "value": patient.phone}]
    resource["meta"] = _first_version(patient.created_at)
    if patient.restricted:
        resource["meta"] |= {
            "security": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                    "code": "R",
                    "display": "restricted",
                }
            ]
        }
    return resource


def mrn_system(hospital_slug: str) -> str:
    return f"urn:hospital-portal:{hospital_slug}:mrn"


def encounter_to_fhir(record: Encounter) -> dict[str, Any]:
    resource = _base(record)
    if _in_error(record):
        status = "entered-in-error"
    else:
        status = "finished" if record.period_end else "in-progress"
    resource.update(
        {
            "status": status,
            "class": {"system": ACT_CODE, "code": record.class_code},
            "subject": _subject(record),
            "period": {"start": _instant(record.period_start)},
        }
    )
    if record.period_end:
        resource["period"]["end"] = _instant(record.period_end)
    if record.type_code:
        resource["type"] = [_concept(SNOMED, record.type_code, record.type_display)]
    if record.reason:
        resource["reasonCode"] = [{"text": record.reason}]
    return resource


def _same_instant(text: Any, value: datetime | None) -> bool:
    """Whether a kept FHIR date/time text still names the stored instant (a correction
    rewrites the column; the text then no longer applies)."""
    if not isinstance(text, str) or value is None:
        return False
    try:
        parsed = parse_datetime(text)
    except ValueError:
        return False
    if parsed is None and len(text) <= 10:  # a date, a year-month or a year: midnight UTC
        parts = text.split("-")
        with contextlib.suppress(ValueError, IndexError):
            day = date(int(parts[0]), int(parts[1]) if len(parts) > 1 else 1,
                       int(parts[2]) if len(parts) > 2 else 1)  # fmt: skip
            parsed = datetime.combine(day, time(0), tzinfo=UTC)
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed == value


def _kept_or(text: Any, value: datetime) -> str:
    return text if _same_instant(text, value) else _instant(value)


def _observation_effective(record: Observation, kept: Any) -> dict[str, Any]:
    """effective[x] of the type and text it came with (an import), else effectiveDateTime;
    the columns decide the instants."""
    kept = kept if isinstance(kept, dict) else {"type": "DateTime"}
    kind, given = kept.get("type"), kept.get("value")
    if kind == "":
        return {}  # none was given (`issued` dated it)
    if kind == "Period" or record.effective_end is not None:
        given = given if isinstance(given, dict) else {}
        period = {}
        if "start" in given or "end" not in given:
            period["start"] = _kept_or(given.get("start"), record.effective_at)
        if record.effective_end is not None:
            period["end"] = _kept_or(given.get("end"), record.effective_end)
        return {"effectivePeriod": period}
    if kind == "Instant" and _same_instant(given, record.effective_at):
        return {"effectiveInstant": given}
    return {"effectiveDateTime": _kept_or(given, record.effective_at)}


def _value_key(kind: str) -> str:
    return f"value{kind[:1].upper()}{kind[1:]}"


def observation_to_fhir(record: Observation) -> dict[str, Any]:
    """An Observation as it was given: its value of whatever type, its components, every
    category and code coding (records.observations keeps what the columns cannot hold)."""
    kept = observations.details(record)
    resource = _base(record)
    status = kept.get("status") if isinstance(kept.get("status"), str) else "final"
    code = kept.get("code")
    if not (isinstance(code, dict) and observations.primary_code(code) == record.code):
        code = _concept(LOINC, record.code, record.display)  # the columns: provider forms
    resource["status"] = "entered-in-error" if _in_error(record) else status
    if isinstance(kept.get("category"), list):
        resource["category"] = kept["category"]
    elif record.category:
        resource["category"] = [
            _concept(OBS_CATEGORY, record.category, record.get_category_display())
        ]
    resource.update({"code": code, "subject": _subject(record)})
    resource.update(_observation_effective(record, kept.get("effective")))
    if record.issued is not None:
        resource["issued"] = _kept_or(kept.get("issued"), record.issued)
    value = observations.value(record)
    if value is not None:
        resource[_value_key(value[0])] = value[1]
    for name in observations.KEPT_ELEMENTS:
        if name in kept and not (name == "dataAbsentReason" and value is not None):
            resource[name] = kept[name]
    parts = observations.components(record)
    if parts:
        resource["component"] = parts
    if record.encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{record.encounter_id}"}
    return resource


CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def condition_to_fhir(record: Condition) -> dict[str, Any]:
    resource = _base(record)
    resource.update(
        {
            "code": _concept(SNOMED, record.code, record.display),
            "subject": _subject(record),
        }
    )
    if _in_error(record):
        # con-5: no clinical status on an entered-in-error condition.
        resource["verificationStatus"] = _concept(CONDITION_VERIFICATION, "entered-in-error")
    else:
        resource["clinicalStatus"] = _concept(CONDITION_CLINICAL, record.clinical_status)
        resource["verificationStatus"] = _concept(CONDITION_VERIFICATION, "confirmed")
    if record.onset_date:
        resource["onsetDateTime"] = _date(record.onset_date)
    if record.abatement_date:
        resource["abatementDateTime"] = _date(record.abatement_date)
    return resource


def medication_request_to_fhir(record: MedicationRequest) -> dict[str, Any]:
    resource = _base(record)
    resource.update(
        {
            "status": "entered-in-error" if _in_error(record) else record.request_status,
            "intent": "order",
            "medicationCodeableConcept": _concept(RXNORM, record.code, record.display),
            "subject": _subject(record),
            "authoredOn": _instant(record.authored_on),
        }
    )
    if record.dosage:
        resource["dosageInstruction"] = [{"text": record.dosage}]
    if record.valid_until:
        resource["dispenseRequest"] = {"validityPeriod": {"end": _instant(record.valid_until)}}
    return resource


ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"


def allergy_to_fhir(record: AllergyIntolerance) -> dict[str, Any]:
    resource = _base(record)
    if _in_error(record):
        resource["verificationStatus"] = _concept(ALLERGY_VERIFICATION, "entered-in-error")
    else:
        resource["clinicalStatus"] = _concept(ALLERGY_CLINICAL, "active")
        resource["verificationStatus"] = _concept(ALLERGY_VERIFICATION, "confirmed")
    resource.update(
        {
            "criticality": record.criticality,
            "code": _concept(SNOMED, record.code, record.display),
            "patient": _subject(record),
            "recordedDate": _instant(record.recorded_date),
        }
    )
    if record.reaction:
        resource["reaction"] = [{"manifestation": [{"text": record.reaction}]}]
    return resource


def immunization_to_fhir(record: Immunization) -> dict[str, Any]:
    resource = _base(record)
    resource.update(
        {
            "status": "entered-in-error" if _in_error(record) else "completed",
            "vaccineCode": _concept(CVX, record.vaccine_code, record.display),
            "patient": _subject(record),
            "occurrenceDateTime": _instant(record.occurrence),
        }
    )
    return resource


def procedure_to_fhir(record: Procedure) -> dict[str, Any]:
    resource = _base(record)
    resource.update(
        {
            "status": "entered-in-error" if _in_error(record) else "completed",
            "code": _concept(SNOMED, record.code, record.display),
            "subject": _subject(record),
            "performedDateTime": _instant(record.performed_at),
        }
    )
    return resource


CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


def note_to_fhir(record: ClinicalNote) -> dict[str, Any]:
    resource = _base(record)
    resource.update(
        {
            "status": "entered-in-error" if _in_error(record) else "current",
            "type": _concept(LOINC, "11506-3", "Progress note"),
            "category": [{"text": "clinical-note"}],
            "subject": _subject(record),
            "date": _instant(record.created_at),
            "description": record.title,
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain; charset=utf-8",
                        "data": base64.b64encode(record.text.encode()).decode(),
                        "title": record.title,
                    }
                }
            ],
        }
    )
    if record.restricted:
        resource["securityLabel"] = [_concept(CONFIDENTIALITY, "R", "restricted")]
    return resource


def document_to_fhir(record: Document, *, with_content: bool = True) -> dict[str, Any]:
    resource = _base(record)
    attachment: dict[str, Any] = {
        "contentType": record.content_type,
        "size": record.size,
        "title": record.title,
        "creation": _instant(record.created_at),
    }
    if with_content:
        attachment["data"] = base64.b64encode(bytes(record.content)).decode()
    resource.update(
        {
            "status": "entered-in-error" if _in_error(record) else "current",
            "category": [{"text": "document"}],
            "subject": _subject(record),
            "date": _instant(record.created_at),
            "description": record.title,
            "identifier": [{"system": "urn:ietf:rfc:6920:sha-256", "value": record.sha256}],
            "content": [{"attachment": attachment}],
        }
    )
    return resource


# --- reports, plans, goals, imaging: nested structures stored as they came ------------------


def _links(links: list[dict[str, Any]], key: str, resource_type: str) -> list[dict[str, Any]]:
    """Stored links ({key: id, "display"}) as References to the portal's resources; a link
    kept as display text only stays display text."""
    out = []
    for link in links or []:
        ref: dict[str, Any] = {}
        if key in link:
            ref["reference"] = f"{resource_type}/{link[key]}"
        if link.get("display"):
            ref["display"] = link["display"]
        if ref:
            out.append(ref)
    return out


def _encounter_ref(resource: dict[str, Any], record: Any, name: str = "encounter") -> None:
    if record.encounter_id:
        resource[name] = {"reference": f"Encounter/{record.encounter_id}"}


def diagnostic_report_to_fhir(record: DiagnosticReport) -> dict[str, Any]:
    resource = _base(record)
    resource.update(
        {
            "status": "entered-in-error" if _in_error(record) else record.report_status,
            "code": record.code,
            "subject": _subject(record),
            "effectiveDateTime": _instant(record.effective_at),
        }
    )
    if record.category:
        resource["category"] = record.category
    _encounter_ref(resource, record)
    if record.issued:
        resource["issued"] = _instant(record.issued)
    results = _links(record.results, "observation", "Observation")
    if results:
        resource["result"] = results
    if record.conclusion:
        resource["conclusion"] = record.conclusion
    if record.conclusion_code:
        resource["conclusionCode"] = record.conclusion_code
    if record.presented_form:
        resource["presentedForm"] = record.presented_form
    return resource


def care_plan_to_fhir(record: CarePlan) -> dict[str, Any]:
    resource = _base(record)
    resource.update(
        {
            "status": "entered-in-error" if _in_error(record) else record.plan_status,
            "intent": record.intent,
            "subject": _subject(record),
            "period": {"start": _instant(record.period_start)},
        }
    )
    if record.period_end:
        resource["period"]["end"] = _instant(record.period_end)
    for name, value in (("title", record.title), ("description", record.description)):
        if value:
            resource[name] = value
    if record.category:
        resource["category"] = record.category
    _encounter_ref(resource, record)
    addresses = _links(record.addresses, "condition", "Condition")
    if addresses:
        resource["addresses"] = addresses
    goals = _links(record.goals, "goal", "Goal")
    if goals:
        resource["goal"] = goals
    if record.activities:
        resource["activity"] = record.activities
    return resource


def goal_to_fhir(record: Goal) -> dict[str, Any]:
    resource = _base(record)
    resource.update(
        {
            "lifecycleStatus": "entered-in-error" if _in_error(record) else record.lifecycle_status,
            "description": record.description,
            "subject": _subject(record),
        }
    )
    if record.achievement_status:
        resource["achievementStatus"] = record.achievement_status
    if record.start_date:
        resource["startDate"] = _date(record.start_date)
    if record.status_date:
        resource["statusDate"] = _date(record.status_date)
    if record.targets:
        resource["target"] = record.targets
    addresses = _links(record.addresses, "condition", "Condition")
    if addresses:
        resource["addresses"] = addresses
    return resource


def imaging_study_to_fhir(record: ImagingStudy) -> dict[str, Any]:
    resource = _base(record)
    resource.update(
        {
            "status": "entered-in-error" if _in_error(record) else record.study_status,
            "subject": _subject(record),
            "started": _instant(record.started),
        }
    )
    _encounter_ref(resource, record)
    for name, value in (
        ("identifier", record.identifiers), ("modality", record.modality),
        ("procedureCode", record.procedure_code), ("series", record.series),
        ("description", record.description),
    ):  # fmt: skip
        if value:
            resource[name] = value
    if record.number_of_series is not None:
        resource["numberOfSeries"] = record.number_of_series
    if record.number_of_instances is not None:
        resource["numberOfInstances"] = record.number_of_instances
    return resource


TO_FHIR: dict[type, Callable[[Any], dict[str, Any]]] = {
    Patient: patient_to_fhir,
    Encounter: encounter_to_fhir,
    Observation: observation_to_fhir,
    Condition: condition_to_fhir,
    MedicationRequest: medication_request_to_fhir,
    AllergyIntolerance: allergy_to_fhir,
    Immunization: immunization_to_fhir,
    Procedure: procedure_to_fhir,
    ClinicalNote: note_to_fhir,
    Document: document_to_fhir,
    DiagnosticReport: diagnostic_report_to_fhir,
    CarePlan: care_plan_to_fhir,
    Goal: goal_to_fhir,
    ImagingStudy: imaging_study_to_fhir,
}


def to_fhir(obj: Patient | ClinicalRecord) -> dict[str, Any]:
    """Any patient or clinical record as its FHIR R4 resource."""
    return TO_FHIR[type(obj)](obj)


# --- from the ledger ------------------------------------------------------------------------

ACCESS_KINDS = ("chart.read", "record.read", "document.read")
DCM = "http://dicom.nema.org/resources/ontology/DCM"
V3_PURPOSE = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
V3_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
RECORD_TYPE_RESOURCE = {
    model._meta.model_name: resource_type
    for resource_type, models in RESOURCE_MODELS.items()
    for model in models
}


def practitioner_to_fhir(user: Any) -> dict[str, Any]:
    """A staff member as a minimal Practitioner (their SMART fhirUser): id and name only."""
    return {
        "resourceType": "Practitioner",
        "id": str(user.pk),
        "active": bool(user.is_active),
        "name": [{"text": user.get_full_name() or user.get_username()}],
    }


def _user_reference(user_id: int | None) -> dict[str, Any]:
    if user_id is None:
        return {"display": "the portal (no signed-in user)"}
    return {"identifier": {"system": USER_SYSTEM, "value": str(user_id)}}


def _organization(hospital: Any) -> dict[str, Any]:
    return {"reference": f"Organization/{hospital.slug}", "display": hospital.name}


def audit_event_to_fhir(
    event: Any, *, chart_hospital: Any, reader_hospital: Any | None
) -> dict[str, Any]:
    """An access event of the ledger (chart.read, record.read, document.read) as AuditEvent.

    The reader's side is the source (`site`, `observer`: the hospital the reader acted in)
    and the requesting agent; the chart's hospital, which keeps the record read, is a second
    agent typed custodian (v3 ParticipationType CST); the patient and the record are the
    entities. Hospitals are Organizations by slug, as in Consent."""
    if event.kind not in ACCESS_KINDS:
        raise ValueError(f"{event.kind} is not an access event")
    attrs = event.attrs or {}
    agent: dict[str, Any] = {"who": _user_reference(event.actor_id), "requestor": True}
    if attrs.get("role"):
        agent["role"] = [{"text": str(attrs["role"])}]
    if attrs.get("purpose"):
        agent["purposeOfUse"] = [_concept(V3_PURPOSE, str(attrs["purpose"]))]
    entities: list[dict[str, Any]] = []
    if event.patient_id is not None:
        entities.append({"what": {"reference": f"Patient/{event.patient_id}"}})
    record_type, record_id = attrs.get("record_type"), attrs.get("record")
    if record_type in RECORD_TYPE_RESOURCE and record_id is not None:
        prefix = {"clinicalnote": "note-", "document": "doc-"}.get(record_type, "")
        entities.append(
            {"what": {"reference": f"{RECORD_TYPE_RESOURCE[record_type]}/{prefix}{record_id}"}}
        )
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(event.event_id),
        "meta": _first_version(event.recorded_at),
        "type": {"system": DCM, "code": "110110", "display": "Patient Record"},
        "subtype": [
            {"system": "http://hl7.org/fhir/restful-interaction", "code": "read", "display": "read"}
        ],
        "action": "R",
        "recorded": _instant(event.recorded_at),
        "outcome": "0",
        "agent": [
            agent,
            {
                "type": _concept(V3_PARTICIPATION, "CST", "custodian"),
                "who": _organization(chart_hospital),
                "requestor": False,
            },
        ],
        "source": (
            {"site": reader_hospital.name, "observer": _organization(reader_hospital)}
            if reader_hospital is not None
            else {"observer": {"display": "the portal (no hospital)"}}
        ),
        "entity": entities,
    }
    if attrs.get("purpose"):
        resource["purposeOfEvent"] = [_concept(V3_PURPOSE, str(attrs["purpose"]))]
    return resource


def provenance_to_fhir(
    record: ClinicalRecord | Patient, *, event: Any, receipt: dict[str, Any] | None
) -> dict[str, Any]:
    """Who created `record` and when, with the ledger receipt of that event (when anchored).

    The receipt (the event's leaf, inclusion proof and signed checkpoint; check it with
    `python -m ledger.verifier`) is the signature's data, base64 of its JSON.
    """
    resource: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": str(event.event_id),
        "meta": _first_version(event.recorded_at),
        "target": [reference(record)],
        "recorded": _instant(event.recorded_at),
        "activity": _concept(
            "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
            "UPDATE" if event.kind.endswith(".corrected") else "CREATE",
        ),
        "agent": [{"who": _user_reference(event.actor_id)}],
        "entity": [
            {
                "role": "source",
                "what": {
                    "identifier": {
                        "system": "urn:ietf:rfc:3986",
                        "value": f"urn:uuid:{event.event_id}",
                    },
                    "display": f"ledger event {event.kind}",
                },
            }
        ],
    }
    if receipt is not None:
        data = json.dumps(receipt, sort_keys=True, separators=(",", ":")).encode()
        resource["signature"] = [
            {
                "type": [
                    {
                        "system": "urn:iso-astm:E1762-95:2013",
                        "code": "1.2.840.10065.1.12.1.5",
                        "display": "Verification Signature",
                    }
                ],
                "when": _instant(event.recorded_at),
                "who": {"display": "the portal's ledger (signed checkpoint)"},
                "sigFormat": "application/json",
                "data": base64.b64encode(data).decode(),
            }
        ]
    return resource


def bundle(
    resources: list[dict[str, Any]],
    *,
    bundle_type: str = "searchset",
    base_url: str = "",
    outcome: dict[str, Any] | None = None,
    total: int | Literal["matches"] | None = "matches",
    links: list[dict[str, str]] | None = None,
    included: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Bundle of `resources`; a searchset's `outcome` (an OperationOutcome about the
    search, e.g. what it withheld) is one more entry, search.mode "outcome", not counted in
    `total` (FHIR R4 3.1.1.5.8), and so are `included` resources (search.mode "include").

    `total`: the number of matches of the whole search (a page's Bundle holds some of them),
    None when it is not known, "matches" (the default) for the entries given. `links`: the
    Bundle's `link` (self, first, previous, next)."""

    def entry_of(resource: dict[str, Any], mode: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"resource": resource}
        if base_url:
            entry["fullUrl"] = f"{base_url}{resource['resourceType']}/{resource['id']}"
        if bundle_type == "searchset":
            entry["search"] = {"mode": mode}
        return entry

    entries = [entry_of(resource, "match") for resource in resources]
    result: dict[str, Any] = {"resourceType": "Bundle", "type": bundle_type}
    if links:
        result["link"] = links
    result["entry"] = entries
    if bundle_type == "searchset":
        if total == "matches":
            result["total"] = len(entries)
        elif total is not None:
            result["total"] = total
        entries += [entry_of(resource, "include") for resource in included or ()]
        if outcome is not None:
            entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    return result


def outcome_add(
    outcome: dict[str, Any] | None, text: str, *, code: str, severity: str = "warning"
) -> dict[str, Any]:
    """`outcome` (an OperationOutcome about a search, or None) with one more issue."""
    issue = {"severity": severity, "code": code, "details": {"text": text}}
    if outcome is None:
        return {"resourceType": "OperationOutcome", "issue": [issue]}
    return {**outcome, "issue": [*outcome["issue"], issue]}


def withheld_outcome(labels: list[str], *, incomplete: bool) -> dict[str, Any]:
    """A search's answer on a partial chart: which categories the reader is not shown, in
    words ("Not shared with you: Allergies, Medications"). A warning when the search's own
    type is among them (its matches leave records out), information otherwise."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "warning" if incomplete else "information",
                "code": "suppressed",
                "details": {"text": not_shared_label(labels)},
            }
        ],
    }


def operation_outcome(
    issues: list[str] | str, *, code: str = "invalid", severity: str = "error"
) -> dict[str, Any]:
    if isinstance(issues, str):
        issues = [issues]
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": severity, "code": code, "diagnostics": text[:2000]} for text in issues
        ]
        or [{"severity": severity, "code": code}],
    }


# --- Consent (consent.Consent) --------------------------------------------------------------

CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_POLICY = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CHART_CATEGORY_SYSTEM = "urn:portal:chart-category"
# A category -> the resource types its records are served as.
CATEGORY_RESOURCE: dict[str, tuple[str, ...]] = {
    code: tuple(t for t in RESOURCE_TYPES if code in resource_categories(t))
    for code, _label in CHART_CATEGORIES
}
CONSENT_STATUS = {"active": "active", "scheduled": "active", "revoked": "inactive",
                  "expired": "inactive"}  # fmt: skip


def consent_to_fhir(consent: Any) -> dict[str, Any]:
    """A patient's consent as FHIR R4 Consent (privacy scope, opt-in, one permit provision
    naming the grantee, the purpose, the period and what is shared)."""
    kind = consent.grantee_kind
    if kind == "practitioner":
        actor_ref = {"reference": f"Practitioner/{consent.grantee_user_id}",
                     "display": consent.grantee_label}  # fmt: skip
    elif kind == "hospital":
        actor_ref = {"reference": f"Organization/{consent.grantee_hospital.slug}",
                     "display": consent.grantee_label}  # fmt: skip
    else:
        actor_ref = {"display": consent.grantee_label}
    provision: dict[str, Any] = {
        "type": "permit",
        "period": {"start": _instant(consent.period_start)},
        "actor": [{"role": _concept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                    "IRCP", "information recipient"),
                   "reference": actor_ref}],
        "action": [_concept("http://terminology.hl7.org/CodeSystem/consentaction", "access")],
        "purpose": [{"system": V3_PURPOSE, "code": consent.purpose,
                     "display": consent.get_purpose_display()}],
    }  # fmt: skip
    if consent.period_end is not None:
        provision["period"]["end"] = _instant(consent.period_end)
    if not consent.scope_all:
        types = sorted({t for c in consent.categories for t in CATEGORY_RESOURCE[c]})
        provision["class"] = [{"system": "http://hl7.org/fhir/resource-types", "code": t}
                              for t in types]  # fmt: skip
        provision["code"] = [_concept(CHART_CATEGORY_SYSTEM, c) for c in consent.categories]
    # Through the link table: the notes may belong to a hospital outside the reader's scope.
    note_ids = sorted(
        type(consent).restricted_notes.through.objects.filter(consent_id=consent.pk)
        .values_list("clinicalnote_id", flat=True)
    )  # fmt: skip
    if note_ids:
        provision["data"] = [{"meaning": "instance",
                              "reference": {"reference": f"DocumentReference/note-{pk}"}}
                             for pk in note_ids]  # fmt: skip
    resource = {
        "resourceType": "Consent",
        "id": str(consent.row_uuid),
        # A consent revoked early changed then: that is its last update (no versions kept).
        "meta": _first_version(consent.ended_at or consent.created_at),
        "status": CONSENT_STATUS[consent.state],
        "scope": _concept(CONSENT_SCOPE, "patient-privacy", "Privacy Consent"),
        "category": [_concept("http://loinc.org", "59284-0", "Patient Consent")],
        "patient": {"reference": f"Patient/{consent.patient_id}"},
        "dateTime": _instant(consent.created_at),
        "policyRule": _concept(CONSENT_POLICY, "OPTIN", "opt-in"),
        "provision": provision,
    }
    validate_resource(resource)
    return resource
