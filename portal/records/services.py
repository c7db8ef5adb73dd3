"""Writes of patients, clinical records, care teams and the object permissions they imply.

Every write records its ledger event in the same transaction. Object permissions are
written only here (registration, care team, restriction) and, later, by the consent service.
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ledger.events import event_record
from portal.records import search_tokens
from portal.records.grants import (
    chart_grant,
    chart_group_grants_remove,
    chart_revoke,
    note_grant_write,
)
from portal.records.models import (
    CarePlan,
    CareTeamMember,
    ClinicalNote,
    ClinicalNoteUserObjectPermission,
    ClinicalRecord,
    Condition,
    DiagnosticReport,
    Goal,
    ImagingStudy,
    Observation,
    Patient,
    PatientSearchToken,
    RecordStatus,
    model_name,
)
from portal.records.selectors import patient_by_mrn
from portal.tenancy.models import Hospital, Membership
from portal.tenancy.selectors import hospital_clinical_group

R = TypeVar("R", bound=ClinicalRecord)
CHART_PERMS = ("view_patient", "change_patient")
REASON_MAX = 1000  # a correction's reason
# When something happened: never in the future (a report's issue time, a study's start too).
FACT_TIMES = ("effective_at", "performed_at", "occurrence", "authored_on", "period_start",
              "issued", "started")  # fmt: skip


def _label(model: type[ClinicalRecord]) -> str:
    return model_name(model)


def _grant_hospital_wide(patient: Patient, actor: User | None) -> None:
    group = hospital_clinical_group(hospital_id=patient.hospital_id)
    chart_grant(patient=patient, codenames=CHART_PERMS, group=group, actor=actor)


@transaction.atomic
def patient_register(
    *,
    hospital: Hospital,
    mrn: str,
    given_name: str,
    family_name: str,
    birth_date: date,
    sex: str = Patient.Sex.UNKNOWN,
    phone: str = "",
    user: User | None = None,
    actor: User | None = None,
) -> Patient:
    """Register a patient; by default the hospital's clinical staff may open the chart."""
    patient = Patient(
        hospital=hospital, mrn=mrn, given_name=given_name, family_name=family_name,
        birth_date=birth_date, sex=sex, phone=phone, user=user,
    )  # fmt: skip
    # Uniqueness is checked below and by the database; full_clean would query unscoped.
    patient.full_clean(validate_unique=False, validate_constraints=False)
    if patient_by_mrn(hospital=hospital, mrn=mrn) is not None:
        raise ValidationError({"mrn": "A patient with this MRN is already registered here."})
    patient.save()
    patient_search_tokens_write(patient=patient)
    _grant_hospital_wide(patient, actor)
    event_record(
        kind="patient.registered", hospital=hospital, subject=patient, actor=actor, patient=patient
    )
    return patient


@transaction.atomic
def patient_search_tokens_write(*, patient: Patient) -> int:
    """Replace a patient's search tokens with those of their current names and MRN (every
    service that registers a patient or changes a name or MRN calls it, in its transaction).
    Returns the number of tokens (padding included)."""
    tokens = search_tokens.patient_tokens(
        hospital_id=patient.hospital_id,
        given_name=str(patient.given_name or ""),
        family_name=str(patient.family_name or ""),
        mrn=str(patient.mrn or ""),
    )
    # The base manager: the patient in hand decides the rows, whatever scope is active.
    PatientSearchToken._base_manager.filter(patient_id=patient.pk).delete()
    PatientSearchToken._base_manager.bulk_create(
        PatientSearchToken(hospital_id=patient.hospital_id, patient_id=patient.pk, token=t)
        for t in tokens
    )
    return len(tokens)


@transaction.atomic
def patient_set_restricted(*, patient: Patient, restricted: bool, actor: User) -> Patient:
    """Restrict a chart to its care team (a VIP, an employee), or lift the restriction."""
    patient = Patient._base_manager.select_for_update().get(pk=patient.pk)
    if patient.restricted == restricted:
        return patient
    patient.restricted = restricted
    patient.save(update_fields=["restricted"])
    if restricted:
        chart_group_grants_remove(patient=patient, actor=actor)
    else:
        _grant_hospital_wide(patient, actor)
    event_record(
        kind="patient.restricted" if restricted else "patient.unrestricted",
        hospital=patient.hospital_id, subject=patient, actor=actor, patient=patient,
    )  # fmt: skip
    return patient


@transaction.atomic
def care_team_add(*, patient: Patient, user: User, actor: User) -> CareTeamMember:
    if not Membership._base_manager.filter(
        user=user, hospital_id=patient.hospital_id, is_active=True
    ).exists():
        # The same words as for an unknown username: nothing is revealed about other hospitals.
        raise ValidationError("No colleague with that username works at this hospital.")
    member, created = CareTeamMember._base_manager.get_or_create(
        patient=patient, user=user, defaults={"hospital_id": patient.hospital_id, "added_by": actor}
    )
    chart_grant(patient=patient, codenames=CHART_PERMS, user=user, actor=actor)
    if created:
        # The entry is its own ledger subject (verify_ledger accounts for every entry); the
        # patient id puts it in the chart's history.
        event_record(
            kind="careteam.added", hospital=patient.hospital_id, subject=member, actor=actor,
            patient=patient, attrs={"member": user.pk},
        )  # fmt: skip
    return member


