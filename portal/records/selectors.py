"""Reads of patients and records, and the one place that decides who may see which chart.

Access is decided by the object-permission tables alone (never `user.has_perm`, which is
true for every superuser, and never model-level permissions): a chart is visible to a user
holding `view_patient` on it directly (care team, consent) or through a group (the
hospital-wide clinical staff group). Lists filter with a subquery; nothing is checked row by
row in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Permission
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from portal.records.crypto import blind_index
from portal.records.models import (
    RECORD_MODELS,
    AllergyIntolerance,
    ClinicalNote,
    ClinicalNoteUserObjectPermission,
    ClinicalRecord,
    Condition,
    MedicationRequest,
    Observation,
    Patient,
    PatientGroupObjectPermission,
    PatientUserObjectPermission,
    RecordStatus,
)
from portal.tenancy.models import Hospital

RECORD_TYPES: dict[str, type[ClinicalRecord]] = {m._meta.model_name: m for m in RECORD_MODELS}


def patient_registrations_for_user(*, user: AbstractBaseUser | AnonymousUser) -> list[Patient]:
    """The account's own registrations at every hospital, in one query.

    Like memberships, this decides the patient portal's hospital scope, so it reads through
    the base manager filtered by the user: it only ever returns the user's own rows.
    """
    if not user.is_authenticated:
        return []
    return list(
        Patient._base_manager.filter(user=user)
        .select_related("hospital")
        .order_by("hospital__name", "id")
    )


def user_is_patient(*, user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether the account has a registration anywhere (the "My records" link): an EXISTS,
    not the registrations themselves, since every page asks."""
    return user.is_authenticated and Patient._base_manager.filter(user=user).exists()


def patient_visible_q(*, user: AbstractBaseUser, codename: str = "view_patient") -> Q:
    """The condition "user holds `codename` on this patient", as two correlated EXISTS.

    Correlated (per candidate patient, an index probe on the permission tables' unique
    (user|group, permission, object) keys) rather than `id IN (all granted ids)`: a page of
    25 patients then costs about 25 probes, not a scan of every grant of the hospital.
    """
    permission_id = _permission_id(codename)
    direct = PatientUserObjectPermission.objects.filter(
        user_id=user.pk, permission_id=permission_id, content_object_id=OuterRef("pk")
    )
    via_group = PatientGroupObjectPermission.objects.filter(
        group_id__in=_group_ids(user), permission_id=permission_id, content_object_id=OuterRef("pk")
    )
    return Q(Exists(direct)) | Q(Exists(via_group))


_PERMISSION_IDS: dict[str, int] = {}


def _permission_id(codename: str) -> int | Subquery:
    """The id of records' `codename` permission, looked up once per process.

    Permission rows are written by migrate (and by flush, in tests) and never change
    otherwise; `permission_ids_forget` runs on post_migrate, as Django's content-type cache
    is cleared. The id as a literal instead of a subquery (twice per visibility check) made
    every access check's statement cheaper to build, compile and plan.
    """
    pk = _PERMISSION_IDS.get(codename)
    if pk is None:
        found = Permission.objects.filter(content_type__app_label="records", codename=codename)
        pk = found.values_list("id", flat=True).first()
        if pk is None:  # not migrated yet: nothing is granted, and nothing is cached
            return Subquery(found.values("id")[:1])
        _PERMISSION_IDS[codename] = pk
    return pk


def permission_ids_forget(**kwargs: Any) -> None:
    _PERMISSION_IDS.clear()


def _group_ids(user: AbstractBaseUser) -> QuerySet:
    # A subquery (evaluated once per statement), so a membership change applies at once.
    return user.groups.through.objects.filter(user_id=user.pk).values("group_id")


def patient_list_for_user(
    *, user: AbstractBaseUser, hospital: Hospital, query: str = ""
) -> QuerySet[Patient]:
    """Visible patients of the hospital; `query` matches an MRN, a family name, a given name
    or "given family" exactly (normalized for case and spacing) through blind indexes."""
    return _search(Patient.objects.filter(patient_visible_q(user=user), hospital=hospital),
                   hospital=hospital, query=query)  # fmt: skip


