"""Who may see which chart, and which parts of it: the only place this is decided.

The rule, once:
- Grants are guardian's object-permission rows (records.grants writes them), read only
  through the view `records_live_grant` (records.models.LiveGrant), which holds the time
  window and expands group rows (the hospital-wide clinical group, departments) to their
  members. Never `user.has_perm` (true for any superuser) and never model permissions.
- `view_patient` is the whole chart, `view_chart_<category>` one category of it,
  `change_patient` lets a reader add to and correct it (its own hospital's staff and care
  team; consents, break-glass and proxies only ever let someone read).
- A grant's source says what wrote it: "" registration and care team, "consent:",
  "breakglass:" (every read flagged as an emergency), "proxy:" (a carer, in the patient
  portal and the patient side of the API and FHIR only, through access_patient_as_owner: a
  proxy row never opens a chart to staff, in the provider portal, the API or FHIR).
- Restricted notes are in no category: staff see one only through a live grant on the note
  itself, a proxy never, the patient (owner) always.
- The reader's role narrows what a grant opens (ROLE_ACTIONS, ROLE_CATEGORIES: who may do
  what, README "Who may do what"): a records clerk reads the demographics, encounters and
  documents and writes only those; a nurse writes no prescription or diagnosis; a hospital
  admin opens a chart only through a grant that names them personally. The role is the
  reader's active membership at the chart's hospital, or, for another hospital's chart
  (consent, break-glass), their strongest active role elsewhere: the grant already decided
  that they may read; the role decides how much. It is read in the query that opens the chart.
- Missing and forbidden are the same 404.

Callers open a chart (`open_chart` / `access_patient`, `access_patient_as_owner`,
`access_record`, `access_record_as_owner`) and get an `OpenedChart` that carries the
decision; every record reader (records.chart, the API, FHIR, exports) takes that value,
never a bare Patient, so a chart that was not opened shows nothing. A credential that is
itself limited (an app's scopes) narrows an opened chart with `chart_narrowed`, which only
ever removes categories. Lists ask `visible_patients` / `patient_visible_q`: an
EXISTS over the same view.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import (
    Case,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.http import Http404

from portal.ids import row_id
from portal.records.categories import (
    CATEGORY_CODES,
    CATEGORY_LABELS,
    MODEL_CATEGORY,
    OBSERVATION_CATEGORY,
    category_codename,
    record_category,
)
from portal.records.models import (
    RECORD_MODELS,
    ClinicalNote,
    ClinicalRecord,
    LiveGrant,
    Observation,
    Patient,
    model_name,
)
from portal.tenancy.models import Membership, Role

# Grant sources (GrantFields.source) the rule tells apart.
CONSENT_PREFIX = "consent:"
BREAK_GLASS_PREFIX = "breakglass:"
PROXY_PREFIX = "proxy:"
# HL7 v3 PurposeOfUse codes recorded on access events.
PURPOSE_TREATMENT = "TREAT"
PURPOSE_EMERGENCY = "ETREAT"
PURPOSE_FAMILY = "FAMRQT"  # a family member or carer the patient authorised (a proxy)
VIEW_CODENAMES: tuple[str, ...] = (
    "view_patient",
    *(category_codename(c) for c in sorted(CATEGORY_CODES)),
)
CHANGE_CODENAME = "change_patient"
CHART_CODENAMES: tuple[str, ...] = (*VIEW_CODENAMES, CHANGE_CODENAME)
NOTE_CODENAME = "view_clinicalnote"

RECORD_TYPES: dict[str, type[ClinicalRecord]] = {model_name(m): m for m in RECORD_MODELS}
# The trend charts (records.chart) show each code's newest TREND_POINTS values: a long
# stay's vitals (one every few minutes, for weeks) would otherwise load and draw tens of
# thousands of points on every chart read (29,340 observations made a 2.7 MB page in 1.7 to
# 4.2 s). At least the timeline's length, so the newest observations of the timeline are
# always among them.
TREND_POINTS = 200


class Action(enum.StrEnum):
    """What a reader means to do with a chart (or, for the last four, at their hospital).
    The per-role capabilities (which role may do which action) belong here, in
    ROLE_ACTIONS / `_capable`, and nowhere else."""

    VIEW = "view"  # open the chart: the categories the role reads (ROLE_CATEGORIES)
    CHANGE = "change"  # add to or correct the chart at all: any of the record actions below
    RECORD_OBSERVATION = "record.observation"  # vital signs and measurements
    RECORD_NOTE = "record.clinicalnote"  # a clinical (or nursing) note
    RECORD_CONDITION = "record.condition"  # a problem or diagnosis
    RECORD_MEDICATION = "record.medicationrequest"  # a prescription
    RECORD_ALLERGY = "record.allergyintolerance"
    RECORD_IMMUNIZATION = "record.immunization"
    RECORD_PROCEDURE = "record.procedure"
    RECORD_ENCOUNTER = "record.encounter"  # a visit (its admission and discharge)
    RECORD_DOCUMENT = "record.document"  # upload a document
    RECORD_REPORT = "record.diagnosticreport"  # a report of tests (lab panel, imaging, note)
    RECORD_IMAGING = "record.imagingstudy"  # an imaging study
    RECORD_CARE_PLAN = "record.careplan"  # a plan of care
    RECORD_GOAL = "record.goal"  # a health goal
    CARE_TEAM = "care_team"  # add colleagues to the chart's care team, remove them
    # Not about one opened chart: asked of the membership a request acts in (membership_may).
    PATIENT_LIST = "patient_list"  # the hospital's patient list and search
    REGISTER = "register"  # register a patient (and so open a new chart)
    BREAK_GLASS = "break_glass"  # open a chart in an emergency
    REQUEST_ACCESS = "access_request"  # ask a patient for access (and be named in a consent)


# A record type's write action: adding one and correcting one.
RECORD_ACTIONS: dict[str, Action] = {
    "observation": Action.RECORD_OBSERVATION,
    "clinicalnote": Action.RECORD_NOTE,
    "condition": Action.RECORD_CONDITION,
    "medicationrequest": Action.RECORD_MEDICATION,
    "allergyintolerance": Action.RECORD_ALLERGY,
    "immunization": Action.RECORD_IMMUNIZATION,
    "procedure": Action.RECORD_PROCEDURE,
    "encounter": Action.RECORD_ENCOUNTER,
    "document": Action.RECORD_DOCUMENT,
    "diagnosticreport": Action.RECORD_REPORT,
    "imagingstudy": Action.RECORD_IMAGING,
    "careplan": Action.RECORD_CARE_PLAN,
    "goal": Action.RECORD_GOAL,
}
CHART_WRITES = frozenset({*RECORD_ACTIONS.values(), Action.CARE_TEAM})
HOSPITAL_ACTIONS = frozenset(
    {Action.PATIENT_LIST, Action.REGISTER, Action.BREAK_GLASS, Action.REQUEST_ACCESS}
)
_CLINICAL = frozenset({Action.VIEW, Action.CHANGE, *CHART_WRITES, *HOSPITAL_ACTIONS})
# Nurses chart what they observe and give: no prescription, diagnosis or procedure, no
# encounter (visits are admitted by clinicians and clerks), no care-team changes. Allergies
# they may record: nurses take the allergy history at admission, and an allergy left out
# until a clinician comes is the unsafe choice. Care plans and goals they may record
# (nursing care plans); test reports and imaging studies are a clinician's findings.
_NOT_NURSES = frozenset(
    {
        Action.RECORD_CONDITION,
        Action.RECORD_MEDICATION,
        Action.RECORD_PROCEDURE,
        Action.RECORD_ENCOUNTER,
        Action.RECORD_REPORT,
        Action.RECORD_IMAGING,
        Action.CARE_TEAM,
    }
)
# Who may do what (the README's table "Who may do what" is this one;
# tests/records/test_roles.py walks it). A chart action still needs a grant that opens the
# chart (and, to write, one that lets the reader change it: their own hospital's or the
# care team's, never a consent's or a break-glass).
ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    Role.CLINICIAN: _CLINICAL,
    Role.NURSE: _CLINICAL - _NOT_NURSES,
    # Clerks register patients, admit visits and file documents; they read only that.
    Role.RECORDS_CLERK: frozenset(
        {
            Action.VIEW,
            Action.CHANGE,
            Action.RECORD_ENCOUNTER,
            Action.RECORD_DOCUMENT,
            Action.PATIENT_LIST,
            Action.REGISTER,
        }
    ),
    # Hospital admins administer (the Django admin decides that: portal.admin_site); a chart
    # opens to them only through a grant naming them personally (a care team), to read.
    Role.HOSPITAL_ADMIN: frozenset({Action.VIEW}),
}
# The categories each role reads of a chart it may open (None: all the grant opens). The
# demographics (the Patient itself) are always shown to whoever opens the chart.
ROLE_CATEGORIES: dict[str, frozenset[str] | None] = {
    Role.CLINICIAN: None,
    Role.NURSE: None,
    Role.RECORDS_CLERK: frozenset({"encounters", "documents"}),
    Role.HOSPITAL_ADMIN: None,
}
# Roles whose group grants (the hospital-wide clinical group, departments) count: a
# hospital admin is in neither (tenancy.services), and would read nothing through one.
GROUP_ROLES = frozenset({Role.CLINICIAN, Role.NURSE, Role.RECORDS_CLERK})
# For another hospital's chart, the reader's strongest role (the first of these they hold).
ROLE_RANK: tuple[str, ...] = (
    Role.CLINICIAN,
    Role.NURSE,
    Role.RECORDS_CLERK,
    Role.HOSPITAL_ADMIN,
)


def record_action(record_type: str | type[ClinicalRecord]) -> Action:
    """The action that adds or corrects a record of this type."""
    name = record_type if isinstance(record_type, str) else model_name(record_type)
    return RECORD_ACTIONS[name]


def roles_may(action: Action) -> frozenset[str]:
    """The roles that may do `action` (for filters over memberships)."""
    return frozenset(role for role, actions in ROLE_ACTIONS.items() if action in actions)


def role_may(*, role: str | None, action: Action) -> bool:
    return role is not None and action in ROLE_ACTIONS.get(role, frozenset())


def membership_may(*, membership: Any, action: Action) -> bool:
    """May the membership a request acts in do `action` at its hospital (register, list
    patients, break glass, ask for access). Chart actions are asked of an OpenedChart."""
    return (
        membership is not None
        and membership.is_active
        and role_may(role=membership.role, action=action)
    )


class Via(enum.StrEnum):
    STAFF = "staff"  # the reader's own hospital or care team
    CONSENT = "consent"  # a patient's consent shares it
    BREAK_GLASS = "breakglass"  # an emergency access, flagged on every read
    OWNER = "owner"  # the patient's own account (patient portal)
    PROXY = "proxy"  # a carer through a proxy grant (patient portal)


@dataclass(frozen=True)
class OpenedChart:
    """One chart as opened for one user: what they may see and do, and through what.

    Made only by this module. `categories` None is the whole chart. `present`: the record
    types the chart holds (active rows), when the opening query answered it (None: unknown,
    the readers then look).
    """

    patient: Patient
    user_id: int
    via: Via
    categories: frozenset[str] | None
    actions: frozenset[Action] = frozenset({Action.VIEW})
    until: datetime | None = None  # access lasts while a grant lasts; None: no end
    sources: tuple[str, ...] = ()
    present: frozenset[str] | None = None
    role: str | None = None  # the reader's role (staff), which narrowed `actions`

    def can(self, action: Action) -> bool:
        return _capable(self, action)

    def can_write(self, record_type: str | type[ClinicalRecord]) -> bool:
        return _capable(self, record_action(record_type))

    @property
    def may(self) -> dict[str, bool]:
        """For templates: `access.may.record_medication`, one key per Action name."""
        return {action.name.lower(): _capable(self, action) for action in Action}

    @property
    def patient_id(self) -> int:
        return self.patient.pk

    @property
    def can_change(self) -> bool:
        return Action.CHANGE in self.actions

    @property
    def break_glass(self) -> bool:
        return self.via is Via.BREAK_GLASS

    @property
    def shared(self) -> bool:
        """Seen through a consent or a proxy grant, not the reader's own hospital."""
        return self.via in (Via.CONSENT, Via.PROXY)

    @property
    def owner(self) -> bool:
        return self.via is Via.OWNER

    @property
    def proxy(self) -> bool:
        return self.via is Via.PROXY

    @property
    def purpose(self) -> str:
        if self.proxy:
            return PURPOSE_FAMILY  # a carer's read is not treatment
        return PURPOSE_EMERGENCY if self.break_glass else PURPOSE_TREATMENT

    @property
    def withheld(self) -> frozenset[str]:
        """The categories this reader is not shown (the page says so)."""
        return frozenset() if self.categories is None else CATEGORY_CODES - self.categories

    @property
    def category_labels(self) -> list[str]:
        return [CATEGORY_LABELS[c] for c in sorted(self.categories or ())]

    def allows(self, category: str) -> bool:
        return self.categories is None or category in self.categories

    def same_view(self, other: OpenedChart) -> bool:
        """The same user sees the same parts through the same kind of grant."""
        return (self.user_id, self.via, self.categories) == (
            other.user_id,
            other.via,
            other.categories,
        )