@transaction.atomic
def care_team_remove(*, patient: Patient, user: User, actor: User) -> None:
    member = CareTeamMember._base_manager.select_for_update().filter(patient=patient, user=user)
    for entry in member:
        # Recorded before the DELETE: the event's digest is the entry as it was.
        event_record(
            kind="careteam.removed", hospital=patient.hospital_id, subject=entry, actor=actor,
            patient=patient, attrs={"member": user.pk},
        )  # fmt: skip
        CareTeamMember._base_manager.filter(pk=entry.pk).delete()
    chart_revoke(patient=patient, codenames=CHART_PERMS, user=user, actor=actor)


def _validate_effective(value: datetime | date | None, field: str) -> None:
    if value is None:
        return
    now = timezone.now()
    later = value > now if isinstance(value, datetime) else value > now.date()
    if later:
        raise ValidationError({field: "This date is in the future."})


def _instants_in_utc(record: ClinicalRecord) -> None:
    """Times are instants: stored as UTC. (An offset as a client sent it may be a historic
    local mean time such as +17:07, which PostgreSQL refuses as text: beyond +-15:59.)"""
    for f in record._meta.concrete_fields:
        value = getattr(record, f.attname)
        if isinstance(value, datetime) and value.utcoffset() is not None:
            setattr(record, f.attname, value.astimezone(UTC))


def record_create(*, actor: User | None, patient: Patient, model: type[R], **fields: Any) -> R:
    """Create any clinical record for a patient, validated, with its ledger event.

    The record and its outbox event are written together by the ledger's one writer
    (`event_record(subject_is_new=True)`): one statement on PostgreSQL, atomic by itself, so
    the most frequent write of the portal pays no transaction's extra round trips; with the
    grant of a restricted note, in one transaction with it. The event names the record by
    its row_uuid, which exists before the INSERT, and its digest covers neither the
    surrogate key nor the creation time.
    """
    record = model(hospital_id=patient.hospital_id, patient=patient, recorded_by=actor, **fields)
    for name in FACT_TIMES:
        if hasattr(record, name):
            _validate_effective(getattr(record, name), name)
    record.full_clean(
        exclude=["hospital", "patient", "recorded_by", "replaces"],
        validate_unique=False,
        validate_constraints=False,
    )
    _instants_in_utc(record)
    needs_grant = isinstance(record, ClinicalNote) and record.restricted and actor is not None
    with transaction.atomic() if needs_grant else nullcontext():
        event_record(
            kind=f"{_label(model)}.created", hospital=patient.hospital_id, subject=record,
            actor=actor, patient=patient.pk, subject_is_new=True,
        )  # fmt: skip
        if needs_grant:
            assert isinstance(record, ClinicalNote) and actor is not None  # as needs_grant says
            note_grant_write(note=record, user=actor, actor=actor)
    return record


@transaction.atomic
def record_correct(*, actor: User, record: R, correction_reason: str, **changes: Any) -> R:
    """Correct a record: the old version is marked entered-in-error, a new version replaces it.

    The reason is required (every way of correcting asks for it) and kept, encrypted, with
    the new version, whose history shows it. Locks the old row so two concurrent corrections
    cannot both succeed.
    """
    # (Not `reason`: an encounter has a field of that name, the reason for the visit.)
    reason = (correction_reason or "").strip()
    if not reason:
        raise ValidationError({"correction_reason": "Give the reason for this correction."})
    if len(reason) > REASON_MAX:
        raise ValidationError({"correction_reason": f"At most {REASON_MAX} characters."})
    model = type(record)
    old = model._base_manager.select_for_update().get(pk=record.pk)
    if old.status != RecordStatus.ACTIVE or model._base_manager.filter(replaces=old).exists():
        raise ValidationError("This record has already been corrected; open its latest version.")
    values = {
        f.name: getattr(old, f.name)
        for f in model._meta.concrete_fields
        if f.name not in {"id", "row_uuid", "status", "version", "replaces", "recorded_by",
                          "created_at", "hospital", "patient"}
    }  # fmt: skip
    values.update(changes)
    values["correction_reason"] = reason
    new = model(
        hospital_id=old.hospital_id, patient_id=old.patient_id, recorded_by=actor,
        version=old.version + 1, replaces=old, **values,
    )  # fmt: skip
    for name in FACT_TIMES:
        if name in changes:
            _validate_effective(changes[name], name)
    new.full_clean(
        exclude=["hospital", "patient", "recorded_by", "replaces"],
        validate_unique=False,
        validate_constraints=False,
    )
    _instants_in_utc(new)
    old.status = RecordStatus.ENTERED_IN_ERROR
    old.save(update_fields=["status"])
    new.save()
    if isinstance(new, ClinicalNote) and new.restricted:
        # A restricted note is readable only through grants on the note itself: whoever could
        # read the version being corrected can read its correction (and its author can).
        grants = ClinicalNoteUserObjectPermission.objects.filter(
            content_object_id=old.pk, permission__codename="view_clinicalnote"
        ).values_list("user_id", "source", "expires_at")
        users = get_user_model()._default_manager.in_bulk([g[0] for g in grants] + [actor.pk])
        for user_id, source, expires_at in grants:
            note_grant_write(
                note=new, user=users[user_id], source=source, expires_at=expires_at, actor=actor
            )
        note_grant_write(note=new, user=actor, actor=actor)
    event_record(
        kind=f"{_label(model)}.entered-in-error", hospital=old.hospital_id, subject=old,
        actor=actor, patient=old.patient_id,
    )  # fmt: skip
    event_record(
        kind=f"{_label(model)}.corrected", hospital=old.hospital_id, subject=new, actor=actor,
        patient=old.patient_id, attrs={"replaces": old.pk},
    )  # fmt: skip
    return new


