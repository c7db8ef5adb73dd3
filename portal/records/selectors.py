"""Reads of patients and records, and the one place that decides who may see which chart.

Access is decided by the object-permission tables alone (never `user.has_perm`, which is
true for every superuser, and never model-level permissions): a chart is visible to a user
holding a view permission on it directly (care team, consent, break-glass) or through a
group (the hospital-wide clinical staff group, a department). Each permission row belongs to
one grant and may expire; an expired row grants nothing even before any sweep deletes it.
Lists filter with a subquery; nothing is checked row by row in Python.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Permission
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from portal import hotsql
from portal.records.categories import (
    CATEGORY_CODES,
    CATEGORY_LABELS,
    MODEL_CATEGORY,
    OBSERVATION_CATEGORY,
    category_codename,
    record_category,
)
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

# Grant sources (GrantFields.source) the access rules tell apart.
CONSENT_PREFIX = "consent:"
BREAK_GLASS_PREFIX = "breakglass:"
PROXY_PREFIX = "proxy:"
# HL7 v3 PurposeOfUse codes recorded on access events.
PURPOSE_TREATMENT = "TREAT"
PURPOSE_EMERGENCY = "ETREAT"
VIEW_CODENAMES: tuple[str, ...] = (
    "view_patient",
    *(category_codename(c) for c in sorted(CATEGORY_CODES)),
)
CHART_CODENAMES: tuple[str, ...] = (*VIEW_CODENAMES, "change_patient")

RECORD_TYPES: dict[str, type[ClinicalRecord]] = {m._meta.model_name: m for m in RECORD_MODELS}

logger = logging.getLogger(__name__)


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
    not the registrations themselves. Signed-in pages read it with the user
    (accounts.selectors.auth_context_fetch); this is for everything else."""
    return user.is_authenticated and Patient._base_manager.filter(user=user).exists()


def patient_visible_q(*, user: AbstractBaseUser, codename: str = "view_patient") -> Q:
    """The condition "user may open this chart" (or, for another codename, "holds it").

    `view_patient` stands for any view grant: the whole chart or some categories of it.
    Expired rows count for nothing, and proxy grants (for the patient portal) never open a
    chart in the provider portal.

    Two correlated EXISTS (per candidate patient, an index probe on the permission tables'
    unique (user|group, permission, object, source) keys) rather than `id IN (all granted
    ids)`: a page of 25 patients then costs about 25 probes, not a scan of every grant.
    """
    codenames = VIEW_CODENAMES if codename == "view_patient" else (codename,)
    direct = PatientUserObjectPermission.objects.filter(
        _live_q(), user_id=user.pk, permission_id__in=_permission_ids(codenames),
        content_object_id=OuterRef("pk"),
    ).exclude(source__startswith=PROXY_PREFIX)  # fmt: skip
    via_group = PatientGroupObjectPermission.objects.filter(
        _live_q(), group_id__in=_group_ids(user), permission_id__in=_permission_ids(codenames),
        content_object_id=OuterRef("pk"),
    )  # fmt: skip
    return Q(Exists(direct)) | Q(Exists(via_group))


def _live_q() -> Q:
    now = timezone.now()
    return (Q(expires_at__isnull=True) | Q(expires_at__gt=now)) & (
        Q(starts_at__isnull=True) | Q(starts_at__lte=now)
    )


_PERMISSION_IDS: dict[tuple[str, ...], list[int]] = {}


def _permission_ids(codenames: tuple[str, ...]) -> list[int] | QuerySet:
    """The ids of records' permissions `codenames`, looked up once per process.

    Permission rows are written by migrate (and by flush, in tests) and never change
    otherwise; `permission_ids_forget` runs on post_migrate, as Django's content-type cache
    is cleared. Ids as literals instead of a subquery (twice per visibility check) make
    every access check's statement cheaper to build, compile and plan.
    """
    ids = _PERMISSION_IDS.get(codenames)
    if ids is None:
        found = Permission.objects.filter(
            content_type__app_label="records", codename__in=codenames
        ).values("id")
        ids = sorted(row["id"] for row in found)
        if len(ids) != len(set(codenames)):  # not migrated yet: nothing is cached
            return found
        _PERMISSION_IDS[codenames] = ids
    return ids