@dataclass(frozen=True)
class OpenedRecord:
    """One record and the chart it was opened through (access_record)."""

    chart: OpenedChart
    record: ClinicalRecord


NOT_FOUND = "No such patient."
logger = logging.getLogger(__name__)


class ChartNotOpened(Http404):
    """A reader was handed something this module did not open (a bare Patient, or a chart
    opened for another user): it refuses, a 404 like any chart one may not see, and the
    error is logged (ids only)."""


def chart_required(chart: Any, *, user: Any = None) -> OpenedChart:
    """What every reader of records asks first: `chart` is an OpenedChart (and, when the
    reader knows who reads, opened for `user`). Nothing is shown by default."""
    if not isinstance(chart, OpenedChart) or (user is not None and chart.user_id != user.pk):
        logger.error(
            "A chart reader was handed a chart not opened for its user (patient %s)",
            getattr(chart, "pk", None) or getattr(chart, "patient_id", None),
        )
        raise ChartNotOpened(NOT_FOUND)
    return chart


def _capable(chart: OpenedChart, action: Action) -> bool:
    """May the reader do `action` on the opened chart. `actions` is already the grant's
    answer narrowed by the role (ROLE_ACTIONS), computed once in `_decide`."""
    return action in chart.actions


def _role_subquery(*, user_id: int, patient_id: int) -> Subquery:
    """The reader's role for the chart `patient_id`: their active membership at its
    hospital, else their strongest active role elsewhere. A subquery of the query that opens
    the chart, so the role costs no query of its own."""
    hospital_id = Subquery(Patient._base_manager.filter(pk=patient_id).values("hospital_id")[:1])
    here = Case(When(hospital_id=hospital_id, then=Value(0)), default=Value(1))
    rank = Case(
        *(When(role=role, then=Value(i)) for i, role in enumerate(ROLE_RANK)),
        default=Value(len(ROLE_RANK)),
        output_field=IntegerField(),
    )
    memberships = (
        Membership._base_manager.filter(user_id=user_id, is_active=True)
        .annotate(here=here, rank=rank)
        .order_by("here", "rank", "pk")
        .values("role")[:1]
    )
    return Subquery(memberships)


