"""FHIR reads. Access is decided only by portal.records.access (access_patient,
access_record, chart_records, the lists' patient_visible_q) and, for ledger events, by
ledger.selectors.access_event: nothing here is a second copy of permission logic."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.contrib.auth.models import User
from django.http import Http404

from ledger.models import Event
from ledger.proofs import receipt_for_event
from ledger.selectors import access_event
from portal.fhir import resources
from portal.records import access as records_access
from portal.records.access import OpenedChart, OpenedRecord
from portal.records.categories import categories_named
from portal.records.crypto import blind_index
from portal.records.models import RECORD_MODELS, ClinicalRecord, Document, Patient, model_name
from portal.records.search import patient_list_for_user
from portal.tenancy.models import Hospital


def fhir_patient_everything(
    *, chart: OpenedChart, base_url: str = "", with_content: bool = True
) -> dict[str, Any]:
    """`Patient/{id}/$everything`: the patient and every record of every type the caller may
    see on it (entered-in-error versions included, marked so), as a searchset Bundle.

    `chart` was opened by the caller (records.access: access_patient for staff; the
    patient's own registration in the patient portal).
    """
    patient = records_access.chart_required(chart).patient
    found = [resources.patient_to_fhir(patient)]
    for model in RECORD_MODELS:
        qs = records_access.chart_records(chart=chart, model=model)
        for record in qs.order_by("id"):
            if isinstance(record, Document):
                found.append(resources.document_to_fhir(record, with_content=with_content))
            else:
                found.append(resources.to_fhir(record))
    from consent.selectors import consents_for_patient

    found += [resources.consent_to_fhir(c) for c in consents_for_patient(patient=patient)]
    return resources.bundle(
        found, base_url=base_url, outcome=fhir_withheld_outcome(chart=chart, resource_type=None)
    )


def fhir_withheld_outcome(
    *, chart: OpenedChart, resource_type: str | None
) -> dict[str, Any] | None:
    """What a search on `chart` says it withheld (records.access: OpenedChart.withheld, the
    categories the reader is not shown, whatever they hold), or None on a complete chart.
    `resource_type`: the type searched (None: every type, $everything). Restricted notes
    are in no category: nothing here tells whether one exists."""
    withheld = categories_named(records_access.chart_required(chart).withheld)
    if not withheld:
        return None
    searched = {
        category
        for category, rtypes in resources.CATEGORY_RESOURCE.items()
        if resource_type is None or resource_type in rtypes
    }
    return resources.withheld_outcome(
        [c.label for c in withheld],
        incomplete=any(c.category in searched for c in withheld),
    )


def fhir_records_for_patient(*, chart: OpenedChart, resource_type: str) -> list[dict[str, Any]]:
    """Search by patient: the resources of one type on a chart the caller opened."""
    out: list[dict[str, Any]] = []
    for model in resources.RESOURCE_MODELS[resource_type]:
        qs = records_access.chart_records(chart=chart, model=model)
        for record in qs.order_by("id"):
            if isinstance(record, Document):
                out.append(resources.document_to_fhir(record, with_content=False))
            else:
                out.append(resources.to_fhir(record))
    return out


def fhir_record_access(*, user: User, resource_type: str, resource_id: str) -> OpenedRecord:
    """The record behind `{resource_type}/{resource_id}`, with its chart, if the user may
    open it (records.access.access_record), else 404."""
    models = resources.RESOURCE_MODELS.get(resource_type)
    if models is None:
        raise Http404("No such resource type.")
    for model in models:
        prefix = resources.DOCREF_PREFIX.get(model, "")
        if resource_id.startswith(prefix) and (prefix or len(models) == 1):
            raw = resource_id[len(prefix) :]
            if raw.isdigit():
                return records_access.access_record(user, model_name(model), raw)
    raise Http404("No such resource.")


def fhir_patient_search(
    *,
    user: User,
    hospital: Hospital,
    identifier: str = "",
    name: str = "",
    family: str = "",
    given: str = "",
    birthdate: date | None = None,
) -> list[Patient]:
    """Patient search: identifier (`[system|]value`, the MRN), name / family / given (exact,
    case- and space-insensitive, through the blind indexes) and birthdate (exact date)."""
    patients = patient_list_for_user(user=user, hospital=hospital)
    if identifier:
        system, _, value = identifier.rpartition("|")
        if system and system != resources.mrn_system(hospital.slug):
            return []
        token = blind_index(" ".join(value.split()), hospital_id=hospital.pk, purpose="mrn")
        patients = patients.filter(mrn_index=token)
    if name:
        patients = patient_list_for_user(user=user, hospital=hospital, query=name)
        if identifier:
            patients = patients.filter(mrn_index=token)
    for value, purpose in ((family, "family_name"), (given, "given_name")):
        if value:
            token_ = blind_index(" ".join(value.split()), hospital_id=hospital.pk, purpose=purpose)
            patients = patients.filter(**{f"{purpose}_index": token_})
    rows = list(patients.select_related("hospital")[:500])
    if birthdate is not None:
        # The birth date is encrypted: compared after decryption, on the already-narrowed rows.
        rows = [p for p in rows if p.birth_date == birthdate]
    return rows


def fhir_ledger_event_access(
    *, user: User, hospital: Hospital, event_id: str, kinds: tuple[str, ...]
) -> Event:
    """A ledger event of the active hospital the user may see (ledger.selectors.access_event
    decides), of one of `kinds` ("chart.read", or a suffix like ".created"), else 404. A
    read is the active hospital's when its chart is, or when it was read from there."""
    event = access_event(user, event_id)
    if hospital.pk not in (event.hospital_id, event.actor_hospital_id) or not any(
        event.kind == k or (k.startswith(".") and event.kind.endswith(k)) for k in kinds
    ):
        raise Http404("No such event.")
    return event


def fhir_provenance(*, event: Event) -> dict[str, Any]:
    """The Provenance of a record-creation (or correction) event, with its ledger receipt."""
    model = _subject_model(event.subject_type)
    if model is None:
        raise Http404("No such provenance.")
    record = model._base_manager.filter(row_uuid=event.subject_id).first()
    if record is None:
        raise Http404("No such provenance.")
    return resources.provenance_to_fhir(record, event=event, receipt=receipt_for_event(event=event))


def _subject_model(label: str) -> type[ClinicalRecord] | type[Patient] | None:
    candidates: tuple[type[ClinicalRecord] | type[Patient], ...] = (Patient, *RECORD_MODELS)
    for model in candidates:
        if model._meta.label_lower == label:
            return model
    return None


def fhir_record_provenance(*, record: ClinicalRecord | Patient) -> dict[str, Any] | None:
    """The Provenance of a record the caller already opened: its creation (or correction)
    event in the ledger, with the receipt."""
    label = record._meta.label_lower
    event = (
        Event.objects.filter(
            subject_type=label,
            subject_id=str(record.row_uuid),
            kind__in=[
                f"{record._meta.model_name}.created",
                f"{record._meta.model_name}.corrected",
                f"{record._meta.model_name}.registered",
            ],
        )
        .order_by("id")
        .first()
    )
    if event is None:
        return None
    return resources.provenance_to_fhir(record, event=event, receipt=receipt_for_event(event=event))


def fhir_audit_event(*, event: Event, chart_hospital: Hospital | None = None) -> dict[str, Any]:
    """An access event the caller may see (fhir_ledger_event_access) as AuditEvent.

    The chart's hospital is the patient's (`chart_hospital` when the caller has it); the
    reader's is the one the event names, or, for a read recorded before it named one, the
    hospital it was recorded under, which was then the reader's."""
    if chart_hospital is None:
        patient = (
            Patient._base_manager.filter(pk=event.patient_id).select_related("hospital").first()
            if event.patient_id is not None
            else None
        )
        chart_hospital = patient.hospital if patient is not None else event.hospital
    return resources.audit_event_to_fhir(
        event, chart_hospital=chart_hospital,
        reader_hospital=event.actor_hospital or event.hospital,
    )  # fmt: skip


def fhir_audit_events_for_patient(
    *, user: User, patient: Patient, limit: int = 200
) -> list[dict[str, Any]]:
    """The access events about a chart the caller opened, those the ledger lets them see
    (their own reads; all of them for the chart's hospital's admins and auditors)."""
    events = (
        Event.objects.filter(patient_id=patient.pk, kind__in=resources.ACCESS_KINDS)
        .select_related("hospital", "actor_hospital")
        .order_by("-recorded_at")[:limit]
    )
    out = []
    for event in events:
        try:
            access_event(user, event.event_id)
        except Http404:
            continue
        out.append(fhir_audit_event(event=event, chart_hospital=patient.hospital))
    return out
