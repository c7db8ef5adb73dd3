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
from portal.fhir import history, resources
from portal.records import access as records_access
from portal.records.access import OpenedChart
from portal.records.categories import categories_named
from portal.records.crypto import blind_index
from portal.records.models import RECORD_MODELS, ClinicalRecord, Patient
from portal.records.search import patient_list_for_user
from portal.records.selectors import patient_registrations_for_user
from portal.tenancy.models import Hospital

# The FHIR type each record model is served as.
_MODEL_TYPE = {m: rtype for rtype, models in resources.RESOURCE_MODELS.items() for m in models}


def fhir_patient_everything(
    *,
    chart: OpenedChart,
    base_url: str = "",
    with_content: bool = True,
    resource_types: frozenset[str] | None = None,
    consents: bool = True,
) -> dict[str, Any]:
    """`Patient/{id}/$everything`: the patient and every record of every type the caller may
    see on it, each in its current version under its logical id (portal.fhir.history:
    earlier versions are in its `_history`), as a searchset Bundle.

    `chart` was opened by the caller (records.access: access_patient for staff; the
    patient's own registration in the patient portal). `resource_types`: the FHIR types the
    caller's credential reaches (None: all); `consents`: whether the patient's consents are
    the caller's to see (staff and the patient, not a proxy).
    """
    patient = records_access.chart_required(chart).patient

    def wanted(rtype: str | None) -> bool:
        return resource_types is None or rtype in resource_types

    found = [resources.patient_to_fhir(patient)] if wanted("Patient") else []
    for model in RECORD_MODELS:
        if not wanted(_MODEL_TYPE.get(model)):
            continue
        qs = records_access.chart_records(chart=chart, model=model, replaced_by__isnull=True)
        found += history.current_as_fhir(list(qs.order_by("id")), with_content=with_content)
    if consents and wanted("Consent"):
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
        for category, rtype in resources.CATEGORY_RESOURCE.items()
        if resource_type is None or rtype == resource_type
    }
    return resources.withheld_outcome(
        [c.label for c in withheld],
        incomplete=any(c.category in searched for c in withheld),
    )


def fhir_records_for_patient(*, chart: OpenedChart, resource_type: str) -> list[dict[str, Any]]:
    """Search by patient: the resources of one type on a chart the caller opened, each in its
    current version under its logical id (portal.fhir.history)."""
    out: list[dict[str, Any]] = []
    for model in resources.RESOURCE_MODELS[resource_type]:
        qs = records_access.chart_records(chart=chart, model=model, replaced_by__isnull=True)
        out += history.current_as_fhir(list(qs.order_by("id")), with_content=False)
    return out


def fhir_record_ref(*, resource_type: str, resource_id: str) -> tuple[type[ClinicalRecord], str]:
    """The model and row id `{resource_type}/{resource_id}` names (a DocumentReference is a
    note or a document by its prefix), else 404. Names only: nothing is opened."""
    models = resources.RESOURCE_MODELS.get(resource_type)
    if models is None:
        raise Http404("No such resource type.")
    for model in models:
        prefix = resources.DOCREF_PREFIX.get(model, "")
        if resource_id.startswith(prefix) and (prefix or len(models) == 1):
            raw = resource_id[len(prefix) :]
            if raw.isdigit():
                return model, raw
    raise Http404("No such resource.")


def fhir_patient_search_own(
    *,
    user: User,
    patient_id: int | None = None,
    identifier: str = "",
    name: str = "",
    family: str = "",
    given: str = "",
    birthdate: date | None = None,
) -> list[Patient]:
    """Patient search for a patient: their own registrations (`patient_id`: only that one,
    an app's launch context), those matching the parameters given (none: all of them). It
    never looks beyond the account's own registrations, so it finds nobody else. The names
    and MRNs are encrypted: compared after decryption, on a handful of rows."""

    def same(a: Any, b: str) -> bool:
        return " ".join(str(a or "").split()).casefold() == " ".join(b.split()).casefold()

    rows = [
        p
        for p in patient_registrations_for_user(user=user)
        if patient_id is None or p.pk == patient_id
    ]
    if identifier:
        system, _, value = identifier.rpartition("|")
        rows = [
            p
            for p in rows
            if same(p.mrn, value)
            and (not system or system == resources.mrn_system(p.hospital.slug))
        ]
    if name:
        rows = [
            p
            for p in rows
            if all(
                any(same(part, word) for part in (p.given_name, p.family_name))
                for word in name.split()
            )
        ]
    if family:
        rows = [p for p in rows if same(p.family_name, family)]
    if given:
        rows = [p for p in rows if same(p.given_name, given)]
    if birthdate is not None:
        rows = [p for p in rows if p.birth_date == birthdate]
    return rows


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
    *, user: User, hospital: Hospital | None, event_id: str, kinds: tuple[str, ...]
) -> Event:
    """A ledger event the user may see (ledger.selectors.access_event decides: staff, those
    of the hospitals they administer; patients, those about their own registrations), of
    one of `kinds` ("chart.read", or a suffix like ".created"), else 404. `hospital`: the
    active hospital of a staff caller; a read is that hospital's when its chart is, or when
    it was read from there (None for a patient: access_event alone decides)."""
    event = access_event(user, event_id)
    here = hospital is None or hospital.pk in (event.hospital_id, event.actor_hospital_id)
    if not here or not any(
        event.kind == k or (k.startswith(".") and event.kind.endswith(k)) for k in kinds
    ):
        raise Http404("No such event.")
    return event


def fhir_provenance_target(*, event: Event) -> ClinicalRecord | Patient:
    """The row a record-creation (or correction) event is about, else 404. Lookup only:
    the caller decides whether it may see it."""
    model = _subject_model(event.subject_type)
    record = model._base_manager.filter(row_uuid=event.subject_id).first() if model else None
    if record is None:
        raise Http404("No such provenance.")
    return record


def fhir_provenance(
    *, event: Event, target: ClinicalRecord | Patient | None = None
) -> dict[str, Any]:
    """The Provenance of a record-creation (or correction) event, with its ledger receipt."""
    record = target if target is not None else fhir_provenance_target(event=event)
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