_PERMISSION_NAMES: dict[int, str] = {}


def _permission_names() -> dict[int, str]:
    """{id: codename} of the chart permissions (CHART_CODENAMES), cached like the ids."""
    if not _PERMISSION_NAMES:
        found = dict(
            Permission.objects.filter(
                content_type__app_label="records", codename__in=CHART_CODENAMES
            ).values_list("id", "codename")
        )
        if len(found) != len(CHART_CODENAMES):  # not migrated yet: nothing is cached
            return found
        _PERMISSION_NAMES.update(found)
    return _PERMISSION_NAMES


def permission_ids_forget(**kwargs: Any) -> None:
    _PERMISSION_IDS.clear()
    _PERMISSION_NAMES.clear()


def _group_ids(user: AbstractBaseUser) -> QuerySet:
    # A subquery (evaluated once per statement), so a membership change applies at once.
    return user.groups.through.objects.filter(user_id=user.pk).values("group_id")


@dataclass(frozen=True)
class ChartAccess:
    """How much of one chart a user may see, and through what.

    `categories` None means the whole chart. `break_glass`: the only grants are emergency
    ones, so every read is flagged. `shared`: seen through a consent or proxy grant, not the
    user's own hospital or care team. `owner`: the patient's own account (which also reads
    its restricted notes); `proxy`: a carer's account through a proxy grant.

    Only this module makes them, each for one user and one chart (`user_id`, `patient_id`):
    a reader checks that the chart it was handed was opened for its user (`chart_access_of`),
    so nothing is shown by default.
    """

    user_id: int
    patient_id: int
    categories: frozenset[str] | None
    break_glass: bool = False
    shared: bool = False
    owner: bool = False
    proxy: bool = False
    until: datetime | None = None
    sources: tuple[str, ...] = ()
    # May add to and correct the chart (its own hospital's staff, its care team).
    can_change: bool = False

    def allows(self, category: str) -> bool:
        return self.categories is None or category in self.categories

    @property
    def purpose(self) -> str:
        return PURPOSE_EMERGENCY if self.break_glass else PURPOSE_TREATMENT

    @property
    def category_labels(self) -> list[str]:
        return [CATEGORY_LABELS[c] for c in sorted(self.categories or ())]

    def same_view(self, other: ChartAccess) -> bool:
        """The same user sees the same parts, whichever chart each was opened on."""
        return replace(self, patient_id=other.patient_id) == other


class ChartNotOpened(Http404):
    """A reader was handed a chart the access check did not open for its user: it refuses
    (a 404 to the user, like any chart they may not see), and the error is logged."""


def chart_access_of(*, user: AbstractBaseUser | AnonymousUser, patient: Patient) -> ChartAccess:
    """What the access check decided about `user` and this chart (access_patient,
    access_record, access_patient_as_owner, patients_opened_as_owner). Every reader of a
    chart's records asks this first: a chart fetched any other way, or opened for someone
    else, gets nothing (no default grants anything)."""
    access = getattr(patient, "chart_access", None)
    if (
        not isinstance(access, ChartAccess)
        or access.patient_id != patient.pk
        or access.user_id != user.pk
    ):
        logger.error("A chart reader was handed a chart not opened for its user (patient %s)",
                     patient.pk)  # fmt: skip
        raise ChartNotOpened("No such patient.")
    return access


def _owner_access(*, user: AbstractBaseUser, patient: Patient) -> ChartAccess:
    return ChartAccess(user_id=user.pk, patient_id=patient.pk, categories=None, owner=True)


def _access_from_rows(
    rows: list[tuple[str, str, datetime | None]],
    *,
    user_id: int,
    patient_id: int,
    proxy: bool = False,
) -> ChartAccess | None:
    if not rows:
        return None
    can_change = any(codename == "change_patient" for codename, _, _ in rows)
    rows = [row for row in rows if row[0] != "change_patient"]
    if not rows:
        return None
    categories: set[str] | None = set()
    for codename, _source, _expires in rows:
        if codename == "view_patient":
            categories = None
            break
        categories.add(codename.removeprefix("view_chart_"))
    sources = tuple(sorted({source for _, source, _ in rows}))
    ends = [expires for _, _, expires in rows]
    break_glass = all(s.startswith(BREAK_GLASS_PREFIX) for s in sources)
    return ChartAccess(
        user_id=user_id,
        patient_id=patient_id,
        categories=None if categories is None else frozenset(categories),
        break_glass=break_glass,
        shared="" not in sources and not break_glass,
        proxy=proxy,
        can_change=can_change and not proxy,
        # Access lasts while any grant lasts; None when one of them has no end.
        until=None if None in ends else max(ends),
        sources=sources,
    )