def _decide(
    rows: Iterable[tuple[str, str, datetime | None, bool]],
    *,
    user_id: int,
    patient: Patient,
    proxy: bool = False,
    role: str | None = None,
    **hints: Any,
) -> OpenedChart | None:
    """The chart as the grant rows (codename, source, expires_at, through a group) open it
    to a reader of `role`, or None. A proxy's rows open the patient portal's view (no role);
    staff rows open what the role may see of what they grant."""
    rows = list(rows)
    if not proxy:
        if not role_may(role=role, action=Action.VIEW):
            return None
        if role not in GROUP_ROLES:
            rows = [row for row in rows if not row[3]]  # only grants naming them count
    can_change = any(codename == CHANGE_CODENAME for codename, _, _, _ in rows)
    views = [row for row in rows if row[0] in VIEW_CODENAMES]
    if not views:
        return None
    named: set[str] = set()
    categories: set[str] | None = named
    for codename, _source, _expires, _group in views:
        if codename == "view_patient":
            categories = None
            break
        named.add(codename.removeprefix("view_chart_"))
    if not proxy and role is not None:
        by_role = ROLE_CATEGORIES.get(role)
        if by_role is not None:
            categories = set(by_role) if categories is None else categories & by_role
    sources = tuple(sorted({source for _, source, _, _ in views}))
    ends = [expires for _, _, expires, _ in views]
    if proxy:
        via = Via.PROXY
    elif all(s.startswith(BREAK_GLASS_PREFIX) for s in sources):
        via = Via.BREAK_GLASS
    elif "" in sources:
        via = Via.STAFF
    else:
        via = Via.CONSENT
    actions = {Action.VIEW}
    if can_change and not proxy:
        actions |= ROLE_ACTIONS.get(role or "", frozenset()) & CHART_WRITES
        if actions & CHART_WRITES:
            actions.add(Action.CHANGE)
    return OpenedChart(
        patient=patient,
        user_id=user_id,
        via=via,
        categories=None if categories is None else frozenset(categories),
        actions=frozenset(actions),
        until=None if None in ends else max(end for end in ends if end is not None),
        sources=sources,
        role=None if proxy else role,
        **hints,
    )


