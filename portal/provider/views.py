"""The provider portal. Views stay thin: forms validate, services write, selectors read and
decide access (404 for anything missing or not visible), and every chart, record or document
opened is an access event in the ledger."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Field
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from consent import selectors as consent_selectors
from consent import services as consent_services
from portal import wording
from portal.accounts.decorators import staff_required
from portal.provider import forms
from portal.records import access, audit, downloads, search, services
from portal.records.access import Action
from portal.records.chart import chart_for, report_results_for
from portal.records.fields import BlindIndexField, EncryptedJSONField
from portal.records.models import (
    ClinicalNote,
    ClinicalRecord,
    DiagnosticReport,
    Document,
    Observation,
)
from portal.tenancy import selectors as tenancy_selectors


@staff_required
def home_view(request: HttpRequest) -> HttpResponse:
    if not access.membership_may(membership=request.membership, action=Action.PATIENT_LIST):
        # A hospital admin: no patient list (no chart without a grant); their work is in
        # the admin, and this page leads there.
        notifications = consent_selectors.notifications_for(user=request.user, limit=5)
        return render(request, "provider/admin_home.html", {"notifications": notifications})
    form = forms.PatientSearchForm(request.GET or None)
    query = form.cleaned_data["q"] if form.is_valid() else ""
    page = search.patient_page_for_user(
        user=request.user,
        hospital=request.hospital,
        query=query,
        before=_cursor(request.GET.get("before")),
        after=_cursor(request.GET.get("after")),
    )
    notifications = consent_selectors.notifications_for(user=request.user, limit=5)
    recent = [] if query else search.patients_recently_opened(user=request.user)
    context = {
        "page": page, "form": form, "q": query, "notifications": notifications,
        "recent": recent,
        **_hospital_actions(request), "break_glass_hours": BREAK_GLASS_HOURS,
    }  # fmt: skip
    return render(request, "provider/home.html", context)


def _hospital_actions(request: HttpRequest) -> dict[str, bool]:
    """What the role the request acts in may start from the lists (the buttons shown)."""
    may = {
        name: access.membership_may(membership=request.membership, action=action)
        for name, action in (
            ("may_register", Action.REGISTER),
            ("may_break_glass", Action.BREAK_GLASS),
            ("may_request_access", Action.REQUEST_ACCESS),
        )
    }
    return {**may, "practitioner": may["may_request_access"]}


def _cursor(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@staff_required
@require_http_methods(["GET", "POST"])
def patient_new_view(request: HttpRequest) -> HttpResponse:
    if not access.membership_may(membership=request.membership, action=Action.REGISTER):
        raise Http404("No such page.")
    form = forms.PatientRegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            patient = services.patient_register(
                hospital=request.hospital, actor=request.user, **form.cleaned_data
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, "Patient registered.")
            return redirect("provider:chart", patient_id=patient.pk)
    return _form_page(request, form, "Register a patient", status_if_errors=True)


@staff_required
def chart_view(request: HttpRequest, patient_id: int) -> HttpResponse:
    # No transaction around the read: it changes nothing, and its event is committed (one
    # INSERT, autocommitted) before the page is built.
    opened = access.access_patient(request.user, patient_id)
    audit.chart_read_record(reader=request.user, chart=opened, membership=request.membership)
    return render(
        request,
        "provider/chart.html",
        {
            "patient": opened.patient,
            "chart": chart_for(chart=opened),
            "access": opened,
            "can_change": opened.can_change,
            "emergency": consent_selectors.break_glass_live_for(user=request.user, chart=opened),
        },
    )


def _chart_for(request: HttpRequest, patient_id: int, action: Action) -> access.OpenedChart:
    """The chart, opened to do `action`: a role that may not do it gets the same 404 as a
    chart that does not exist (records.access decides)."""
    return access.access_patient(request.user, patient_id, action=action)


def _form_page(request, form, title, *, patient=None, status_if_errors=False, **extra):
    status = 400 if (status_if_errors and form.errors) else 200
    context = {"form": form, "title": title, "patient": patient, **extra}
    return render(request, "provider/form.html", context, status=status)


def _add_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


@staff_required
@require_http_methods(["GET", "POST"])
def observation_new_view(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = _chart_for(request, patient_id, Action.RECORD_OBSERVATION).patient
    form = forms.ObservationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.observation_create(
                actor=request.user, patient=patient, code=data["code"],
                display=data["measure"].display, value=data["value"], unit=data["unit"],
                effective_at=data["effective_at"], category=data["measure"].category,
            )  # fmt: skip
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, f"{data['measure'].display} recorded.")
            return redirect("provider:chart", patient_id=patient.pk)
    return _form_page(request, form, "Record a measurement", patient=patient, status_if_errors=True)


@staff_required
@require_http_methods(["GET", "POST"])
def blood_pressure_new_view(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = _chart_for(request, patient_id, Action.RECORD_OBSERVATION).patient
    form = forms.BloodPressureForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        # Both values or neither: one transaction.
        with transaction.atomic():
            for value, measure in (
                (data["systolic"], forms.SYSTOLIC),
                (data["diastolic"], forms.DIASTOLIC),
            ):
                services.observation_create(
                    actor=request.user, patient=patient, code=measure.code,
                    display=measure.display, value=value, unit=measure.unit,
                    effective_at=data["effective_at"], category=measure.category,
                )  # fmt: skip
        pressure = "/".join(wording.number_label(data[k]) for k in ("systolic", "diastolic"))
        messages.success(
            request, f"Blood pressure {wording.quantity_label(pressure, 'mm[Hg]')} recorded."
        )
        return redirect("provider:chart", patient_id=patient.pk)
    return _form_page(
        request, form, "Record a blood pressure", patient=patient, status_if_errors=True
    )


@staff_required
@require_http_methods(["GET", "POST"])
def note_new_view(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = _chart_for(request, patient_id, Action.RECORD_NOTE).patient
    form = forms.NoteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.record_create(
            actor=request.user, patient=patient, model=ClinicalNote, **form.cleaned_data
        )
        messages.success(request, "Note saved.")
        return redirect("provider:chart", patient_id=patient.pk)
    return _form_page(request, form, "Write a note", patient=patient, status_if_errors=True)


@staff_required
def record_view(request: HttpRequest, record_type: str, record_id: int) -> HttpResponse:
    opened = access.access_record(request.user, record_type, record_id)  # as chart_view
    record = opened.record
    history = _history(record)
    audit.chart_read_record(
        reader=request.user, chart=opened.chart, record=record, membership=request.membership
    )
    return render(
        request, "provider/record.html",
        {"record": record, "patient": record.patient, "record_type": record_type,
         "history": history, "fields": _display_fields(record),
         "recorded_by": _recorded_by(record),
         "can_change": opened.chart.can_write(record_type),
         # Imported types (reports, plans, goals, imaging) have no correction form.
         "correctable": record_type in forms.RECORD_FORM_FIELDS or record_type == "observation",
         "results": _report_results(opened.chart, record)},
    )  # fmt: skip


def _report_results(chart: access.OpenedChart, record: ClinicalRecord) -> list[tuple[str, object]]:
    """A test report's results as (name, observation or None): each with its value when the
    reader is shown it, else by its name only."""
    if not isinstance(record, DiagnosticReport):
        return []
    shown = report_results_for(charts=[chart], reports=[record])
    return [
        (str(link.get("display") or ""), shown.get(link.get("observation")))
        for link in record.results or []
    ]


def _history(record: ClinicalRecord) -> list[tuple[ClinicalRecord, ClinicalRecord]]:
    """The versions this one replaced (oldest last), each with the version that replaced it
    (who corrected it, when, and the reason given), for the history panel."""
    chain, current = [], record
    model = type(record)
    while current.replaces_id:
        newer = current
        current = model.objects.filter(pk=current.replaces_id).select_related("recorded_by")
        current = current.first()
        if current is None:
            break
        chain.append((current, newer))
    return chain


def _display_fields(record: ClinicalRecord) -> list[tuple[str, object]]:
    """The record's fields as people read them (portal.wording): choices by their labels,
    yes/no, a value with its unit as people write it and no trailing zeros, times in the
    user's zone."""
    # The version is in the page's title, created_at is its "Recorded at".
    skip = {"id", "row_uuid", "hospital", "patient", "replaces", "recorded_by", "content"}
    skip |= {"version", "created_at"}
    if isinstance(record, DiagnosticReport):
        skip.add("results")  # listed with their values (_report_results)
    measured = hasattr(record, "value") and hasattr(record, "unit")
    if measured:
        skip.add("unit")  # shown with its value: "97 %"
    if isinstance(record, Observation):
        # Shown in words in the value's row (records.observations), never as their JSON.
        skip |= {"value_fhir", "components", "fhir_details"}
    return [
        (f.verbose_name, _field_words(record, f, measured=measured))
        for f in record._meta.concrete_fields
        if f.name not in skip
        and not isinstance(f, BlindIndexField)  # search tokens
        # A first version has no correction reason: no empty row for it.
        and not (f.name == "correction_reason" and record.correction_reason is None)
    ]


