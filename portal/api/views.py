"""The REST API (/api/v1/). Views stay thin: the portals' forms validate, the records and
consent services write, their selectors read and decide access (404 for missing, forbidden
and other hospitals' ids alike), and staff reads of charts, records and documents record the
provider portal's access events."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.forms.models import model_to_dict
from django.http import Http404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from consent import selectors as consent_selectors
from consent import services as consent_services
from consent.models import ProxyInvitation, Purpose
from portal.api import serializers as out
from portal.api.authentication import HOSPITAL_HEADER
from portal.api.base import (
    ApiView,
    add_form_errors,
    decode_cursor,
    encode_cursor,
    form_serializer,
    form_validate,
    list_page,
    page_response,
    queryset_page,
)
from portal.patient import forms as patient_forms
from portal.provider import forms as provider_forms
from portal.provider.views import access_event
from portal.records import access, search, services
from portal.records.categories import CHART_CATEGORIES
from portal.records.chart import chart_for, records_by_category
from portal.records.models import ClinicalNote, Document, RecordStatus
from portal.tenancy.models import Hospital

# --- schema helpers --------------------------------------------------------------------------

ERR = out.ErrorSerializer
HOSPITAL_PARAM = OpenApiParameter(
    HOSPITAL_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="Slug of one of your own hospitals to act in (token requests default to "
    "your first membership, session requests to the portal's active hospital).",
)  # fmt: skip
CURSOR_PARAM = OpenApiParameter(
    "cursor", OpenApiTypes.STR, description="Opaque cursor from a previous page's next/previous."
)
PATIENT_ID = OpenApiParameter("patient_id", OpenApiTypes.INT, OpenApiParameter.PATH)
RECORD_ID = OpenApiParameter("record_id", OpenApiTypes.INT, OpenApiParameter.PATH)
CREATABLE_TYPES = sorted(t for t in access.RECORD_TYPES if t != "document")
CORRECTABLE_TYPES = sorted([*provider_forms.RECORD_FORM_FIELDS, "observation"])


def _type_param(choices: list[str]) -> OpenApiParameter:
    return OpenApiParameter("record_type", OpenApiTypes.STR, OpenApiParameter.PATH, enum=choices)


def _uuid_param(name: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.UUID, OpenApiParameter.PATH)


def doc(
    *, summary: str, tag: str, response: Any, status: int = 200, request: Any = None,
    parameters: tuple = (), errors: tuple[int, ...] = (401, 403, 404), description: str = "",
) -> Any:  # fmt: skip
    messages = {
        400: "Invalid input (field errors in detail).",
        401: "No or an invalid token or session.",
        403: "Not for this kind of account or token (staff endpoints take staff tokens issued "
        "after two factors, the others patient tokens), a session without two factors, or "
        "an X-Hospital you are not a member of.",
        404: "Missing, not yours to see, or another hospital's (never told apart).",
        429: "Too many attempts: locked for a while (Retry-After says how long).",
    }
    codes = set(errors) | {400}
    responses = {status: response, **{c: OpenApiResponse(ERR, messages[c]) for c in codes}}
    params = [*parameters, *([HOSPITAL_PARAM] if tag == "staff" else [])]
    return extend_schema(
        summary=summary, description=description or None, tags=[tag], request=request,
        responses=responses, parameters=params,
    )  # fmt: skip


def _validation(exc: DjangoValidationError):
    return add_form_errors(exc)


def _hospital_pk(data: Any) -> Any:
    """Forms name hospitals by id; the API by slug."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    slug = data.get("hospital")
    if isinstance(slug, str) and slug:
        hospital = Hospital.objects.filter(slug=slug[:50]).first()
        data["hospital"] = hospital.pk if hospital else "0"
    elif slug is not None:
        data["hospital"] = "0"
    return data


def _scope_all(data: Any) -> Any:
    if isinstance(data, dict) and isinstance(data.get("scope_all", True), bool):
        data = {**data, "scope_all": "all" if data.get("scope_all", True) else "some"}
    return data


# --- staff: patients -------------------------------------------------------------------------

PatientRegisterIn = form_serializer("PatientRegisterIn", provider_forms.PatientRegisterForm)