def chart_access_for(*, user: AbstractBaseUser, patient: Patient) -> ChartAccess | None:
    """The user's live, non-proxy grants on one chart (view, and whether they may change
    it), in one query; None if they may not open it.

    The same condition as `patient_visible_q` for one chart (time window, no proxy rows,
    the user's own rows and their groups' rows), written once as SQL: every chart, record
    and form asks, and the ORM took about 4 ms to build this union against 0.2 ms to run it.
    """
    names = _permission_names()
    now = hotsql.moment(timezone.now())
    params = [user.pk, patient.pk, now, now, PROXY_PREFIX + "%"]
    found = hotsql.rows(
        hotsql.statement("records.chart_grants", _chart_grants_sql), params + params[:4]
    )
    # Both tables' expires_at columns are the same field type: one converter does for both.
    expires = partial(hotsql.convert, PatientUserObjectPermission, "expires_at")
    return _access_from_rows(
        [(names[pid], source, expires(end)) for pid, source, end in found if pid in names],
        user_id=user.pk,
        patient_id=patient.pk,
    )


def _chart_grants_sql() -> str:
    """Grant rows on one chart: the user's own (not proxy) and their groups'. Parameters:
    user, patient, now, now, proxy prefix pattern, then user, patient, now, now."""
    from django.contrib.auth.models import User

    def part(model: type, who: str, extra: str) -> str:
        col = partial(hotsql.column, model)
        return (
            f"SELECT g.{col('permission')}, g.{col('source')}, g.{col('expires_at')} "  # noqa: S608
            f"FROM {hotsql.table(model)} g WHERE {who} AND g.{col('content_object')} = %s "
            f"AND {hotsql.live(model, 'g')}{extra}"
        )

    through = User.groups.through
    user_col = partial(hotsql.column, PatientUserObjectPermission)
    group_col = partial(hotsql.column, PatientGroupObjectPermission)
    own = part(
        PatientUserObjectPermission,
        f"g.{user_col('user')} = %s",
        f" AND g.{user_col('source')} NOT LIKE %s",
    )
    groups = part(
        PatientGroupObjectPermission,
        f"g.{group_col('group')} IN (SELECT {hotsql.column(through, 'group')} "  # noqa: S608
        f"FROM {hotsql.table(through)} WHERE {hotsql.column(through, 'user')} = %s)",
        "",
    )
    return f"{own} UNION ALL {groups}"


def proxy_access_for(*, user: AbstractBaseUser, patient: Patient) -> ChartAccess | None:
    """A carer's live proxy grants on one registration (patient portal), in one query."""
    rows = list(
        PatientUserObjectPermission.objects.filter(
            _live_q(),
            user_id=user.pk,
            content_object_id=patient.pk,
            permission_id__in=_permission_ids(VIEW_CODENAMES),
            source__startswith=PROXY_PREFIX,
        ).values_list("permission__codename", "source", "expires_at")
    )
    return _access_from_rows(rows, user_id=user.pk, patient_id=patient.pk, proxy=True)


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
    """Fetch a chart the user may open, or 404 (missing = forbidden).

    Any hospital's chart: the grants decide (the user's own hospital's through the
    hospital-wide group, another hospital's only through a consent or a break-glass). The
    patient comes back with `chart_access`, the part of the chart its grants cover.
    """
    pk = _int(patient_id)
    patient, access = _patient_and_access(user, pk) if pk is not None else (None, None)
    if patient is None or access is None:
        raise Http404("No such patient.")
    if codename == "change_patient" and not access.can_change:
        raise Http404("No such patient.")
    if codename not in ("view_patient", "change_patient"):
        raise ValueError(f"access_patient does not decide {codename!r}")
    patient.chart_access = access
    return patient