def _staff_grants(user: User) -> QuerySet[LiveGrant]:
    """The user's live grants that open charts to staff (every source but proxies). Callers
    name the chart (`patient_id`): rows of restricted-note grants name none."""
    return LiveGrant.objects.filter(user_id=user.pk).exclude(source__startswith=PROXY_PREFIX)


def _proxy_grants(user: User) -> QuerySet[LiveGrant]:
    return LiveGrant.objects.filter(
        user_id=user.pk, codename__in=VIEW_CODENAMES, source__startswith=PROXY_PREFIX
    )


# --- single charts -------------------------------------------------------------------------


def open_chart(
    *, user: User | AnonymousUser, patient_id: Any, action: Action = Action.VIEW
) -> OpenedChart:
    """The chart `patient_id` opened for `user` to `action`, or one 404 for missing and
    forbidden alike.

    One query: the user's live grants on the chart (the view records_live_grant) with the
    patient, its hospital, which record types it holds (records_chart_contents) and the
    reader's role joined; no grant, no row: nothing to tell missing and forbidden apart.
    """
    pk = row_id(patient_id)
    if pk is None or not user.is_authenticated or not user.is_active:
        raise Http404(NOT_FOUND)
    rows = list(
        _staff_grants(user)
        .filter(patient_id=pk)
        .select_related("patient__hospital", "patient__contents")
        .annotate(reader_role=_role_subquery(user_id=user.pk, patient_id=pk))
    )
    if not rows:
        raise Http404(NOT_FOUND)
    patient = rows[0].patient
    assert patient is not None  # the rows name this chart (patient_id=pk)
    contents = patient.contents
    chart = _decide(
        [(r.codename, r.source, r.expires_at, r.group_id is not None) for r in rows],
        user_id=user.pk,
        patient=patient,
        role=rows[0].reader_role,
        present=frozenset(name for name in RECORD_TYPES if getattr(contents, name)),
    )
    if chart is None or not _capable(chart, action):
        raise Http404(NOT_FOUND)
    return chart