class PatientListView(ApiView):
    @doc(
        summary="Patients you may open at the hospital (newest first)", tag="staff",
        response=out.PatientPageSerializer, errors=(401, 403),
        parameters=(
            OpenApiParameter("q", OpenApiTypes.STR, description="MRN, family name, given "
                             "name or 'given family', matched exactly."),
            CURSOR_PARAM,
        ),
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        form = form_validate(
            provider_forms.PatientSearchForm, {"q": request.query_params.get("q", "")}
        )
        cursor = decode_cursor(request, "ba")
        page = search.patient_page_for_user(
            user=request.user, hospital=request.hospital, query=form.cleaned_data["q"],
            before=cursor[1] if cursor and cursor[0] == "b" else None,
            after=cursor[1] if cursor and cursor[0] == "a" else None,
        )  # fmt: skip
        for patient in page.patients:
            patient.hospital = request.hospital
        return page_response(
            request,
            [out.patient_data(p) for p in page.patients],
            next_cursor=encode_cursor("b", page.older) if page.older else None,
            prev_cursor=encode_cursor("a", page.newer) if page.newer else None,
        )

    @doc(
        summary="Register a patient at the hospital", tag="staff", request=PatientRegisterIn,
        response=out.PatientSerializer, status=201, errors=(401, 403),
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        form = form_validate(provider_forms.PatientRegisterForm, request.data)
        try:
            patient = services.patient_register(
                hospital=request.hospital, actor=request.user, **form.cleaned_data
            )
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        return Response(out.patient_data(patient), status=201)


def _open_chart(request: Request, patient_id: Any):
    """The chart, opened as the provider portal opens it: a chart.read access event."""
    with transaction.atomic():
        opened = access.access_patient(request.user, patient_id)
        access_event(request, kind="chart.read", chart=opened)
    return opened


class PatientDetailView(ApiView):
    @doc(
        summary="One patient (a chart read)", tag="staff", response=out.PatientSerializer,
        parameters=(PATIENT_ID,),
    )  # fmt: skip
    def get(self, request: Request, patient_id: int) -> Response:
        return Response(out.patient_data(_open_chart(request, patient_id).patient))


class ChartView(ApiView):
    @doc(
        summary="Chart summary: problems, medications, allergies, series, timeline",
        tag="staff", response=out.ChartSerializer, parameters=(PATIENT_ID,),
    )  # fmt: skip
    def get(self, request: Request, patient_id: int) -> Response:
        opened = _open_chart(request, patient_id)
        chart = chart_for(chart=opened)
        return Response(out.chart_data(chart, access=opened, can_change=opened.can_change))


# --- staff: records --------------------------------------------------------------------------

RECORD_IN = {
    "observation": form_serializer("ObservationIn", provider_forms.ObservationForm),
    "clinicalnote": form_serializer("ClinicalNoteIn", provider_forms.NoteForm),
    **{
        t: form_serializer(f"{access.RECORD_TYPES[t].__name__}In",
                           provider_forms.record_form_class(t))
        for t in provider_forms.RECORD_FORM_FIELDS if t != "clinicalnote"
    },
}  # fmt: skip
RECORD_CORRECT_IN = {
    **RECORD_IN,
    "observation": form_serializer(
        "ObservationCorrectIn", provider_forms.ObservationForm, skip=("code",)
    ),
    "clinicalnote": form_serializer(
        "ClinicalNoteCorrectIn", provider_forms.record_form_class("clinicalnote")
    ),
}


def _record_body(name: str, bodies: dict[str, type]) -> Any:
    from drf_spectacular.utils import PolymorphicProxySerializer

    return PolymorphicProxySerializer(
        component_name=name, serializers=list(bodies.values()), resource_type_field_name=None,
        many=False,
    )  # fmt: skip


def _model(record_type: str, allowed: list[str]):
    if record_type not in allowed:
        raise Http404("No such record type.")
    return access.RECORD_TYPES[record_type]


class RecordListView(ApiView):
    @doc(
        summary="Records of one type on a chart (a chart read), newest first", tag="staff",
        response=out.RecordPageSerializer,
        parameters=(
            PATIENT_ID, _type_param(sorted(access.RECORD_TYPES)), CURSOR_PARAM,
            OpenApiParameter("status", OpenApiTypes.STR, enum=["active", "all"],
                             description="active (default) or all versions."),
        ),
    )  # fmt: skip
    def get(self, request: Request, patient_id: int, record_type: str) -> Response:
        model = _model(record_type, list(access.RECORD_TYPES))
        status = request.query_params.get("status", "active")
        if status not in ("active", "all"):
            raise exceptions.ValidationError({"status": ["Use active or all."]})
        opened = _open_chart(request, patient_id)
        qs = access.chart_records(chart=opened, model=model)
        if status == "active":
            qs = qs.filter(status=RecordStatus.ACTIVE)
        if model is Document:
            qs = qs.defer("content")
        rows, next_cursor, prev_cursor = queryset_page(request, qs)
        return page_response(
            request, [out.record_data(r) for r in rows],
            next_cursor=next_cursor, prev_cursor=prev_cursor,
        )  # fmt: skip

    @doc(
        summary="Add a record to a chart (validated as in the provider portal)", tag="staff",
        request=_record_body("RecordIn", RECORD_IN), response=out.RecordSerializer, status=201,
        parameters=(PATIENT_ID, _type_param(CREATABLE_TYPES)),
        description="Observations take a LOINC code from the portal's catalogue, its unit "
        "and a plausible value; documents are uploaded in the provider portal.",
    )  # fmt: skip
    def post(self, request: Request, patient_id: int, record_type: str) -> Response:
        model = _model(record_type, CREATABLE_TYPES)
        patient = access.access_patient(request.user, patient_id, codename="change_patient").patient
        try:
            record = _create(request, patient, record_type, model)
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        return Response(out.record_data(record), status=201)


def _create(request: Request, patient, record_type: str, model):
    if record_type == "observation":
        data = form_validate(provider_forms.ObservationForm, request.data).cleaned_data
        measure = data["measure"]
        return services.observation_create(
            actor=request.user, patient=patient, code=data["code"], display=measure.display,
            value=data["value"], unit=data["unit"], effective_at=data["effective_at"],
            category=measure.category,
        )  # fmt: skip
    if record_type == "clinicalnote":
        data = form_validate(provider_forms.NoteForm, request.data).cleaned_data
        return services.record_create(actor=request.user, patient=patient, model=ClinicalNote,
                                      **data)  # fmt: skip
    form_class = provider_forms.record_form_class(record_type)
    form = form_validate(form_class, request.data)
    values = {name: form.cleaned_data[name] for name in form_class.Meta.fields}
    return services.record_create(actor=request.user, patient=patient, model=model, **values)


class RecordDetailView(ApiView):
    @doc(
        summary="One record (a record read; a document's content is included, a "
        "document read)", tag="staff", response=out.RecordSerializer,
        parameters=(_type_param(sorted(access.RECORD_TYPES)), RECORD_ID),
    )  # fmt: skip
    def get(self, request: Request, record_type: str, record_id: int) -> Response:
        with transaction.atomic():
            opened = access.access_record(request.user, record_type, record_id)
            record = opened.record
            kind = "document.read" if isinstance(record, Document) else "record.read"
            access_event(request, kind=kind, chart=opened.chart, record=record)
        return Response(out.record_data(record, content=True))


class RecordCorrectView(ApiView):
    @doc(
        summary="Correct a record: a new version replaces it, the old one is kept as "
        "entered in error", tag="staff", request=_record_body("RecordCorrectIn",
                                                                RECORD_CORRECT_IN),
        response=out.RecordSerializer, status=201,
        parameters=(_type_param(CORRECTABLE_TYPES), RECORD_ID),
        description="Fields left out keep the corrected version's values.",
    )  # fmt: skip
    def post(self, request: Request, record_type: str, record_id: int) -> Response:
        _model(record_type, CORRECTABLE_TYPES)
        record = access.access_record(request.user, record_type, record_id).record
        access.access_patient(request.user, record.patient_id, codename="change_patient")
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError(
                {"non_field_errors": ["The body must be a JSON object."]}
            )
        if record_type == "observation":
            initial = {"value": record.value, "unit": record.unit,
                       "effective_at": record.effective_at}  # fmt: skip
            form = form_validate(
                provider_forms.ObservationForm, {**initial, **request.data}, fixed_code=record.code
            )
            fields = ("value", "unit", "effective_at")
        else:
            form_class = provider_forms.record_form_class(record_type)
            initial = model_to_dict(record, fields=form_class.Meta.fields)
            form = form_validate(form_class, {**initial, **request.data})
            fields = form_class.Meta.fields
        changes = {name: form.cleaned_data[name] for name in fields}
        try:
            new = services.record_correct(actor=request.user, record=record, **changes)
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        return Response(out.record_data(new), status=201)


# --- staff: sharing, requests, break-glass ---------------------------------------------------


class SharedView(ApiView):
    @doc(
        summary="Other hospitals' charts you may open now (consents, live break-glass)",
        tag="staff", response=out.PatientPageSerializer, errors=(401, 403),
        parameters=(CURSOR_PARAM,),
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        patients = search.patients_shared_with_user(
            user=request.user, exclude_hospital=request.hospital
        )
        rows, next_cursor, prev_cursor = list_page(request, patients)
        return page_response(
            request, [out.patient_data(p) for p in rows],
            next_cursor=next_cursor, prev_cursor=prev_cursor,
        )  # fmt: skip


def _practitioners_only(request: Request) -> None:
    """Break-glass and access requests are for clinicians and nurses (403 otherwise, as for
    an account of the wrong kind)."""
    if not consent_selectors.membership_is_practitioner(membership=request.membership):
        raise exceptions.PermissionDenied("This endpoint is for clinicians and nurses.")


AccessRequestIn = form_serializer(
    "AccessRequestIn", provider_forms.AccessRequestForm,
    hospital=serializers.CharField(help_text="Slug of the hospital where the patient is "
                                   "registered."),
    purpose=serializers.ChoiceField(choices=Purpose.choices),
)  # fmt: skip


class AccessRequestListView(ApiView):
    @doc(
        summary="Your access requests", tag="staff", response=out.AccessRequestPageSerializer,
        errors=(401, 403), parameters=(CURSOR_PARAM,),
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        rows, next_cursor, prev_cursor = list_page(
            request, consent_selectors.access_requests_by_user(user=request.user)
        )
        return page_response(
            request, [out.access_request_data(r) for r in rows],
            next_cursor=next_cursor, prev_cursor=prev_cursor,
        )  # fmt: skip

    @doc(
        summary="Ask a patient for access to their records at another hospital", tag="staff",
        request=AccessRequestIn, response=out.AccessRequestSerializer, status=202,
        errors=(401, 403),
        description="The answer is the same whether or not the details match a patient "
        "with a portal account (no probing); the patient's answer appears in the list.",
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        _practitioners_only(request)
        data = form_validate(provider_forms.AccessRequestForm, _hospital_pk(request.data))
        data = data.cleaned_data
        try:
            created = consent_services.access_request_create(
                requester=request.user, requester_hospital=request.hospital,
                patient_hospital=data["hospital"], mrn=data["mrn"],
                birth_date=data["birth_date"], purpose=data["purpose"],
            )  # fmt: skip
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        created.requester_hospital = request.hospital
        return Response(out.access_request_data(created), status=202)


BreakGlassIn = form_serializer(
    "BreakGlassIn", provider_forms.BreakGlassForm,
    hospital=serializers.CharField(help_text="Slug of the hospital where the patient is "
                                   "registered."),
)  # fmt: skip


class BreakGlassView(ApiView):
    @doc(
        summary="Emergency (break-glass) access to a chart, for 4 hours", tag="staff",
        request=BreakGlassIn, response=out.BreakGlassResultSerializer, status=201,
        errors=(401, 403, 429),
        description="For clinicians and nurses. Every read is flagged, and the patient and "
        "the hospital are told. Answers 200 with break_glass false if you already have "
        "access. Details that match no patient are recorded; after 5 of them in 15 minutes "
        "break-glass is locked for you for 15 minutes (429).",
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        _practitioners_only(request)
        data = form_validate(provider_forms.BreakGlassForm, _hospital_pk(request.data))
        data = data.cleaned_data
        try:
            outcome = consent_services.break_glass_attempt(
                user=request.user, user_hospital=request.hospital,
                patient_hospital=data["hospital"], mrn=data["mrn"],
                birth_date=data["birth_date"], reason=data["reason"],
            )  # fmt: skip
        except consent_services.BreakGlassLocked as exc:
            wait = max(1, int((exc.until - timezone.now()).total_seconds()) + 1)
            raise exceptions.Throttled(wait=wait, detail=exc.message) from None
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        if outcome.glass is None:
            result = {"patient": outcome.patient.pk, "break_glass": False, "expires_at": None,
                      "message": "You already have access to this chart."}  # fmt: skip
            return Response(result, status=200)
        result = {
            "patient": outcome.patient.pk, "break_glass": True,
            "expires_at": outcome.glass.expires_at.isoformat(),
            "message": "Emergency access granted for 4 hours. Every read is flagged and the "
            "patient and the hospital are told.",
        }  # fmt: skip
        return Response(result, status=201)


# --- patients ---------------------------------------------------------------------------------


def _owned(request: Request) -> list:
    return access.owner_charts(user=request.user, patients=list(request.patient_registrations))


class MyRegistrationsView(ApiView):
    audience = "patient"

    @doc(
        summary="My registrations at every hospital", tag="patient",
        response=out.PatientPageSerializer, errors=(401, 403), parameters=(CURSOR_PARAM,),
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        rows, next_cursor, prev_cursor = list_page(request, request.patient_registrations)
        return page_response(
            request, [out.patient_data(p) for p in rows],
            next_cursor=next_cursor, prev_cursor=prev_cursor,
        )  # fmt: skip


class MyRecordsView(ApiView):
    audience = "patient"

    @doc(
        summary="My records of one category, across my registrations, newest first",
        tag="patient", response=out.RecordPageSerializer, errors=(401, 403),
        parameters=(
            OpenApiParameter("category", OpenApiTypes.STR, enum=out.CATEGORY_CHOICES,
                             description="Default: vitals."),
            CURSOR_PARAM,
        ),
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        category = request.query_params.get("category") or "vitals"
        if category not in dict(CHART_CATEGORIES):
            raise exceptions.ValidationError(
                {"category": [f"Choose one of: {', '.join(out.CATEGORY_CHOICES)}."]}
            )
        view = records_by_category(charts=_owned(request), category=category)
        rows, next_cursor, prev_cursor = list_page(request, view.records)
        return page_response(
            request, [out.record_data(r) for r in rows],
            next_cursor=next_cursor, prev_cursor=prev_cursor,
        )  # fmt: skip


class MyAccessLogView(ApiView):
    audience = "patient"

    @doc(
        summary="Who opened my records (staff reads and break-glass), newest first",
        tag="patient", response=out.AccessLogPageSerializer, errors=(401, 403),
        parameters=(CURSOR_PARAM,),
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        entries = consent_selectors.access_log_for_owner(
            user=request.user, patients=request.patient_registrations
        )
        rows, next_cursor, prev_cursor = list_page(request, entries)
        return page_response(
            request, [out.access_entry_data(e) for e in rows],
            next_cursor=next_cursor, prev_cursor=prev_cursor,
        )  # fmt: skip


_SCOPE_ALL = serializers.BooleanField(
    required=False, default=True, help_text="true: all records (except restricted notes); "
    "false: only the categories listed.",
)  # fmt: skip
ConsentIn = form_serializer("ConsentIn", patient_forms.ConsentForm, scope_all=_SCOPE_ALL)


class MyConsentsView(ApiView):
    audience = "patient"

    @doc(
        summary="Every consent I gave, newest first", tag="patient",
        response=out.ConsentPageSerializer, errors=(401, 403), parameters=(CURSOR_PARAM,),
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        rows, next_cursor, prev_cursor = list_page(
            request, consent_selectors.consents_for_owner(user=request.user)
        )
        return page_response(
            request, [out.consent_data(c) for c in rows],
            next_cursor=next_cursor, prev_cursor=prev_cursor,
        )  # fmt: skip

    @doc(
        summary="Share (part of) one registration's records", tag="patient",
        request=ConsentIn, response=out.ConsentSerializer, status=201, errors=(401, 403),
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        form = form_validate(patient_forms.ConsentForm, _scope_all(request.data),
                             user=request.user)  # fmt: skip
        data = form.cleaned_data
        try:
            consent = consent_services.consent_grant(
                patient=data["registration"], actor=request.user,
                grantee_kind=data["grantee_kind"], grantee_hospital=data["grantee_hospital"],
                grantee_department=data["grantee_department"], grantee_user=data["grantee_user"],
                scope_all=data["scope_all"], categories=data["categories"],
                restricted_notes=data["restricted_notes"], purpose=data["purpose"],
                period_start=data["period_start_at"], period_end=data["period_end_at"],
            )  # fmt: skip
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        consent = consent_selectors.access_consent(request.user, consent.row_uuid)
        return Response(out.consent_data(consent), status=201)


class MyConsentRevokeView(ApiView):
    audience = "patient"

    @doc(
        summary="Revoke a consent (access ends now)", tag="patient", request=None,
        response=out.ConsentSerializer, parameters=(_uuid_param("consent_id"),),
    )  # fmt: skip
    def post(self, request: Request, consent_id) -> Response:
        consent = consent_selectors.access_consent(request.user, consent_id)
        try:
            consent = consent_services.consent_revoke(consent=consent, actor=request.user)
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        return Response(
            out.consent_data(consent_selectors.access_consent(request.user, consent.row_uuid))
        )


DecisionIn = form_serializer("DecisionIn", patient_forms.DecisionForm, scope_all=_SCOPE_ALL)


class MyAccessRequestsView(ApiView):
    audience = "patient"

    @doc(
        summary="Access requests addressed to me (pending by default)", tag="patient",
        response=out.OwnerAccessRequestPageSerializer, errors=(401, 403),
        parameters=(
            OpenApiParameter("status", OpenApiTypes.STR, enum=["pending", "all"]),
            CURSOR_PARAM,
        ),
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        status = request.query_params.get("status", "pending")
        if status not in ("pending", "all"):
            raise exceptions.ValidationError({"status": ["Use pending or all."]})
        found = consent_selectors.access_requests_for_owner(user=request.user)
        if status == "pending":
            found = [r for r in found if r.state == "pending"]
        rows, next_cursor, prev_cursor = list_page(request, found)
        return page_response(
            request, [out.owner_access_request_data(r) for r in rows],
            next_cursor=next_cursor, prev_cursor=prev_cursor,
        )  # fmt: skip


class MyAccessRequestDecideView(ApiView):
    audience = "patient"

    @doc(
        summary="Approve (a consent to the requester) or deny an access request",
        tag="patient", request=DecisionIn, response=out.OwnerAccessRequestSerializer,
        parameters=(_uuid_param("request_id"),),
    )  # fmt: skip
    def post(self, request: Request, request_id) -> Response:
        access_request = consent_selectors.access_access_request(request.user, request_id)
        data = form_validate(patient_forms.DecisionForm, _scope_all(request.data)).cleaned_data
        try:
            consent_services.access_request_decide(
                request=access_request, actor=request.user,
                approve=data["decision"] == "approve", scope_all=data["scope_all"],
                categories=data["categories"], period_end=data["period_end_at"],
            )  # fmt: skip
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        decided = next(
            r for r in consent_selectors.access_requests_for_owner(user=request.user)
            if r.pk == access_request.pk
        )  # fmt: skip
        return Response(out.owner_access_request_data(decided))


ProxyIn = form_serializer("ProxyIn", patient_forms.ProxyForm, scope_all=_SCOPE_ALL)


class MyProxiesView(ApiView):
    audience = "account"

    @doc(
        summary="Proxy access I gave or invited (direction=given), hold for someone else "
        "(received), or am invited to (invited)",
        tag="patient", response=out.ProxyGrantPageSerializer, errors=(401, 403),
        parameters=(
            OpenApiParameter(
                "direction", OpenApiTypes.STR, enum=["given", "received", "invited"]
            ),
            CURSOR_PARAM,
        ),
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        direction = request.query_params.get("direction", "given")
        if direction not in ("given", "received", "invited"):
            raise exceptions.ValidationError({"direction": ["Use given, received or invited."]})
        if direction == "given":
            grants = consent_selectors.proxy_grants_given(user=request.user)
            for grant in grants:
                grant.grantor = request.user
            invitations = consent_selectors.proxy_invitations_given(user=request.user)
            for invitation in invitations:
                invitation.grantor = request.user
            rows = [(g.created_at, out.proxy_grant_data(g)) for g in grants]
            rows += [
                (i.created_at, out.proxy_invitation_data(i, status=i.grantor_state))
                for i in invitations
            ]
            items = [data for _, data in sorted(rows, key=lambda r: r[0], reverse=True)]
        elif direction == "received":
            grants = consent_selectors.proxy_grants_received(user=request.user)
            for grant in grants:
                grant.proxy = request.user
            items = [out.proxy_grant_data(g) for g in grants]
        else:
            items = [
                out.proxy_invitation_data(i, status="invited")
                for i in consent_selectors.proxy_invitations_received(user=request.user)
            ]
        rows, next_cursor, prev_cursor = list_page(request, items)
        return page_response(request, rows, next_cursor=next_cursor, prev_cursor=prev_cursor)

    @doc(
        summary="Invite another account holder to see my records", tag="patient",
        request=ProxyIn, response=out.ProxyGrantSerializer, status=201, errors=(401, 403),
        description="Creates an invitation to that username, whether or not an account by "
        "that name exists or may be a proxy (the answer is the same): it shows as invited "
        "until the account accepts it, if it exists and belongs to a patient who is nobody's "
        "staff, and expires after 14 days otherwise.",
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        data = form_validate(patient_forms.ProxyForm, _scope_all(request.data)).cleaned_data
        try:
            invitation = consent_services.proxy_invite(
                grantor=request.user, proxy_username=data["proxy_username"],
                relationship=data["relationship"], scope_all=data["scope_all"],
                categories=data["categories"], period_end=data["period_end_at"],
            )  # fmt: skip
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        return Response(
            out.proxy_invitation_data(invitation, status=invitation.grantor_state), status=201
        )


class MyProxyAcceptView(ApiView):
    audience = "account"

    @doc(
        summary="Accept an invitation to be someone's proxy", tag="patient", request=None,
        response=out.ProxyGrantSerializer, errors=(401, 403, 404),
        parameters=(_uuid_param("grant_id"),),
    )  # fmt: skip
    def post(self, request: Request, grant_id) -> Response:
        invitation = consent_selectors.access_proxy_invitation(request.user, grant_id)
        try:
            grant = consent_services.proxy_accept(invitation=invitation, actor=request.user)
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        grant = consent_selectors.access_proxy_grant(request.user, grant.row_uuid)
        return Response(out.proxy_grant_data(grant))


class MyProxyRevokeView(ApiView):
    audience = "account"

    @doc(
        summary="End a proxy grant or invitation (the patient revokes or withdraws it; the "
        "proxy steps down or declines)", tag="patient",
        request=None, response=out.ProxyGrantSerializer, errors=(401, 403, 404),
        parameters=(_uuid_param("grant_id"),),
    )  # fmt: skip
    def post(self, request: Request, grant_id) -> Response:
        item = consent_selectors.access_proxy_item(request.user, grant_id)
        try:
            consent_services.proxy_end(item=item, actor=request.user)
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        if isinstance(item, ProxyInvitation):
            item.refresh_from_db()
            # The patient sees what they may know; the invited account, its own answer.
            mine = item.grantor_id == request.user.pk
            return Response(
                out.proxy_invitation_data(item, status=item.grantor_state if mine else item.status)
            )
        grant = consent_selectors.access_proxy_grant(request.user, item.row_uuid)
        return Response(out.proxy_grant_data(grant))