def _patient_and_access(user: AbstractBaseUser, pk: int) -> tuple[Patient | None, Any]:
    """`_patient_with_hospital(pk)` and `chart_access_for(user, that patient)` in one
    statement: the patient row joined with the user's grant rows on it (one row per grant,
    or one with empty grant columns). Every chart and form page opens its patient so."""
    now = hotsql.moment(timezone.now())
    grant_params = [user.pk, pk, now, now, PROXY_PREFIX + "%", user.pk, pk, now, now]
    present_params = [pk, RecordStatus.ACTIVE.value] * len(RECORD_MODELS)
    present_params += [pk, RecordStatus.ACTIVE.value, TREND_POINTS]  # more than a trend draws?
    found = hotsql.rows(
        hotsql.statement("records.patient_and_grants", _patient_and_grants_sql),
        [*present_params, *grant_params, pk],
    )
    if not found:
        return None, None
    p_cols, h_cols = hotsql.columns(Patient, "p"), hotsql.columns(Hospital, "h")
    patient = p_cols.load_with("hospital", h_cols, found[0])
    at = p_cols.width + h_cols.width
    # chart_for's probe, answered by the same statement (a few index probes, cheaper than
    # the round trip they save on the chart).
    patient.record_types_present = {
        model._meta.model_name
        for model, present in zip(
            RECORD_MODELS, found[0][at : at + len(RECORD_MODELS)], strict=True
        )
        if present
    }
    at += len(RECORD_MODELS)
    # Whether the chart holds more active observations than one trend draws: if not, its
    # trends need no per-code cut (chart_for then skips the window function).
    patient.many_observations = bool(found[0][at])
    at += 1
    names = _permission_names()
    expires = partial(hotsql.convert, PatientUserObjectPermission, "expires_at")
    grant_rows = [
        (names[row[at]], row[at + 1], expires(row[at + 2]))
        for row in found
        if row[at] is not None and row[at] in names
    ]
    return patient, _access_from_rows(grant_rows, user_id=user.pk, patient_id=patient.pk)


def _patient_and_grants_sql() -> str:
    p_cols, h_cols = hotsql.columns(Patient, "p"), hotsql.columns(Hospital, "h")
    # The probes name the patient by parameter, not by p.id: uncorrelated, each runs once
    # per statement (an InitPlan on PostgreSQL) instead of once per grant row.
    present = ", ".join(
        f"EXISTS (SELECT 1 FROM {hotsql.table(m)} t "  # noqa: S608
        f"WHERE t.{hotsql.column(m, 'patient')} = %s AND t.{hotsql.column(m, 'status')} = %s)"
        for m in RECORD_MODELS
    )
    # More than TREND_POINTS active observations (an index scan of at most that many rows).
    many = (
        f"EXISTS (SELECT 1 FROM {hotsql.table(Observation)} t "  # noqa: S608
        f"WHERE t.{hotsql.column(Observation, 'patient')} = %s "
        f"AND t.{hotsql.column(Observation, 'status')} = %s LIMIT 1 OFFSET %s)"
    )
    return (
        f"SELECT {p_cols.sql}, {h_cols.sql}, {present}, {many}, g.* "
        f"{hotsql.join(Patient, 'p', 'hospital', 'h')} "
        f"LEFT JOIN ({_chart_grants_sql()}) g ON 1 = 1 "
        f"WHERE p.{hotsql.column(Patient, 'id')} = %s"
    )


def _patient_with_hospital(pk: int) -> Patient | None:
    """`Patient._base_manager.filter(pk=pk).select_related("hospital").first()`, as a
    statement built once: every chart, record and form page opens its patient this way."""
    found = hotsql.rows(hotsql.statement("records.patient", _patient_sql), [pk])
    if not found:
        return None
    return hotsql.columns(Patient, "p").load_with(
        "hospital", hotsql.columns(Hospital, "h"), found[0]
    )


def _patient_sql() -> str:
    p_cols, h_cols = hotsql.columns(Patient, "p"), hotsql.columns(Hospital, "h")
    return (
        f"SELECT {p_cols.sql}, {h_cols.sql} {hotsql.join(Patient, 'p', 'hospital', 'h')} "
        f"WHERE p.{hotsql.column(Patient, 'id')} = %s"
    )


