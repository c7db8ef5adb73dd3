"""Who is calling the FHIR interface, and what they may reach through it: one value, the
FhirCaller, that every FHIR view takes.

A caller is staff (a member of the hospital the request acts in, signed in with two
factors, or with a staff token issued after two factors) or a patient (an account with a
registration: its own registrations, and the ones a live proxy grant shares with it, as the
patient portal opens them). The gate is the portal's (accounts.gates.entry_refusal, through
the API's StaffAccess and PatientAccess); which charts and which parts of them is the access
module's (records.access: access_patient for staff, access_patient_as_owner for patients),
narrowed, never widened, by what the credential itself is limited to:

- `resource_types`: the FHIR types it may read (None: every type the role allows); a
  search of another type is a 403 "insufficient scope", a read of one a 404;
- `categories`: the chart categories it may read (None: no narrowing), applied through
  records.access.chart_narrowed, so what is cut off is `withheld` like any category the
  grant does not share (a partial-chart outcome);
- `patient_id`: the one patient a launch context names (None: no such limit); any other
  chart is a 404;
- `app` / `client_id`: the third-party app the request comes through (None for the
  portal's own sessions and API tokens); reads through an app are recorded with its client
  id, so the patient's access log names the app.

The portal's own credentials (a session, an API token) carry no such limit. An OAuth
access token (SMART App Launch) is a further branch of `caller_token_checked`,
`caller_audience` and `fhir_caller`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from django.contrib.auth.models import User
from django.http import Http404
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.views import APIView

from portal.api.authentication import membership_for_request
from portal.api.base import PatientAccess, StaffAccess, api_token_checked
from portal.api.models import ApiToken, TokenAudience
from portal.ids import row_id
from portal.records import access as records_access
from portal.records.access import OpenedChart, OpenedRecord
from portal.records.models import model_name
from portal.smart.authentication import smart_grant
from portal.tenancy.models import Hospital, Membership

CallerAudience = Literal["staff", "patient"]
STAFF: CallerAudience = "staff"
PATIENT: CallerAudience = "patient"


@dataclass(frozen=True)
class FhirCaller:
    """Who calls, and the limits of the credential they call with (see the module)."""

    user: User
    audience: CallerAudience
    membership: Membership | None = None  # staff: the membership the request acts in
    resource_types: frozenset[str] | None = None
    categories: frozenset[str] | None = None
    patient_id: int | None = None
    app: str | None = None  # the app's name, for pages
    client_id: str | None = None  # the app's client id, for access events

    @property
    def staff(self) -> bool:
        return self.audience == STAFF

    @property
    def hospital(self) -> Hospital | None:
        return self.membership.hospital if self.membership is not None else None

    def reads_type(self, resource_type: str) -> bool:
        """Whether the credential reaches resources of this FHIR type at all."""
        return self.resource_types is None or resource_type in self.resource_types


# --- the gate -----------------------------------------------------------------------------


def caller_token_checked(request: Request, audience: CallerAudience) -> bool:
    """Whether the request came with a token that its own rule accepted for `audience`
    (tokens carry their own second factor): an API token acts only as whom it was issued
    for (api.selectors.token_refusal; a refusal is a 403 that says why)."""
    grant = smart_grant(request)
    if grant is not None:
        # A SMART token acts as whom it was authorized for; a staff one exists only from a
        # session verified with two factors (SmartAuthorization.two_factor, a constraint).
        authorization = grant.authorization
        if authorization.audience != audience:
            return False
        return audience != STAFF or authorization.two_factor
    wanted = TokenAudience.STAFF if audience == STAFF else TokenAudience.PATIENT
    return api_token_checked(request, wanted)


def caller_audience(request: Request) -> CallerAudience:
    """Whom the request acts as: a token's audience (a staff token never acts as a patient
    nor the other way round); a session's account acts as staff when it holds an active
    membership (as the FHIR interface always did), else as a patient."""
    if isinstance(request.auth, ApiToken):
        return STAFF if request.auth.audience == TokenAudience.STAFF else PATIENT
    grant = smart_grant(request)
    if grant is not None:
        return STAFF if grant.authorization.audience == STAFF else PATIENT
    user = request.user
    default = getattr(request, "membership", None)
    return STAFF if membership_for_request(request, user=user, session_default=default) else PATIENT


class _FhirStaffAccess(StaffAccess):
    def token_checked(self, request: Request) -> bool:
        return caller_token_checked(request, STAFF)


class _FhirPatientAccess(PatientAccess):
    message = "This FHIR endpoint is for hospital staff and for patients."

    def token_checked(self, request: Request) -> bool:
        return caller_token_checked(request, PATIENT)


class FhirAccess(permissions.BasePermission):
    """Staff (as StaffAccess admits them: two factors, an active membership, in the hospital
    the request picks) or patients (as PatientAccess admits them: an account with a
    registration; proxies are patients too, consent.selectors.proxy_eligible), through the
    portal's one gate. Leaves the caller on `request.fhir_caller`."""

    message = StaffAccess.message

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not request.user.is_authenticated:
            return False
        audience = caller_audience(request)
        gate: StaffAccess | PatientAccess
        gate = _FhirStaffAccess() if audience == STAFF else _FhirPatientAccess()
        allowed = gate.has_permission(request, view)
        if not allowed:
            self.message = getattr(gate, "message", self.message)
            if getattr(gate, "code", None):
                self.code = gate.code
            return False
        request.fhir_caller = fhir_caller(request, audience=audience)
        return True