def _field_words(record: ClinicalRecord, field: Field, *, measured: bool) -> object:
    # By the value's type: the encrypted fields are not Django's own field classes.
    value = getattr(record, field.attname)
    if isinstance(record, Observation) and field.name == "value":
        return record.value_label or None  # any type: "Never smoker", "120 mmHg", a panel's
    if value is None or value == "" or value == []:
        return None
    if field.name == "presented_form":  # a report's attached text, decoded
        return getattr(record, "text", "") or wording.nested_label(value)
    if isinstance(field, EncryptedJSONField):  # FHIR structures (reports, plans, imaging)
        return wording.nested_label(value)
    if field.choices:
        return getattr(record, f"get_{field.name}_display")()
    if measured and field.name == "value":
        return wording.quantity_label(value, getattr(record, "unit", ""))
    if isinstance(value, bool):
        return wording.yes_no(value)
    if isinstance(value, Decimal | float):
        return wording.number_label(value)
    if isinstance(value, dt.date):  # datetimes too
        return wording.datetime_label(value)
    if field.name == "size":
        return wording.size_label(value)
    if field.name == "content_type":
        return wording.content_type_label(value)
    return value


def _recorded_by(record: ClinicalRecord) -> str:
    """ "Ana Silva, Clinician": the author's name and role at the record's hospital."""
    user = record.recorded_by
    if user is None:
        return ""
    roles = tenancy_selectors.membership_roles_at(
        hospital_id=record.hospital_id, user_ids=[user.pk]
    )
    return wording.staff_label(user, roles.get(user.pk))