def access_patient(
    user: User | AnonymousUser,
    patient_id: Any,
    *,
    codename: str = "view_patient",
    action: Action | None = None,
) -> OpenedChart:
    """open_chart under the house name (`access_<entity>(user, id)`): `codename`
    "view_patient" to read, "change_patient" to add to or correct the chart at all; or
    the `action` meant (Action.RECORD_MEDICATION, Action.CARE_TEAM, ...)."""
    actions = {"view_patient": Action.VIEW, CHANGE_CODENAME: Action.CHANGE}
    if codename not in actions:
        raise ValueError(f"access_patient does not decide {codename!r}")
    return open_chart(user=user, patient_id=patient_id, action=action or actions[codename])


def chart_opened_for(*, user: User | AnonymousUser, patient: Patient) -> OpenedChart | None:
    """The chart of a patient the caller already holds, as `user` may open it in the provider
    portal, the API or FHIR (one query); None if they may not."""
    if not user.is_authenticated or not user.is_active or patient.pk is None:
        return None
    rows = list(
        _staff_grants(user)
        .filter(patient_id=patient.pk)
        .annotate(reader_role=_role_subquery(user_id=user.pk, patient_id=patient.pk))
        .values_list("codename", "source", "expires_at", "group_id", "reader_role")
    )
    return _decide(
        [(codename, source, ends, group is not None) for codename, source, ends, group, _ in rows],
        user_id=user.pk,
        patient=patient,
        role=rows[0][4] if rows else None,
    )