def chart_changeable_by(*, user: AbstractBaseUser, patient: Patient) -> bool:
    """May the user add to and correct this chart (its own hospital's staff and care team;
    consents and break-glass only ever let someone read). Free after access_patient."""
    return chart_access_of(user=user, patient=patient).can_change


def access_patient_as_owner(user: AbstractBaseUser, patient_id: Any) -> Patient:
    """A registration seen in the patient portal: the account's own, or one a live proxy
    grant lets this account see (limited to the grant's categories). 404 otherwise."""
    pk = _int(patient_id)
    patient = None
    if pk is not None and user.is_authenticated:
        patient = _patient_with_hospital(pk)
    if patient is None:
        raise Http404("No such record.")
    if patient.user_id == user.pk:
        patient.chart_access = _owner_access(user=user, patient=patient)
        return patient
    access = proxy_access_for(user=user, patient=patient)
    if access is None:
        raise Http404("No such record.")
    patient.chart_access = access
    return patient


def patients_opened_as_owner(*, user: AbstractBaseUser, patients: list[Patient]) -> list[Patient]:
    """The account's own registrations (patient_registrations_for_user), opened as their
    owner's: the whole of each, restricted notes included. Refuses any that is not theirs."""
    for patient in patients:
        if not user.is_authenticated or patient.user_id != user.pk:
            raise ChartNotOpened("No such record.")
        patient.chart_access = _owner_access(user=user, patient=patient)
    return patients


_int = hotsql.row_id  # ids from URLs and forms


def _visible_notes_q(user: AbstractBaseUser) -> Q:
    granted = (
        ClinicalNoteUserObjectPermission.objects.filter(
            _live_q(), user=user, permission__codename="view_clinicalnote"
        )
        .exclude(source__startswith=PROXY_PREFIX)
        .values("content_object_id")
    )
    return Q(restricted=False) | Q(pk__in=granted)


def records_for_patient(
    *, user: AbstractBaseUser, patient: Patient, model: type[ClinicalRecord]
) -> QuerySet:
    """Records of one type on a chart the caller opened (access_patient, or in the patient
    portal access_patient_as_owner), limited to the categories its grants cover.

    Reads through the base manager: the chart may be another hospital's (a consent), and
    the rows are filtered by the very patient whose access was just decided.
    """
    access = chart_access_of(user=user, patient=patient)
    qs = model._base_manager.filter(patient_id=patient.pk, hospital_id=patient.hospital_id)
    if model is Observation:
        allowed = [k for k, v in OBSERVATION_CATEGORY.items() if access.allows(v)]
        qs = qs.filter(category__in=allowed)
    elif not access.allows(MODEL_CATEGORY[model._meta.model_name]):
        qs = qs.none()
    if model is ClinicalNote and not access.owner:
        # Restricted notes: never to a proxy; to staff only when granted on the note itself.
        qs = qs.filter(restricted=False) if access.proxy else qs.filter(_visible_notes_q(user))
    return qs


def access_record(user: AbstractBaseUser, record_type: str, record_id: Any) -> ClinicalRecord:
    """A record the user may open: its chart must be visible with the record's category
    covered, and a restricted note must be granted to the user itself. 404 otherwise."""
    model = RECORD_TYPES.get(record_type)
    pk = _int(record_id)
    if model is None or pk is None:
        raise Http404("No such record.")
    record = (
        model._base_manager.filter(pk=pk).select_related("patient__hospital", "recorded_by").first()
    )
    access = _record_access(user, record) if record is not None else None
    if access is None:
        raise Http404("No such record.")
    record.patient.chart_access = access
    return record


def _record_access(user: AbstractBaseUser, record: ClinicalRecord) -> ChartAccess | None:
    """The user's access to the record's chart, if it covers this record: its category,
    and for a restricted note a live grant on the note itself."""
    access = chart_access_for(user=user, patient=record.patient)
    if access is None or not access.allows(record_category(record)):
        return None
    if (
        isinstance(record, ClinicalNote)
        and record.restricted
        and not ClinicalNote._base_manager.filter(_visible_notes_q(user), pk=record.pk).exists()
    ):
        return None
    return access