def observation_create(
    *,
    actor: User | None,
    patient: Patient,
    code: str,
    display: str,
    value: Decimal,
    unit: str,
    effective_at: datetime,
    category: str = Observation.Category.VITAL_SIGNS,
) -> Observation:
    return record_create(
        actor=actor, patient=patient, model=Observation, category=category, code=code,
        display=display, value=value, unit=unit, effective_at=effective_at,
    )  # fmt: skip


@transaction.atomic
def note_grant(*, note: ClinicalNote, user: User, actor: User) -> None:
    """Let one user read a restricted note (the only way to see it)."""
    note_grant_write(note=note, user=user, actor=actor)
    event_record(
        kind="clinicalnote.granted", hospital=note.hospital_id, subject=note, actor=actor,
        patient=note.patient_id, attrs={"grantee": user.pk},
    )  # fmt: skip


# --- reports, plans, goals and imaging (FHIR imports write them through record_create) -----


def _links_on_chart(
    *, patient: Patient, model: type[ClinicalRecord], ids: list[int], field: str
) -> None:
    """A record links only to records of its own chart (one query)."""
    if not ids:
        return
    found = set(
        model._base_manager.filter(pk__in=ids, patient_id=patient.pk).values_list("pk", flat=True)
    )
    if found != set(ids):
        raise ValidationError({field: f"Names a {model_name(model)} that is not on this chart."})


def diagnostic_report_create(
    *,
    actor: User | None,
    patient: Patient,
    code: dict[str, Any],
    effective_at: datetime,
    report_status: str = "final",
    category: list[dict[str, Any]] | None = None,
    issued: datetime | None = None,
    results: list[dict[str, Any]] | None = None,
    presented_form: list[dict[str, Any]] | None = None,
    conclusion: str = "",
    encounter_id: int | None = None,
) -> DiagnosticReport:
    """A test report; `results` link Observations of the same chart ({"observation": id,
    "display": ...}, or a display alone)."""
    results = results or []
    _links_on_chart(patient=patient, model=Observation, field="results",
                    ids=[r["observation"] for r in results if "observation" in r])  # fmt: skip
    return record_create(
        actor=actor, patient=patient, model=DiagnosticReport, code=code,
        effective_at=effective_at, report_status=report_status, category=category or [],
        issued=issued, results=results, presented_form=presented_form or [],
        conclusion=conclusion, encounter_id=encounter_id,
    )  # fmt: skip


def care_plan_create(
    *,
    actor: User | None,
    patient: Patient,
    period_start: datetime,
    category: list[dict[str, Any]] | None = None,
    activities: list[dict[str, Any]] | None = None,
    addresses: list[dict[str, Any]] | None = None,
    plan_status: str = "active",
    intent: str = "plan",
    period_end: datetime | None = None,
    description: str = "",
) -> CarePlan:
    addresses = addresses or []
    _links_on_chart(patient=patient, model=Condition, field="addresses",
                    ids=[a["condition"] for a in addresses if "condition" in a])  # fmt: skip
    return record_create(
        actor=actor, patient=patient, model=CarePlan, period_start=period_start,
        category=category or [], activities=activities or [], addresses=addresses,
        plan_status=plan_status, intent=intent, period_end=period_end, description=description,
    )  # fmt: skip


def goal_create(
    *,
    actor: User | None,
    patient: Patient,
    description: dict[str, Any],
    lifecycle_status: str = "active",
    achievement_status: dict[str, Any] | None = None,
    targets: list[dict[str, Any]] | None = None,
) -> Goal:
    return record_create(
        actor=actor, patient=patient, model=Goal, description=description,
        lifecycle_status=lifecycle_status, achievement_status=achievement_status,
        targets=targets or [],
    )  # fmt: skip


def imaging_study_create(
    *,
    actor: User | None,
    patient: Patient,
    started: datetime,
    series: list[dict[str, Any]],
    study_status: str = "available",
    number_of_series: int | None = None,
    number_of_instances: int | None = None,
) -> ImagingStudy:
    return record_create(
        actor=actor, patient=patient, model=ImagingStudy, started=started, series=series,
        study_status=study_status, number_of_series=number_of_series,
        number_of_instances=number_of_instances,
    )  # fmt: skip