def access_patient_as_owner(user: User | AnonymousUser, patient_id: Any) -> OpenedChart:
    """A registration in the patient portal: the account's own (the whole of it, restricted
    notes included), or one a live proxy grant lets this account see (the grant's
    categories, never a restricted note). 404 otherwise."""
    pk = row_id(patient_id)
    if pk is None or not user.is_authenticated:
        raise Http404("No such record.")
    patient = Patient._base_manager.filter(pk=pk).select_related("hospital").first()
    if patient is None:
        raise Http404("No such record.")
    if patient.user_id == user.pk:
        return _owner_chart(user, patient)
    chart = proxy_chart_for(user=user, patient=patient)
    if chart is None:
        raise Http404("No such record.")
    return chart


def proxy_chart_for(*, user: User, patient: Patient) -> OpenedChart | None:
    """A carer's live proxy grants on one registration (patient portal), in one query."""
    rows = _proxy_grants(user).filter(patient_id=patient.pk)
    return _decide(
        [(*row, False) for row in rows.values_list("codename", "source", "expires_at")],
        user_id=user.pk,
        patient=patient,
        proxy=True,
    )


def _owner_chart(user: User, patient: Patient) -> OpenedChart:
    return OpenedChart(patient=patient, user_id=user.pk, via=Via.OWNER, categories=None)


def owner_charts(*, user: User | AnonymousUser, patients: list[Patient]) -> list[OpenedChart]:
    """The account's own registrations (records.selectors.patient_registrations_for_user),
    opened as their owner's. Refuses (404) any that is not theirs."""
    charts = []
    for patient in patients:
        if not user.is_authenticated or patient.user_id != user.pk:
            raise Http404("No such record.")
        charts.append(_owner_chart(user, patient))
    return charts


def access_record(
    user: User | AnonymousUser, record_type: str, record_id: Any, *, action: Action = Action.VIEW
) -> OpenedRecord:
    """A record the user may open, with its chart: the chart must open to them with the
    record's category covered, and a restricted note must be granted to them; to correct
    it (`action` CHANGE), they must be able to write records of its type. 404 else."""
    model = RECORD_TYPES.get(record_type)
    pk = row_id(record_id)
    if model is None or pk is None:
        raise Http404("No such record.")
    record = (
        model._base_manager.filter(pk=pk).select_related("patient__hospital", "recorded_by").first()
    )
    opened = _record_opened(user, record) if record is not None else None
    if opened is None:
        raise Http404("No such record.")
    if action is Action.CHANGE:
        action = record_action(record_type)
    if not _capable(opened.chart, action):
        raise Http404("No such record.")
    return opened