@staff_required
@require_http_methods(["GET", "POST"])
def observation_correct_view(request: HttpRequest, record_id: int) -> HttpResponse:
    opened = access.access_record(request.user, "observation", record_id, action=Action.CHANGE)
    record = opened.record
    if record.value is None:
        # The form corrects a measured value; an imported answer, text or panel is not one.
        raise Http404("No such measurement.")
    initial = {"value": record.value, "unit": record.unit, "effective_at": record.effective_at}
    form_class = forms.correction_form_class(forms.ObservationForm)
    form = form_class(request.POST or None, initial=initial, fixed_code=record.code)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            new = services.record_correct(
                actor=request.user, record=record, value=data["value"], unit=data["unit"],
                effective_at=data["effective_at"], correction_reason=data["correction_reason"],
            )  # fmt: skip
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, "Corrected; the previous value is kept as entered in error.")
            return redirect("provider:record", record_type="observation", record_id=new.pk)
    return _form_page(
        request, form, f"Correct {record.display}", patient=record.patient, status_if_errors=True
    )


@staff_required
@require_http_methods(["GET", "POST"])
def record_new_view(request: HttpRequest, patient_id: int, record_type: str) -> HttpResponse:
    if record_type not in forms.RECORD_FORM_FIELDS or record_type == "clinicalnote":
        raise Http404("No such record type.")
    patient = _chart_for(request, patient_id, access.record_action(record_type)).patient
    form_class = forms.record_form_class(record_type)
    form = form_class(request.POST or None, pick_codes=True)
    if request.method == "POST" and form.is_valid():
        values = {name: form.cleaned_data[name] for name in form.Meta.fields}
        try:
            services.record_create(
                actor=request.user, patient=patient, model=form.Meta.model, **values
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, f"{wording.record_type_label(record_type)} added.")
            return redirect("provider:chart", patient_id=patient.pk)
    title = f"Add {wording.record_type_label(record_type).lower()}"
    return _form_page(request, form, title, patient=patient, status_if_errors=True)


