"""The staff side of the REST API: patients of the active hospital, charts, records,
what is shared with the caller, access requests and break-glass. Every view is for staff
signed in with two factors (StaffAccess) and runs in the hospital the request acts in."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.forms.models import model_to_dict
from django.http import Http404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from consent import selectors as consent_selectors
from consent import services as consent_services
from consent.models import Purpose
from portal.api import serializers as out
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
from portal.api.views.common import CURSOR_PARAM, doc, type_param
from portal.provider import forms as provider_forms
from portal.records import access, audit, search, services
from portal.records.categories import categories_named, type_categories
from portal.records.chart import chart_for
from portal.records.models import ClinicalNote, Document, RecordStatus
from portal.tenancy.models import Hospital

PATIENT_ID = OpenApiParameter("patient_id", OpenApiTypes.INT, OpenApiParameter.PATH)
RECORD_ID = OpenApiParameter("record_id", OpenApiTypes.INT, OpenApiParameter.PATH)
# Types with a form (reports, care plans, goals and imaging studies come from FHIR imports;
# documents are uploaded in the provider portal).
CREATABLE_TYPES = sorted([*provider_forms.RECORD_FORM_FIELDS, "observation"])
CORRECTABLE_TYPES = sorted([*provider_forms.RECORD_FORM_FIELDS, "observation"])


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
            out.PatientSerializer(page.patients, many=True).data,
            next_cursor=encode_cursor("b", page.older) if page.older else None,
            prev_cursor=encode_cursor("a", page.newer) if page.newer else None,
        )

    @doc(
        summary="Register a patient at the hospital", tag="staff", request=PatientRegisterIn,
        response=out.PatientSerializer, status=201, errors=(401, 403),
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        if not access.membership_may(membership=request.membership, action=access.Action.REGISTER):
            raise Http404("No such endpoint for your role.")
        form = form_validate(provider_forms.PatientRegisterForm, request.data)
        try:
            patient = services.patient_register(
                hospital=request.hospital, actor=request.user, **form.cleaned_data
            )
        except DjangoValidationError as exc:
            raise add_form_errors(exc) from None
        return Response(out.PatientSerializer(patient).data, status=201)


def _open_chart(request: Request, patient_id: Any) -> access.OpenedChart:
    """The chart, opened as the provider portal opens it: a chart.read access event."""
    opened = access.access_patient(request.user, patient_id)
    audit.chart_read_record(reader=request.user, chart=opened, membership=request.membership)
    return opened


class PatientDetailView(ApiView):
    @doc(
        summary="One patient (a chart read)", tag="staff", response=out.PatientSerializer,
        parameters=(PATIENT_ID,),
    )  # fmt: skip
    def get(self, request: Request, patient_id: int) -> Response:
        return Response(out.PatientSerializer(_open_chart(request, patient_id).patient).data)


class ChartView(ApiView):
    @doc(
        summary="Chart summary: problems, medications, allergies, series, timeline",
        tag="staff", response=out.ChartSerializer, parameters=(PATIENT_ID,),
    )  # fmt: skip
    def get(self, request: Request, patient_id: int) -> Response:
        opened = _open_chart(request, patient_id)
        summary = {
            "chart": chart_for(chart=opened),
            "access": opened,
            "can_change": opened.can_change,
            "actions": sorted(opened.actions),
        }
        return Response(out.ChartSerializer(summary).data)


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
    "observation": form_serializer(
        "ObservationCorrectIn",
        provider_forms.correction_form_class(provider_forms.ObservationForm), skip=("code",),
    ),
    **{
        t: form_serializer(f"{access.RECORD_TYPES[t].__name__}CorrectIn",
                           provider_forms.correction_form_class(
                               provider_forms.record_form_class(t)))
        for t in provider_forms.RECORD_FORM_FIELDS
    },
}  # fmt: skip


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
        response=out.ChartRecordPageSerializer,
        description="`withheld` names the categories of this type you are not shown (a "
        "consent that shares only some): records of these may exist.",
        parameters=(
            PATIENT_ID, type_param(sorted(access.RECORD_TYPES)), CURSOR_PARAM,
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
        withheld = categories_named(type_categories(record_type) & opened.withheld)
        return page_response(
            request, out.RecordSerializer(rows, many=True).data,
            next_cursor=next_cursor, prev_cursor=prev_cursor,
            extra={"withheld": out.WithheldSerializer(withheld, many=True).data},
        )  # fmt: skip

    @doc(
        summary="Add a record to a chart (validated as in the provider portal)", tag="staff",
        request=_record_body("RecordIn", RECORD_IN), response=out.RecordSerializer, status=201,
        parameters=(PATIENT_ID, type_param(CREATABLE_TYPES)),
        description="Observations take a LOINC code from the portal's catalogue, its unit "
        "and a plausible value; documents are uploaded in the provider portal.",
    )  # fmt: skip
    def post(self, request: Request, patient_id: int, record_type: str) -> Response:
        model = _model(record_type, CREATABLE_TYPES)
        patient = access.access_patient(
            request.user, patient_id, action=access.record_action(record_type)
        ).patient
        try:
            record = _create(request, patient, record_type, model)
        except DjangoValidationError as exc:
            raise add_form_errors(exc) from None
        return Response(out.RecordSerializer(record).data, status=201)


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
        parameters=(type_param(sorted(access.RECORD_TYPES)), RECORD_ID),
    )  # fmt: skip
    def get(self, request: Request, record_type: str, record_id: int) -> Response:
        opened = access.access_record(request.user, record_type, record_id)
        record = opened.record
        audit.chart_read_record(
            reader=request.user, chart=opened.chart, record=record, membership=request.membership
        )
        return Response(out.RecordSerializer(record, context={"content": True}).data)


class RecordCorrectView(ApiView):
    @doc(
        summary="Correct a record: a new version replaces it, the old one is kept as "
        "entered in error", tag="staff", request=_record_body("RecordCorrectIn",
                                                                RECORD_CORRECT_IN),
        response=out.RecordSerializer, status=201,
        parameters=(type_param(CORRECTABLE_TYPES), RECORD_ID),
        description="Fields left out keep the corrected version's values; `correction_reason` (why "
        "the record is corrected) is required and shown in the record's history.",
    )  # fmt: skip
    def post(self, request: Request, record_type: str, record_id: int) -> Response:
        _model(record_type, CORRECTABLE_TYPES)
        record = access.access_record(
            request.user, record_type, record_id, action=access.Action.CHANGE
        ).record
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError(
                {"non_field_errors": ["The body must be a JSON object."]}
            )
        if record_type == "observation":
            initial = {"value": record.value, "unit": record.unit,
                       "effective_at": record.effective_at}  # fmt: skip
            form = form_validate(
                provider_forms.correction_form_class(provider_forms.ObservationForm),
                {**initial, **request.data}, fixed_code=record.code,
            )  # fmt: skip
            fields = ("value", "unit", "effective_at")
        else:
            form_class = provider_forms.correction_form_class(
                provider_forms.record_form_class(record_type)
            )
            initial = model_to_dict(record, fields=form_class.Meta.fields)
            form = form_validate(form_class, {**initial, **request.data})
            fields = form_class.Meta.fields
        changes = {name: form.cleaned_data[name] for name in fields}
        try:
            new = services.record_correct(
                actor=request.user,
                record=record,
                correction_reason=form.cleaned_data["correction_reason"],
                **changes,
            )
        except DjangoValidationError as exc:
            raise add_form_errors(exc) from None
        return Response(out.RecordSerializer(new).data, status=201)


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
            request, out.PatientSerializer(rows, many=True).data,
            next_cursor=next_cursor, prev_cursor=prev_cursor,
        )  # fmt: skip


def _practitioners_only(request: Request, action: access.Action) -> None:
    """Break-glass and access requests are for clinicians and nurses (records.access says
    which roles; 403 otherwise, as for an account of the wrong kind)."""
    if not access.membership_may(membership=request.membership, action=action):
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
            request, out.AccessRequestSerializer(rows, many=True).data,
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
        _practitioners_only(request, access.Action.REQUEST_ACCESS)
        data = form_validate(provider_forms.AccessRequestForm, _hospital_pk(request.data))
        data = data.cleaned_data
        try:
            created = consent_services.access_request_create(
                requester=request.user, requester_hospital=request.hospital,
                patient_hospital=data["hospital"], mrn=data["mrn"],
                birth_date=data["birth_date"], purpose=data["purpose"],
            )  # fmt: skip
        except DjangoValidationError as exc:
            raise add_form_errors(exc) from None
        created.requester_hospital = request.hospital
        return Response(out.AccessRequestSerializer(created).data, status=202)


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
        _practitioners_only(request, access.Action.BREAK_GLASS)
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
            raise add_form_errors(exc) from None
        result = out.BreakGlassResultSerializer(outcome).data
        return Response(result, status=200 if outcome.glass is None else 201)
