"""FHIR reads. Access is decided only by portal.records.access (access_patient,
access_record, chart_records, the lists' patient_visible_q) and, for ledger events, by
ledger.selectors.access_event: nothing here is a second copy of permission logic."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import Http404

from ledger.models import Event
from ledger.proofs import receipt_for_event
from ledger.selectors import access_event
from portal.fhir import resources
from portal.fhir.paging import Section
from portal.fhir.search import DateRange, Search, date_matches, date_q
from portal.records import access as records_access
from portal.records.access import OpenedChart, OpenedRecord
from portal.records.categories import categories_named
from portal.records.crypto import blind_index
from portal.records.fields import BlindIndexField
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
    sections = fhir_everything_sections(chart=chart, with_content=with_content)
    found = [section.render(row) for section in sections for row in section.ordered()]
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
    """Search by patient, unpaged: the resources of one type on a chart the caller opened."""
    every = Search(resource_type=resource_type, params={}, count=0)
    sections = fhir_record_sections(chart=chart, search=every)
    return [section.render(row) for section in sections for row in section.ordered()]


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
    event = _provenance_event(record)
    if event is None:
        return None
    return resources.provenance_to_fhir(record, event=event, receipt=receipt_for_event(event=event))


def _provenance_event(record: ClinicalRecord | Patient) -> Event | None:
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
    return event


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


# --- paged searches (portal.fhir.paging, portal.fhir.search) ---------------------------------


def _render_record(record: ClinicalRecord) -> dict[str, Any]:
    if isinstance(record, Document):
        return resources.document_to_fhir(record, with_content=False)
    return resources.to_fhir(record)


def _render_with_content(record: ClinicalRecord) -> dict[str, Any]:
    if isinstance(record, Document):
        return resources.document_to_fhir(record, with_content=True)
    return resources.to_fhir(record)


def _code_index(model: type[ClinicalRecord]) -> BlindIndexField | None:
    """The model's keyed token of its code (Observation.code_index), if it has one."""
    for model_field in model._meta.get_fields():
        if isinstance(model_field, BlindIndexField) and model_field.source == "code":
            return model_field
    return None


def _codings(resource: dict[str, Any]) -> list[dict[str, Any]]:
    for key in ("code", "vaccineCode", "medicationCodeableConcept", "type"):
        concept = resource.get(key)
        if isinstance(concept, dict):
            return concept.get("coding") or []
        if isinstance(concept, list) and concept and isinstance(concept[0], dict):
            return concept[0].get("coding") or []
    return []


def _token_matches(
    codings: list[dict[str, Any]], wanted: tuple[tuple[str | None, str], ...]
) -> bool:
    for coding in codings:
        for system, code in wanted:
            if coding.get("code") != code:
                continue
            if system is None or (coding.get("system") or "") == system:
                return True
    return False


def _date_filtered(qs: QuerySet, column: str, dates: tuple[DateRange, ...]) -> QuerySet:
    for value in dates:  # repeated date parameters: all of them (AND)
        qs = qs.filter(date_q(column, value))
    return qs


def _sort_of(search: Search, *, date_column: str | None) -> tuple[str | None, bool]:
    """(column, descending) for `_sort` (None: by id, the order records were stored)."""
    name = search.sort.lstrip("-")
    column = {"_lastUpdated": "created_at", "date": date_column}.get(name)
    return column, search.sort.startswith("-")


DATE_COLUMN: dict[str, str] = {"Observation": "effective_at"}


def fhir_record_sections(*, chart: OpenedChart, search: Search) -> list[Section]:
    """A search of one record type on a chart the caller opened, as page sections (one per
    model the type is stored as). In SQL where the column is in clear (category, times,
    the keyed code token); codes with a system are checked on the decrypted records of this
    one chart (bounded by the chart, never across charts)."""
    date_column = DATE_COLUMN.get(search.resource_type)
    key, descending = _sort_of(search, date_column=date_column)
    sections = []
    for model in resources.RESOURCE_MODELS[search.resource_type]:
        qs = records_access.chart_records(chart=chart, model=model)
        qs = _date_filtered(qs, "created_at", search.last_updated)
        if date_column is not None:
            qs = _date_filtered(qs, date_column, search.dates)
        if search.categories:
            codes = [c for s, c in search.categories if s in (None, resources.OBS_CATEGORY)]
            qs = qs.filter(category__in=codes)
        rows: QuerySet | list[Any] = qs
        if search.codes:
            index = _code_index(model)
            if index is not None:
                patient = chart.patient
                # The field's own token (keyed, bound to the patient), for each code asked.
                tokens = {
                    index.token(
                        model(
                            **{"code": code, "patient_id": patient.pk},
                            hospital_id=patient.hospital_id,
                        )
                    )
                    for _, code in search.codes
                }
                qs = qs.filter(**{f"{index.attname}__in": sorted(tokens)})
                rows = qs
            if index is None or search.code_systems:
                rows = [r for r in qs if _token_matches(_codings(_render_record(r)), search.codes)]
        sections.append(Section(rows, _render_record, key=key, descending=descending))
    return sections