class FhirStaffOnly(permissions.BasePermission):
    """What only staff may do through FHIR (imports): a patient caller gets a 403."""

    message = "Only hospital staff may write through FHIR."

    def has_permission(self, request: Request, view: APIView) -> bool:
        caller = getattr(request, "fhir_caller", None)
        return caller is not None and caller.staff and caller.app is None


def fhir_caller(request: Request, *, audience: CallerAudience | None = None) -> FhirCaller:
    """The caller of an admitted request, from what DRF authenticated: the portal session
    or an API token, as staff (with the membership StaffAccess resolved) or as a patient."""
    caller = getattr(request, "fhir_caller", None)
    if isinstance(caller, FhirCaller):
        return caller
    audience = audience or caller_audience(request)
    grant = smart_grant(request)
    if grant is not None:
        return _smart_caller(request, grant, audience)
    if audience == STAFF:
        return FhirCaller(user=request.user, audience=STAFF, membership=request.membership)
    return FhirCaller(user=request.user, audience=PATIENT)


def _smart_caller(request: Request, grant: Any, audience: CallerAudience) -> FhirCaller:
    """A SMART token's caller: the person who authorized the app, limited to the types and
    categories its scopes name, and to the launch patient: a patient's app to the
    registration they chose; a staff app launched on a chart to that chart, unless it holds
    user/ scopes (then what the clinician may see)."""
    authorization, scopes = grant.authorization, grant.access
    membership = request.membership if audience == STAFF else None
    if membership is not None and membership.hospital_id != authorization.hospital_id:
        raise Http404("No such resource.")  # X-Hospital names another hospital than the app's
    patient_id = authorization.patient_id
    if audience == STAFF and "user" in scopes.levels():
        patient_id = None
    types = scopes.resource_types()
    return FhirCaller(
        user=request.user, audience=audience, membership=membership,
        resource_types=frozenset(types) if types is not None else None,
        categories=scopes.chart_categories(), patient_id=patient_id,
        app=grant.app_name, client_id=grant.client_id,
    )  # fmt: skip


def caller_hospital_ids(request: Request) -> list[int]:
    """The hospitals whose rows an admitted request may touch (its tenant scope): the active
    hospital for staff; a patient's registrations' hospitals (as the patient side of the
    API). A proxy's charts are read through the access module, whatever their hospital."""
    caller = fhir_caller(request)
    if caller.staff:
        assert caller.membership is not None  # StaffAccess resolved it
        return [caller.membership.hospital_id]
    return sorted({p.hospital_id for p in request.patient_registrations})


# --- what a caller opens --------------------------------------------------------------------


def _launch_allows(caller: FhirCaller, patient_id: Any) -> bool:
    return caller.patient_id is None or row_id(patient_id) == caller.patient_id


def fhir_chart_open(*, caller: FhirCaller, patient_id: Any) -> OpenedChart:
    """The chart `patient_id` as the caller may read it through FHIR, or 404: opened by the
    access module (staff: access_patient; patients: access_patient_as_owner, their own
    registrations and proxy grants as the patient portal opens them), then narrowed to
    the credential's categories (records.access.chart_narrowed: never wider)."""
    if not _launch_allows(caller, patient_id):
        raise Http404("No such patient.")
    if caller.staff:
        chart = records_access.access_patient(caller.user, patient_id)
    else:
        chart = records_access.access_patient_as_owner(caller.user, patient_id)
    return records_access.chart_narrowed(chart, categories=caller.categories)


def fhir_record_open(*, caller: FhirCaller, model: type, record_id: Any) -> OpenedRecord:
    """A record the caller may read through FHIR with its (narrowed) chart, or 404."""
    if caller.staff:
        opened = records_access.access_record(caller.user, model_name(model), record_id)
    else:
        opened = records_access.access_record_as_owner(caller.user, model_name(model), record_id)
    if not _launch_allows(caller, opened.chart.patient_id):
        raise Http404("No such record.")
    chart = records_access.chart_narrowed(opened.chart, categories=caller.categories)
    if not records_access.chart_shows(chart=chart, record=opened.record):
        raise Http404("No such record.")
    return OpenedRecord(chart=chart, record=opened.record)


def fhir_owner_may(*, caller: FhirCaller, chart: OpenedChart) -> bool:
    """Whether the caller may read what belongs to the patient rather than to the chart
    (their consents, who read their records): staff who opened the chart, and the patient
    themselves; a proxy shares only the chart's categories its grant names."""
    return caller.staff or chart.owner