def _record_opened(user: User | AnonymousUser, record: ClinicalRecord) -> OpenedRecord | None:
    chart = chart_opened_for(user=user, patient=record.patient)
    if chart is None or not chart_shows(chart=chart, record=record):
        return None
    return OpenedRecord(chart=chart, record=record)


def chart_shows(*, chart: OpenedChart, record: ClinicalRecord) -> bool:
    """Whether the opened chart shows this record: it is the chart's, in a category the
    chart covers, and a restricted note only as the reader may see one (chart_records)."""
    chart_required(chart)
    if record.patient_id != chart.patient.pk or not chart.allows(record_category(record)):
        return False
    if isinstance(record, ClinicalNote) and record.restricted:
        return chart_records(chart=chart, model=ClinicalNote).filter(pk=record.pk).exists()
    return True


def access_record_as_owner(
    user: User | AnonymousUser, record_type: str, record_id: Any
) -> OpenedRecord:
    """A record of a registration the patient portal opens to `user`
    (access_patient_as_owner: their own, or a live proxy grant's categories, never a
    restricted note to a proxy), with that chart. 404 otherwise."""
    model = RECORD_TYPES.get(record_type)
    pk = row_id(record_id)
    if model is None or pk is None or not user.is_authenticated:
        raise Http404("No such record.")
    record = model._base_manager.filter(pk=pk).select_related("patient__hospital").first()
    if record is None:
        raise Http404("No such record.")
    chart = access_patient_as_owner(user, record.patient_id)
    if not chart_shows(chart=chart, record=record):
        raise Http404("No such record.")
    return OpenedRecord(chart=chart, record=record)


def chart_narrowed(chart: OpenedChart, *, categories: frozenset[str] | None) -> OpenedChart:
    """The opened chart shown through a narrower lens (an app's scopes): only the
    categories both the grant and `categories` name. It can only ever remove categories,
    never add one; None leaves the chart as it is. What is removed is then `withheld`, as
    any category the grant does not share. Writes are dropped with the narrowing: a lens
    that hides part of a chart must not let its holder add to it unseen."""
    chart_required(chart)
    if categories is None:
        return chart
    unknown = set(categories) - CATEGORY_CODES
    if unknown:
        raise ValueError(f"no such chart categories: {sorted(unknown)}")
    kept = frozenset(categories) if chart.categories is None else chart.categories & categories
    if kept == chart.categories:
        return chart
    return replace(chart, categories=kept, actions=chart.actions & {Action.VIEW})


def object_permissions_for(*, user: User | AnonymousUser, obj: Any) -> frozenset[str]:
    """The codenames `user` holds on `obj` as this module decides them (what
    `user.has_perm(perm, obj)` answers through records.backends.ChartPermissionBackend):

    - a chart (Patient): `view_patient` if it opens to them (whole or in part),
      `view_chart_<category>` for each category they may see, `change_patient` if they may
      add to it; proxy grants and the patient's own account open no chart here;
    - a record: `view_<model>` if they may open it (access_record), `change_<model>` if they
      may also correct it;
    - anything else: nothing.
    """
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    if isinstance(obj, Patient):
        chart = chart_opened_for(user=user, patient=obj)
        if chart is None:
            return frozenset()
        perms = {"view_patient"}
        perms.update(category_codename(c) for c in CATEGORY_CODES if chart.allows(c))
        if chart.can_change:
            perms.add(CHANGE_CODENAME)
        return frozenset(perms)
    if isinstance(obj, ClinicalRecord) and obj.pk is not None:
        record = type(obj)._base_manager.select_related("patient").filter(pk=obj.pk).first()
        opened = _record_opened(user, record) if record is not None else None
        if opened is None:
            return frozenset()
        name = obj._meta.model_name
        changes = [f"change_{name}"] if opened.chart.can_write(type(obj)) else []
        return frozenset({f"view_{name}", *changes})
    return frozenset()


# --- what an opened chart shows -------------------------------------------------------------