def object_permissions_for(*, user: AbstractBaseUser | AnonymousUser, obj: Any) -> frozenset[str]:
    """The codenames `user` holds on `obj`, as this module decides them for the provider
    portal, the API and FHIR (what `user.has_perm(perm, obj)` answers, through
    records.backends.ChartPermissionBackend):

    - a chart (Patient): `view_patient` if they may open it (whole or in part),
      `view_chart_<category>` for each category they may see, `change_patient` if they may
      add to it; proxy grants and the patient's own account open no chart here;
    - a record: `view_<model>` if they may open it (access_record), `change_<model>` if
      they may also correct it;
    - anything else: nothing.
    """
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    if isinstance(obj, Patient):
        access = chart_access_for(user=user, patient=obj)
        if access is None:
            return frozenset()
        perms = {"view_patient"}
        perms.update(category_codename(c) for c in CATEGORY_CODES if access.allows(c))
        if access.can_change:
            perms.add("change_patient")
        return frozenset(perms)
    if isinstance(obj, ClinicalRecord) and obj.pk is not None:
        record = type(obj)._base_manager.select_related("patient").filter(pk=obj.pk).first()
        access = _record_access(user, record) if record is not None else None
        if access is None:
            return frozenset()
        name = obj._meta.model_name
        return frozenset({f"view_{name}", *([f"change_{name}"] if access.can_change else [])})
    return frozenset()


def patients_shared_with_user(
    *, user: AbstractBaseUser, exclude_hospital: Hospital
) -> list[Patient]:
    """Charts of other hospitals the user may open now (consents, break-glass), newest
    grants first; found from the grants, so the cost does not grow with other hospitals."""
    direct = (
        PatientUserObjectPermission.objects.filter(
            _live_q(), user_id=user.pk, permission_id__in=_permission_ids(VIEW_CODENAMES)
        )
        .exclude(source__startswith=PROXY_PREFIX)
        .values("content_object_id")
    )
    via_group = PatientGroupObjectPermission.objects.filter(
        _live_q(), group_id__in=_group_ids(user), permission_id__in=_permission_ids(VIEW_CODENAMES)
    ).values("content_object_id")
    emergency = PatientUserObjectPermission.objects.filter(
        _live_q(), user_id=user.pk, content_object_id=OuterRef("pk"),
        source__startswith=BREAK_GLASS_PREFIX,
    )  # fmt: skip
    return list(
        Patient._base_manager.filter(Q(pk__in=direct) | Q(pk__in=via_group))
        .exclude(hospital=exclude_hospital)
        .annotate(emergency_access=Exists(emergency))  # flagged wherever it appears
        .select_related("hospital")
        .order_by("-id")[:200]
    )


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


def _record_types_present(patient: Patient) -> set[str]:
    """The record types with at least one active row on this chart, in one statement (an
    index probe per table): a chart usually holds a few of the nine types, and each query
    the chart skips saves more than the probe costs.

    Only decides which of chart_for's queries to run, never what they may return: those
    still go through the scoped managers and records_for_patient's permission filters.
    """
    sql = hotsql.statement("records.present", _record_types_present_sql)
    params = [patient.pk, RecordStatus.ACTIVE.value] * len(RECORD_MODELS)
    return {row[0] for row in hotsql.rows(sql, params)}


def _record_types_present_sql() -> str:
    # The model names are literals (from the models' metadata): a bare parameter in the
    # select list would leave its type for the server to guess when the statement is prepared.
    return " UNION ALL ".join(
        f"SELECT '{m._meta.model_name}' WHERE EXISTS (SELECT 1 FROM {hotsql.table(m)} "  # noqa: S608
        f"WHERE {hotsql.column(m, 'patient')} = %s AND {hotsql.column(m, 'status')} = %s)"
        for m in RECORD_MODELS
    )


# The trend charts show each code's newest TREND_POINTS values: a long stay's vitals (one
# every few minutes, for weeks) would otherwise load and draw tens of thousands of points on
# every chart read (29,340 observations made a 2.7 MB page in 1.7 to 4.2 s). At least the
# timeline's length, so the newest observations of the timeline are always among them.
TREND_POINTS = 200