def _search(patients: QuerySet[Patient], *, hospital: Hospital, query: str) -> QuerySet[Patient]:
    query = " ".join(query.split())
    if query:
        token = partial(blind_index, hospital_id=hospital.pk)
        match = (
            Q(mrn_index=token(query, purpose="mrn"))
            | Q(family_name_index=token(query, purpose="family_name"))
            | Q(given_name_index=token(query, purpose="given_name"))
        )
        if " " in query:
            given, family = query.rsplit(" ", 1)
            match |= Q(
                given_name_index=token(given, purpose="given_name"),
                family_name_index=token(family, purpose="family_name"),
            )
        patients = patients.filter(match)
    return patients.order_by("-id")


@dataclass
class PatientPage:
    """One page of a keyset-paginated list, newest registrations first.

    Keyset (id cursor) paging instead of LIMIT/OFFSET with a total count: the cost of a page
    does not grow with the hospital's size or the page's depth.
    """

    patients: list[Patient]
    newer: int | None  # pass as ?after= for the previous (newer) page
    older: int | None  # pass as ?before= for the next (older) page


def patient_page_for_user(
    *,
    user: AbstractBaseUser,
    hospital: Hospital,
    query: str = "",
    before: int | None = None,
    after: int | None = None,
    size: int = 25,
) -> PatientPage:
    """One page of visible patients.

    Candidates are taken in windows of the hospital's (searched) patients in id order, and
    only the window is checked against the permission tables: the planner then probes the
    grants per row instead of hashing every grant of the hospital for each page. A window
    rarely holds too few visible patients (restricted charts); then the next one is read.
    """
    candidates = _search(Patient.objects.filter(hospital=hospital), hospital=hospital, query=query)
    visible = Q(patient_visible_q(user=user))
    older_first = after is None
    cursor = before if older_first else after
    window = size * 4
    rows: list[Patient] = []
    exhausted = False
    while len(rows) <= size and not exhausted:
        ids = candidates.order_by("-id" if older_first else "id")
        if cursor is not None:
            ids = ids.filter(pk__lt=cursor) if older_first else ids.filter(pk__gt=cursor)
        ids = list(ids.values_list("id", flat=True)[:window])
        exhausted = len(ids) < window
        if not ids:
            break
        cursor = ids[-1]
        found = Patient.objects.filter(visible, pk__in=ids).order_by("-id" if older_first else "id")
        rows.extend(found[: size + 1 - len(rows)])
    more = len(rows) > size
    rows = rows[:size]
    if not older_first:
        rows.reverse()
    # Is there a page on the other side? One cheap look at the nearest window.
    other_side = False
    if rows and (before is not None or after is not None):
        edge = rows[0].pk if older_first else rows[-1].pk
        near = candidates.order_by("id" if older_first else "-id")
        near = near.filter(pk__gt=edge) if older_first else near.filter(pk__lt=edge)
        near_ids = list(near.values_list("id", flat=True)[:window])
        other_side = bool(near_ids) and (
            len(near_ids) == window or Patient.objects.filter(visible, pk__in=near_ids).exists()
        )
    newer, older = (other_side, more) if older_first else (more, other_side)
    return PatientPage(
        patients=rows,
        newer=rows[0].pk if rows and newer else None,
        older=rows[-1].pk if rows and older else None,
    )


def patient_by_mrn(*, hospital: Hospital, mrn: str) -> Patient | None:
    """Registration lookup by MRN through its blind index (unscoped: used by services)."""
    token = blind_index(mrn, hospital_id=hospital.pk, purpose="mrn")
    return Patient._base_manager.filter(hospital=hospital, mrn_index=token).first()


def access_patient(
    user: AbstractBaseUser, patient_id: Any, *, codename: str = "view_patient"
) -> Patient:
    """Fetch a chart the user may open, in the active scope, or 404 (missing = forbidden)."""
    try:
        pk = int(patient_id)
    except (TypeError, ValueError):
        raise Http404("No such patient.") from None
    patient = (
        Patient.objects.filter(patient_visible_q(user=user, codename=codename), pk=pk)
        .select_related("hospital")
        .first()
    )
    if patient is None:
        raise Http404("No such patient.")
    return patient


def _visible_notes_q(user: AbstractBaseUser) -> Q:
    granted = ClinicalNoteUserObjectPermission.objects.filter(
        user=user, permission__codename="view_clinicalnote"
    ).values("content_object_id")
    return Q(restricted=False) | Q(pk__in=granted)