def _shown(chart: OpenedChart, model: type[ClinicalRecord]) -> Q | None:
    """The condition on records of `model` for what `chart` shows (its categories, restricted
    notes as the reader may see them), or None when it shows none of them."""
    shown = Q()
    if model is Observation:
        allowed = [code for code, cat in OBSERVATION_CATEGORY.items() if chart.allows(cat)]
        if not allowed:
            return None
        if len(allowed) < len(OBSERVATION_CATEGORY):
            shown &= Q(category__in=allowed)
    elif not chart.allows(MODEL_CATEGORY[model_name(model)]):
        return None
    if model is ClinicalNote and not chart.owner:
        if chart.proxy:
            shown &= Q(restricted=False)
        else:
            granted = LiveGrant.objects.filter(
                user_id=chart.user_id, note_id=OuterRef("pk"), codename=NOTE_CODENAME
            ).exclude(source__startswith=PROXY_PREFIX)
            shown &= Q(restricted=False) | Q(Exists(granted))
    return shown


def chart_records(*, chart: OpenedChart, model: type[ClinicalRecord], **filters: Any) -> QuerySet:
    """Records of one type on an opened chart (every status, or as `filters` say), as far as
    it shows them.

    Reads through the base manager: the chart may be another hospital's (a consent); the
    rows are those of the very patient (and hospital) the chart was opened on.
    """
    chart_required(chart)  # a bare Patient shows nothing
    shown = _shown(chart, model)
    if shown is None:
        return model._base_manager.none()
    patient = chart.patient
    return model._base_manager.filter(
        shown, patient_id=patient.pk, hospital_id=patient.hospital_id, **filters
    )


def charts_records(
    *, charts: list[OpenedChart], model: type[ClinicalRecord], **filters: Any
) -> QuerySet:
    """Records of one type across several charts opened alike (same_view): one query."""
    if not charts:
        raise ChartNotOpened(NOT_FOUND)
    for chart in charts:
        chart_required(chart)
    if not all(charts[0].same_view(c) for c in charts):
        raise ValueError("charts opened with different access")
    shown = _shown(charts[0], model)
    if shown is None:
        return model._base_manager.none()
    return model._base_manager.filter(
        shown, patient_id__in=[c.patient.pk for c in charts], **filters
    )


# --- lists ---------------------------------------------------------------------------------


def patient_visible_q(
    *, user: User, codename: str = "view_patient", among: Sequence[int] | None = None
) -> Q:
    """The condition "user may open this chart" (for another chart codename: "holds it"),
    for querysets of Patient: one EXISTS over the live grants per candidate.

    `among`: the candidates' ids, when the caller has them (a list page's window). Naming
    them inside the EXISTS too lets the planner read just those charts' grants by index;
    without it, it may read and hash all of the user's grants (every chart of a hospital)."""
    codenames = VIEW_CODENAMES if codename == "view_patient" else (codename,)
    grants = _staff_grants(user).filter(patient_id=OuterRef("pk"), codename__in=codenames)
    if among is not None:
        grants = grants.filter(patient_id__in=list(among))
    return Q(Exists(grants))


def visible_patients(*, user: User) -> QuerySet[Patient]:
    """Every chart the user may open (any hospital's), for lists: the same rule as
    open_chart. Reads through the base manager: the grants alone decide."""
    return Patient._base_manager.filter(patient_visible_q(user=user))


def emergency_q(*, user: User) -> Q:
    """For querysets of Patient: the user holds a live break-glass grant on it."""
    grants = LiveGrant.objects.filter(
        user_id=user.pk, patient_id=OuterRef("pk"), source__startswith=BREAK_GLASS_PREFIX
    )
    return Q(Exists(grants))


def chart_reopened(chart: OpenedChart, **changes: Any) -> OpenedChart:
    """A copy of an opened chart with reading hints changed (tests, readers): never its
    access."""
    allowed = {"present"}
    if set(changes) - allowed:
        raise ValueError("only the reading hints of an opened chart may change")
    return replace(chart, **changes)
