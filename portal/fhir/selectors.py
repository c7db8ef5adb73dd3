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
from portal.fhir import history, resources
from portal.fhir.paging import Section, rows_rendered
from portal.fhir.search import DateRange, Search, date_matches, date_q
from portal.records import access as records_access
from portal.records.access import OpenedChart
from portal.records.categories import categories_named
from portal.records.crypto import blind_index
from portal.records.fields import BlindIndexField
from portal.records.models import RECORD_MODELS, ClinicalRecord, Document, Patient
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
    sections = fhir_everything_sections(
        chart=chart, with_content=with_content, resource_types=resource_types, consents=consents
    )
    found = rows_rendered([(section, row) for section in sections for row in section.ordered()])
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
    """Search by patient, unpaged: the resources of one type on a chart the caller opened,
    each in its current version under its logical id (portal.fhir.history)."""
    every = Search(resource_type=resource_type, params={}, count=0)
    sections = fhir_record_sections(chart=chart, search=every)
    return rows_rendered([(section, row) for section in sections for row in section.ordered()])


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


class _CurrentVersions:
    """Renders records' current versions under their logical ids (portal.fhir.history): a
    page's rows are named together (`prepare`), one query per model and only when one of
    them is a correction, never one per row."""

    def __init__(self, *, with_content: bool = False) -> None:
        self.with_content = with_content
        self.ids: dict[tuple[type, int], int] = {}

    def prepare(self, rows: list[Any]) -> None:
        self.ids.update(history.logical_ids(list(rows)))

    def render(self, record: ClinicalRecord) -> dict[str, Any]:
        key = (type(record), record.pk)
        if key not in self.ids:
            self.prepare([record])
        return history.as_fhir(record, logical_id=self.ids[key], with_content=self.with_content)


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
        # Current versions only: earlier ones are in the record's _history.
        qs = records_access.chart_records(chart=chart, model=model, replaced_by__isnull=True)
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
        versions = _CurrentVersions()
        sections.append(
            Section(rows, versions.render, key=key, descending=descending, prepare=versions.prepare)
        )
    return sections


def fhir_everything_sections(
    *,
    chart: OpenedChart,
    with_content: bool = True,
    resource_types: frozenset[str] | None = None,
    consents: bool = True,
) -> list[Section]:
    """`Patient/{id}/$everything` as page sections: the patient, every record of every type
    the caller may see, each in its current version under its logical id (documents with
    their content unless `with_content` is False), then the consents. `resource_types`: the
    FHIR types the caller's credential reaches (None: all); `consents`: whether the
    patient's consents are the caller's to see (staff and the patient, not a proxy)."""
    patient = records_access.chart_required(chart).patient

    def wanted(rtype: str | None) -> bool:
        return resource_types is None or rtype in resource_types

    sections = [Section([patient], resources.patient_to_fhir)] if wanted("Patient") else []
    for model in RECORD_MODELS:
        if not wanted(_MODEL_TYPE.get(model)):
            continue
        qs = records_access.chart_records(chart=chart, model=model, replaced_by__isnull=True)
        versions = _CurrentVersions(with_content=with_content)
        sections.append(Section(qs, versions.render, prepare=versions.prepare))
    if consents and wanted("Consent"):
        from consent.selectors import consents_for_patient

        sections.append(Section(consents_for_patient(patient=patient), resources.consent_to_fhir))
    return sections


def fhir_patient_sections(
    *, user: User, hospital: Hospital, search: Search, patient_id: int | None = None
) -> list[Section]:
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
        if patient_id is not None:
            rows = [p for p in rows if p.pk == patient_id]
        return [Section(rows, resources.patient_to_fhir, key=key, descending=descending)]
    qs = patient_list_for_user(user=user, hospital=hospital, query=params.get("name", ""))
    if patient_id is not None:  # an app launched on one chart finds that one only
        qs = qs.filter(pk=patient_id)
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


def fhir_patient_sections_own(
    *, user: User, search: Search, patient_id: int | None = None
) -> list[Section]:
    """Patient search for a patient: their own registrations only (fhir_patient_search_own),
    whatever the parameters; `patient_id`: an app's launch patient."""
    params = search.patient_search
    birthdate = params.get("birthdate", "").removeprefix("eq")
    rows = fhir_patient_search_own(
        user=user, patient_id=patient_id, identifier=params.get("identifier", ""),
        name=params.get("name", ""), family=params.get("family", ""),
        given=params.get("given", ""),
        birthdate=date.fromisoformat(birthdate) if birthdate else None,
    )  # fmt: skip
    rows = [p for p in rows if all(search_matches(p.created_at, search.last_updated))]
    key, descending = _sort_of(search, date_column=None)
    return [Section(rows, resources.patient_to_fhir, key=key, descending=descending)]


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