def chart_for(*, user: AbstractBaseUser, patient: Patient, timeline_limit: int = 100) -> Chart:
    """Everything the chart page shows: one query for which record types the chart holds,
    then one per type it holds, whatever the number of rows."""
    if timeline_limit > TREND_POINTS:
        raise ValueError("the timeline cannot be longer than a trend's newest values")
    chart = Chart(patient=patient)
    present = getattr(patient, "record_types_present", None)  # access_patient's answer
    if present is None:
        present = _record_types_present(patient)
    for model in RECORD_MODELS:
        name = model._meta.model_name
        if name not in present:
            continue
        if model is Observation:
            # One value more than is drawn, so a series knows whether older values exist
            # (the page and the API say so); each such code's oldest rows are dropped here.
            # A chart with no more observations than one trend draws (access_patient's
            # answer; most charts) needs no per-code cut: all of them, without the window.
            many = getattr(patient, "many_observations", True)
            rows = _chart_records(
                user=user, patient=patient, model=model, limit=None,
                per_code=TREND_POINTS + 1 if many else None,
            )  # fmt: skip
            # Grouped by the code's token (clear, one per code on a chart), so that each
            # series decrypts its code, display and unit once, not once per value.
            counts: dict[str, int] = {}
            for obs in rows:
                counts[obs.code_index] = counts.get(obs.code_index, 0) + 1
            # rows come oldest first: each code's first rows beyond TREND_POINTS go
            excess = {code: n - TREND_POINTS for code, n in counts.items() if n > TREND_POINTS}
            cut = set(excess)
            kept = []
            by_token: dict[str, dict[str, Any]] = {}
            for obs in rows:
                if excess.get(obs.code_index):
                    excess[obs.code_index] -= 1
                    continue
                kept.append(obs)
                s = by_token.get(obs.code_index)
                if s is None:
                    s = by_token[obs.code_index] = chart.series[obs.code] = {
                        "display": obs.display,
                        "unit": obs.unit,
                        "points": [],
                        "truncated": obs.code_index in cut,
                    }
                s["points"].append((obs.effective_at, obs.value))
            recent = kept[-timeline_limit:]
        else:
            recent = _chart_records(user=user, patient=patient, model=model, limit=timeline_limit)
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


def _chart_records(
    *,
    user: AbstractBaseUser,
    patient: Patient,
    model: type[ClinicalRecord],
    limit: int | None,
    per_code: int | None = None,
) -> list[ClinicalRecord]:
    """The chart's active records of one type: what
    `records_for_patient(...).filter(status=ACTIVE)` returns, ordered by the timeline date
    (limit None: oldest first, for the trend charts, all of them or, with `per_code`, each
    code's newest `per_code`; otherwise newest first, `limit` of them), as a statement built
    once per shape (portal.hotsql): the chart runs one per type it holds, and the ORM spent
    longer building each than running it."""
    if per_code is not None and (model is not Observation or limit is not None):
        raise ValueError("per_code is for all of a chart's observations")
    access = chart_access_of(user=user, patient=patient)
    params: list[Any] = [patient.pk, patient.hospital_id, RecordStatus.ACTIVE.value]
    allowed: tuple[str, ...] = ()
    if model is Observation:
        allowed = tuple(k for k, v in OBSERVATION_CATEGORY.items() if access.allows(v))
        if not allowed:
            return []
        params += allowed
    elif not access.allows(MODEL_CATEGORY[model._meta.model_name]):
        return []
    notes = ""
    if model is ClinicalNote and not access.owner:
        # Restricted notes: never to a proxy; to staff only when granted on the note itself.
        notes = "public" if access.proxy else "granted"
        params.append(False)
        if notes == "granted":
            (perm,) = _permission_ids(("view_clinicalnote",))
            now = hotsql.moment(timezone.now())
            params += [user.pk, perm, now, now, PROXY_PREFIX + "%"]
    if limit is not None:
        params.append(limit)
    if per_code is not None:
        params.append(per_code)
    shape = (
        f"records.chart.{model._meta.model_name}.{len(allowed)}.{notes}.{limit is None}"
        f".{per_code is None}"
    )
    sql = hotsql.statement(
        shape,
        partial(
            _chart_records_sql, model, len(allowed), notes, limit is not None, per_code is not None
        ),
    )
    cols = hotsql.columns(model, "r")
    return cols.load_all(hotsql.rows(sql, params))