def fhir_everything_sections(*, chart: OpenedChart, with_content: bool = True) -> list[Section]:
    """`Patient/{id}/$everything` as page sections: the patient, every record of every type
    the caller may see (entered-in-error versions included, marked so; documents with their
    content unless `with_content` is False), then the consents."""
    patient = records_access.chart_required(chart).patient
    sections = [Section([patient], resources.patient_to_fhir)]
    render = _render_with_content if with_content else _render_record
    for model in RECORD_MODELS:
        sections.append(Section(records_access.chart_records(chart=chart, model=model), render))
    from consent.selectors import consents_for_patient

    sections.append(Section(consents_for_patient(patient=patient), resources.consent_to_fhir))
    return sections


def fhir_patient_sections(*, user: User, hospital: Hospital, search: Search) -> list[Section]:
    """Patient search as page sections: in SQL through the blind indexes, the birth date
    (encrypted) compared after decryption on the rows the other parameters narrowed (at
    most 500, as fhir_patient_search)."""
    params = search.patient_search
    birthdate = params.get("birthdate", "").removeprefix("eq")
    key, descending = _sort_of(search, date_column=None)
    if birthdate:
        born = date.fromisoformat(birthdate)  # checked by search.search_parse
        rows: QuerySet | list[Patient] = fhir_patient_search(
            user=user, hospital=hospital, identifier=params.get("identifier", ""),
            name=params.get("name", ""), family=params.get("family", ""),
            given=params.get("given", ""), birthdate=born,
        )  # fmt: skip
        rows = [p for p in rows if all(search_matches(p.created_at, search.last_updated))]
        return [Section(rows, resources.patient_to_fhir, key=key, descending=descending)]
    qs = patient_list_for_user(user=user, hospital=hospital, query=params.get("name", ""))
    identifier = params.get("identifier", "")
    if identifier:
        system, _, value = identifier.rpartition("|")
        if system and system != resources.mrn_system(hospital.slug):
            qs = qs.none()
        token = blind_index(" ".join(value.split()), hospital_id=hospital.pk, purpose="mrn")
        qs = qs.filter(mrn_index=token)
    for purpose in ("family_name", "given_name"):
        value = params.get(purpose.removesuffix("_name"), "")
        if value:
            token = blind_index(" ".join(value.split()), hospital_id=hospital.pk, purpose=purpose)
            qs = qs.filter(**{f"{purpose}_index": token})
    qs = _date_filtered(qs.select_related("hospital"), "created_at", search.last_updated)
    return [Section(qs, resources.patient_to_fhir, key=key, descending=descending)]


def search_matches(value: Any, dates: tuple[DateRange, ...]) -> list[bool]:
    return [date_matches(value, d) for d in dates]


def fhir_consent_sections(*, chart: OpenedChart, search: Search) -> list[Section]:
    """The consents on a chart the caller opened (bounded by the chart)."""
    from consent.selectors import consents_for_patient

    patient = records_access.chart_required(chart).patient
    rows = [
        c
        for c in consents_for_patient(patient=patient)
        if all(search_matches(c.created_at, search.last_updated))
    ]
    key, descending = _sort_of(search, date_column=None)
    return [Section(rows, resources.consent_to_fhir, key=key, descending=descending)]


def fhir_audit_event_sections(*, user: User, chart: OpenedChart, search: Search) -> list[Section]:
    """The access events about a chart the caller opened, newest first, those the ledger
    lets them see (ledger.selectors.access_event decides, row by row: the section's total
    is therefore not given)."""
    patient = records_access.chart_required(chart).patient
    events: QuerySet = Event.objects.filter(
        patient_id=patient.pk, kind__in=resources.ACCESS_KINDS
    ).select_related("hospital", "actor_hospital")
    events = _date_filtered(events, "recorded_at", search.last_updated)

    def visible(event: Event) -> bool:
        try:
            access_event(user, event.event_id)
        except Http404:
            return False
        return True

    return [
        Section(
            events,
            lambda e: fhir_audit_event(event=e, chart_hospital=patient.hospital),
            key="recorded_at",
            descending=True,
            keep=visible,
        )
    ]


def fhir_provenance_sections(*, record: ClinicalRecord | Patient, search: Search) -> list[Section]:
    """The Provenance of a record the caller opened: one entry at most."""
    event = _provenance_event(record)
    rows = [event] if event is not None else []
    rows = [e for e in rows if all(search_matches(e.recorded_at, search.last_updated))]
    return [
        Section(
            rows,
            lambda e: resources.provenance_to_fhir(
                record, event=e, receipt=receipt_for_event(event=e)
            ),
        )
    ]