def records_for_patient(
    *, user: AbstractBaseUser, patient: Patient, model: type[ClinicalRecord]
) -> QuerySet:
    """Records of one type on a chart the caller already opened through access_patient."""
    qs = model.objects.filter(patient=patient)
    if model is ClinicalNote:
        qs = qs.filter(_visible_notes_q(user))
    return qs


def access_record(user: AbstractBaseUser, record_type: str, record_id: Any) -> ClinicalRecord:
    """A record the user may open: its chart must be visible, and a restricted note must be
    granted to the user itself. 404 otherwise."""
    model = RECORD_TYPES.get(record_type)
    try:
        pk = int(record_id)
    except (TypeError, ValueError):
        pk = None
    if model is None or pk is None:
        raise Http404("No such record.")
    qs = model.objects.filter(pk=pk).filter(
        patient__in=Patient.objects.filter(patient_visible_q(user=user))
    )
    if model is ClinicalNote:
        qs = qs.filter(_visible_notes_q(user))
    record = qs.select_related("patient", "recorded_by").first()
    if record is None:
        raise Http404("No such record.")
    return record


@dataclass
class Chart:
    patient: Patient
    problems: list[Condition] = field(default_factory=list)
    medications: list[MedicationRequest] = field(default_factory=list)
    allergies: list[AllergyIntolerance] = field(default_factory=list)
    timeline: list[tuple[Any, str, ClinicalRecord]] = field(default_factory=list)
    series: dict[str, dict[str, Any]] = field(default_factory=dict)


TIMELINE_DATE = {
    "encounter": "period_start",
    "observation": "effective_at",
    "condition": "created_at",
    "medicationrequest": "authored_on",
    "allergyintolerance": "recorded_date",
    "immunization": "occurrence",
    "procedure": "performed_at",
    "clinicalnote": "created_at",
    "document": "created_at",
}


_PRESENT_SQL: dict[str, str] = {}


def _record_types_present(patient: Patient) -> set[str]:
    """The record types with at least one active row on this chart, in one statement (an
    index probe per table): a chart usually holds a few of the nine types, and each query
    the chart skips saves more than the probe costs.

    Only decides which of chart_for's queries to run, never what they may return: those
    still go through the scoped managers and records_for_patient's permission filters.
    """
    sql = _PRESENT_SQL.get(connection.vendor)
    if sql is None:
        qn = connection.ops.quote_name
        sql = _PRESENT_SQL[connection.vendor] = " UNION ALL ".join(
            f"SELECT %s WHERE EXISTS (SELECT 1 FROM {qn(m._meta.db_table)} "  # noqa: S608
            f"WHERE {qn('patient_id')} = %s AND {qn('status')} = %s)"
            for m in RECORD_MODELS
        )
    params: list[Any] = []
    for model in RECORD_MODELS:
        params += [model._meta.model_name, patient.pk, RecordStatus.ACTIVE.value]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def chart_for(*, user: AbstractBaseUser, patient: Patient, timeline_limit: int = 100) -> Chart:
    """Everything the chart page shows: one query for which record types the chart holds,
    then one per type it holds, whatever the number of rows."""
    chart = Chart(patient=patient)
    present = _record_types_present(patient)
    for model in RECORD_MODELS:
        name = model._meta.model_name
        if name not in present:
            continue
        qs = records_for_patient(user=user, patient=patient, model=model).filter(
            status=RecordStatus.ACTIVE
        )
        if model is Observation:
            rows = list(qs.order_by("effective_at", "id"))
            for obs in rows:
                s = chart.series.setdefault(
                    obs.code, {"display": obs.display, "unit": obs.unit, "points": []}
                )
                s["points"].append((obs.effective_at, obs.value))
            recent = rows[-timeline_limit:]
        else:
            date_field = TIMELINE_DATE[name]
            recent = list(qs.order_by(f"-{date_field}", "-id")[:timeline_limit])
            if model is Condition:
                chart.problems = [c for c in recent if c.clinical_status == "active"]
            elif model is MedicationRequest:
                chart.medications = [m for m in recent if m.request_status == "active"]
            elif model is AllergyIntolerance:
                chart.allergies = recent
        for record in recent:
            chart.timeline.append((getattr(record, TIMELINE_DATE[name]), name, record))
    chart.timeline.sort(key=lambda item: item[0], reverse=True)
    chart.timeline = chart.timeline[:timeline_limit]
    return chart