def _chart_records_sql(
    model: type[ClinicalRecord], n_allowed: int, notes: str, limited: bool, per_code: bool = False
) -> str:
    col = partial(hotsql.column, model)
    columns = hotsql.columns(model, "r").sql
    date = col(TIMELINE_DATE[model._meta.model_name])
    select = columns
    if per_code:
        # Each code's rows numbered newest first, to keep the newest `per_code` of each below
        # (by the code's keyed token: the code itself is encrypted).
        select = (
            f"ROW_NUMBER() OVER (PARTITION BY r.{col('code_index')} "
            f"ORDER BY r.{date} DESC, r.{col('id')} DESC) AS newest, {columns}"
        )
    sql = (
        f"SELECT {select} FROM {hotsql.table(model)} r "  # noqa: S608
        f"WHERE r.{col('patient')} = %s AND r.{col('hospital')} = %s AND r.{col('status')} = %s"
    )
    if n_allowed:
        sql += f" AND r.{col('category')} IN ({', '.join(['%s'] * n_allowed)})"
    if notes == "public":
        sql += f" AND r.{col('restricted')} = %s"
    elif notes == "granted":
        g = ClinicalNoteUserObjectPermission
        gcol = partial(hotsql.column, g)
        sql += (
            f" AND (r.{col('restricted')} = %s OR r.{col('id')} IN ("  # noqa: S608
            f"SELECT g.{gcol('content_object')} FROM {hotsql.table(g)} g "
            f"WHERE g.{gcol('user')} = %s AND g.{gcol('permission')} = %s "
            f"AND {hotsql.live(g, 'g')} AND g.{gcol('source')} NOT LIKE %s))"
        )
    if per_code:
        return (
            f"SELECT {columns} FROM ({sql}) r "  # noqa: S608
            f"WHERE r.newest <= %s ORDER BY r.{date} ASC, r.{col('id')} ASC"
        )
    if limited:
        sql += f" ORDER BY r.{date} DESC, r.{col('id')} DESC LIMIT %s"
    else:
        sql += f" ORDER BY r.{date} ASC, r.{col('id')} ASC"
    return sql


CATEGORY_MODEL: dict[str, type[ClinicalRecord]] = {
    **{category: RECORD_TYPES[name] for name, category in MODEL_CATEGORY.items()},
    **{category: Observation for category in OBSERVATION_CATEGORY.values()},
}


@dataclass
class CategoryView:
    category: str
    records: list[ClinicalRecord] = field(default_factory=list)
    series: dict[str, dict[str, Any]] = field(default_factory=dict)
    date_field: str = "created_at"


def records_by_category(
    *, user: AbstractBaseUser, patients: list[Patient], category: str, limit: int = 500
) -> CategoryView:
    """One category of records across several registrations the caller opened with the
    same access (the account's own, or one proxy grant's): one query, whatever the count."""
    view = CategoryView(category=category)
    if not patients or category not in CATEGORY_MODEL:
        return view
    access = chart_access_of(user=user, patient=patients[0])
    if not all(access.same_view(chart_access_of(user=user, patient=p)) for p in patients):
        raise ValueError("registrations opened with different access")
    model = CATEGORY_MODEL[category]
    view.date_field = TIMELINE_DATE[model._meta.model_name]
    if not access.allows(category):
        return view
    qs = model._base_manager.filter(
        patient_id__in=[p.pk for p in patients], status=RecordStatus.ACTIVE
    ).select_related("hospital")
    if model is Observation:
        codes = {v: k for k, v in OBSERVATION_CATEGORY.items()}
        qs = qs.filter(category=codes[category])
    if model is ClinicalNote and not access.owner:
        qs = qs.filter(restricted=False) if access.proxy else qs.filter(_visible_notes_q(user))
    view.records = list(qs.order_by(f"-{view.date_field}", "-id")[:limit])
    if model is Observation:
        # The code decrypted once per (hospital, token), as on the chart; the same code at
        # two hospitals is one series, as before.
        codes: dict[tuple[int, str], str] = {}
        for obs in reversed(view.records):
            key = (obs.hospital_id, obs.code_index)
            code = codes.get(key)
            if code is None:
                code = codes[key] = obs.code
            s = view.series.get(code)
            if s is None:
                s = view.series[code] = {"display": obs.display, "unit": obs.unit, "points": []}
            s["points"].append((obs.effective_at, obs.value))
    return view