@staff_required
@require_http_methods(["GET", "POST"])
def record_correct_view(request: HttpRequest, record_type: str, record_id: int) -> HttpResponse:
    if record_type not in forms.RECORD_FORM_FIELDS:
        raise Http404("No such record type.")
    opened = access.access_record(request.user, record_type, record_id, action=Action.CHANGE)
    record = opened.record
    form_class = forms.correction_form_class(forms.record_form_class(record_type))
    # No instance is bound: the form must never write to the version it corrects.
    initial = form_class.initial_for(record, pick_codes=True)
    form = form_class(request.POST or None, initial=initial, pick_codes=True)
    if request.method == "POST" and form.is_valid():
        changes = {name: form.cleaned_data[name] for name in form_class.Meta.fields}
        try:
            new = services.record_correct(
                actor=request.user,
                record=record,
                correction_reason=form.cleaned_data["correction_reason"],
                **changes,
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(
                request, "Corrected; the previous version is kept as entered in error."
            )
            return redirect("provider:record", record_type=record_type, record_id=new.pk)
    title = f"Correct {wording.record_type_label(record_type).lower()}"
    return _form_page(request, form, title, patient=record.patient, status_if_errors=True)


@staff_required
@require_http_methods(["GET", "POST"])
def care_team_view(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = _chart_for(request, patient_id, Action.CARE_TEAM).patient
    form = forms.CareTeamAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = (
            get_user_model()._default_manager.filter(username=form.cleaned_data["username"]).first()
        )
        try:
            if user is None:
                raise ValidationError("No colleague with that username works at this hospital.")
            services.care_team_add(patient=patient, user=user, actor=request.user)
        except ValidationError as exc:
            form.add_error("username", exc.messages)
        else:
            messages.success(request, f"{wording.person_label(user)} joined the care team.")
            return redirect("provider:care_team", patient_id=patient.pk)
    members = list(patient.care_team.select_related("user").order_by("user__username"))
    roles = tenancy_selectors.membership_roles_at(
        hospital_id=patient.hospital_id, user_ids=[m.user_id for m in members]
    )
    for member in members:
        member.role = roles.get(member.user_id, "")
    status = 400 if form.errors else 200
    return render(
        request, "provider/care_team.html",
        {"patient": patient, "form": form, "members": members}, status=status,
    )  # fmt: skip


@staff_required
@require_POST
def care_team_remove_view(request: HttpRequest, patient_id: int, user_id: int) -> HttpResponse:
    patient = _chart_for(request, patient_id, Action.CARE_TEAM).patient
    member = patient.care_team.filter(user_id=user_id).select_related("user").first()
    if member is None:
        raise Http404("No such care team member.")
    services.care_team_remove(patient=patient, user=member.user, actor=request.user)
    messages.success(request, f"{wording.person_label(member.user)} left the care team.")
    return redirect("provider:care_team", patient_id=patient.pk)


@staff_required
@require_http_methods(["GET", "POST"])
def document_upload_view(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = _chart_for(request, patient_id, Action.RECORD_DOCUMENT).patient
    form = forms.DocumentUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        content = upload.read()
        services.record_create(
            actor=request.user, patient=patient, model=Document,
            title=form.cleaned_data["title"], content_type=upload.declared_type,
            size=len(content), sha256=hashlib.sha256(content).hexdigest(), content=content,
        )  # fmt: skip
        messages.success(request, "Document uploaded.")
        return redirect("provider:chart", patient_id=patient.pk)
    return _form_page(
        request, form, "Upload a document", patient=patient, status_if_errors=True, multipart=True
    )


@staff_required
def document_download_view(request: HttpRequest, record_id: int) -> HttpResponse:
    with transaction.atomic():
        opened = access.access_record(request.user, "document", record_id)
        document = opened.record
        audit.chart_read_record(
            reader=request.user, chart=opened.chart, record=document, membership=request.membership
        )
    return downloads.document_response(document=document)


@staff_required
def shared_view(request: HttpRequest) -> HttpResponse:
    """Charts of other hospitals opened to me (consents) or by me (break-glass, live)."""
    patients = search.patients_shared_with_user(
        user=request.user, exclude_hospital=request.hospital
    )
    requests = consent_selectors.access_requests_by_user(user=request.user)
    return render(
        request, "provider/shared.html",
        {"patients": patients, "access_requests": requests, **_hospital_actions(request)},
    )  # fmt: skip


def _practitioners_only(request: HttpRequest, action: Action) -> None:
    """Break-glass and access requests are for the roles records.access lets do them
    (clinicians and nurses): a page that is not for this role is refused as other staff
    pages refuse non-staff (403)."""
    if not access.membership_may(membership=request.membership, action=action):
        raise PermissionDenied("This page is for clinicians and nurses.")


@staff_required
@require_http_methods(["GET", "POST"])
def access_request_new_view(request: HttpRequest) -> HttpResponse:
    _practitioners_only(request, Action.REQUEST_ACCESS)
    form = forms.AccessRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            consent_services.access_request_create(
                requester=request.user, requester_hospital=request.hospital,
                patient_hospital=data["hospital"], mrn=data["mrn"],
                birth_date=data["birth_date"], purpose=data["purpose"],
            )  # fmt: skip
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            # The same words whether or not the details matched anyone (no probing).
            messages.success(
                request,
                "Request sent. If the details match a patient with a portal account, they "
                "will be asked. If they agree, their chart appears here; otherwise the "
                "request expires after 14 days.",
            )
            return redirect("provider:shared")
    return _form_page(request, form, "Ask a patient for access", status_if_errors=True)


BREAK_GLASS_HOURS = int(consent_services.BREAK_GLASS_DEFAULT.total_seconds() // 3600)
BREAK_GLASS_INTRO = (
    "For a patient you must treat now whose chart you cannot open, when they cannot give "
    f"consent. You can read the whole chart for {BREAK_GLASS_HOURS} hours (or until you end "
    "it). Every read is flagged, and the patient and the chart's hospital are told at once."
)


@staff_required
@require_http_methods(["GET", "POST"])
def break_glass_view(request: HttpRequest) -> HttpResponse:
    _practitioners_only(request, Action.BREAK_GLASS)
    form = forms.BreakGlassForm(request.POST or None)
    status = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            outcome = consent_services.break_glass_attempt(
                user=request.user, user_hospital=request.hospital,
                patient_hospital=data["hospital"], mrn=data["mrn"],
                birth_date=data["birth_date"], reason=data["reason"],
            )  # fmt: skip
        except consent_services.BreakGlassLocked as exc:
            form.add_error(None, exc.message)
            status = 429
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            if outcome.glass is None:
                messages.info(request, "You already have access to this chart.")
            else:
                messages.warning(
                    request,
                    f"Emergency access granted for {BREAK_GLASS_HOURS} hours. Every read is "
                    "flagged and the patient and the hospital are told. End it on the chart "
                    "as soon as you are done.",
                )
            return redirect("provider:chart", patient_id=outcome.patient.pk)
    response = _form_page(
        request, form, "Open a chart in an emergency", status_if_errors=True,
        intro=BREAK_GLASS_INTRO, submit="Open the chart in an emergency",
    )  # fmt: skip
    if status is not None:
        response.status_code = status
    return response


@staff_required
@require_POST
def break_glass_end_view(request: HttpRequest, glass_id: str) -> HttpResponse:
    """End one's own emergency access now (anyone else's, or an ended one: 404)."""
    glass = consent_selectors.break_glass_live_by_uuid(user=request.user, glass_id=glass_id)
    consent_services.break_glass_end(glass=glass, actor=request.user)
    messages.success(
        request, "Emergency access ended. The patient and the hospital have been told."
    )
    return redirect("provider:home")
