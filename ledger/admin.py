"""The ledger in the admin, read-only.

Access events (who opened which chart, record or document, and break-glass) are the
auditors' list. A read belongs to the chart's hospital and names the reader's (the
membership they acted in). A hospital admin sees every read of their hospital's charts,
whoever read and from wherever, and their own staff's reads of other hospitals' charts; of
those they see what the event says (when, who, from where, which hospital's chart, why) but
not which patient or record: those ids are the other hospital's (`chart_visible`). The log
itself (every event, entries, checkpoints, verification runs) is auditors' only, since it
spans every hospital.
"""

from __future__ import annotations

import contextlib
import csv
import uuid
from collections.abc import Iterator
from datetime import datetime, time

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.db.models import BooleanField, Case, Q, QuerySet, Value, When
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timezone import get_current_timezone

from ledger.models import (
    AccessEvent,
    Checkpoint,
    Cosignature,
    Entry,
    Event,
    VerificationRun,
    WitnessState,
)
from portal import wording
from portal.admin_site import ChoiceListFilter, InputListFilter, admin_hospital_ids
from portal.records import search
from portal.tenancy.admin import AuditorOnlyMixin, HospitalAdminAccessMixin, ReadOnlyMixin
from portal.tenancy.models import Hospital

ReadOnlyAdmin = type(
    "ReadOnlyAdmin", (ReadOnlyMixin, AuditorOnlyMixin, admin.ModelAdmin), {"__module__": __name__}
)


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = [
        "event_id",
        "kind",
        "hospital",
        "actor_hospital",
        "subject_type",
        "subject_id",
        "status",
        "recorded_at",
    ]
    list_filter = ["status", "kind", "hospital"]
    list_select_related = ["hospital", "actor_hospital"]
    search_fields = ["event_id", "subject_id"]
    date_hierarchy = "recorded_at"
    exclude = ["leaf"]


# -- access events -------------------------------------------------------------------------

# The purposes the portal records, in the shared words (codes stay codes in the ledger).
PURPOSES = [
    (code, wording.purpose_label(code))
    for code in ("TREAT", "ETREAT", "CAREMGT", "PATRQT", "HRESCH", "HSYSADMIN")
]


class BreakGlassFilter(ChoiceListFilter):
    title = "break-glass"
    parameter_name = "break_glass"

    def lookups(self, request, model_admin):
        return [("yes", "Break-glass"), ("no", "Not break-glass")]

    def filter(self, queryset, value: str):
        flagged = Q(kind="breakglass.opened") | Q(attrs__break_glass=True)
        return queryset.filter(flagged) if value == "yes" else queryset.exclude(flagged)


class PurposeFilter(ChoiceListFilter):
    title = "purpose"
    parameter_name = "purpose"

    def lookups(self, request, model_admin):
        return PURPOSES

    def filter(self, queryset, value: str):
        return queryset.filter(attrs__purpose=value)


class PatientIdForm(forms.Form):
    patient = forms.IntegerField(
        label="Patient id", required=False, min_value=1, max_value=2**63 - 1
    )


class PatientIdFilter(InputListFilter):
    title = "patient id"
    form_class = PatientIdForm

    def queryset(self, request, queryset):
        self.own_charts = _own_charts(request)
        return super().queryset(request, queryset)

    def filter(self, queryset, cleaned_data: dict):
        # Only charts the admin audits in full: another hospital's patient id finds nothing,
        # as an unknown one does (no probing which patient a reader opened).
        return queryset.filter(patient_id=cleaned_data["patient"], **self.own_charts)


# The parameter "from" is a Python keyword, hence type().
_NOT_A_DATE = {"invalid": "Not a date: type it as YYYY-MM-DD."}
DateRangeForm = type(
    "DateRangeForm",
    (forms.Form,),
    {
        "from": forms.DateField(
            label="From (YYYY-MM-DD)", required=False, input_formats=["%Y-%m-%d"],
            error_messages=_NOT_A_DATE,
        ),
        "to": forms.DateField(
            label="To, inclusive (YYYY-MM-DD)", required=False, input_formats=["%Y-%m-%d"],
            error_messages=_NOT_A_DATE,
        ),
    },
)  # fmt: skip


def date_range_problem(form: forms.Form) -> str:
    """What is wrong with a typed date range, in words ("" if nothing): the list and the
    export refuse it rather than ignore it (an auditor would read every event as the range)."""
    if not form.is_valid():
        wrong = ", ".join(
            f"“{form.data.get(name, '')}” in {name.capitalize()}" for name in form.errors
        )
        return (
            f"Not a date: {wrong}. Type dates as YYYY-MM-DD, for example "
            f"{timezone.localdate():%Y-%m-%d}; no events are listed until the range is "
            "corrected."
        )
    start, end = form.cleaned_data.get("from"), form.cleaned_data.get("to")
    if start and end and end < start:
        return "The range ends before it starts: no event can fall in it. Swap the dates."
    return ""


class DateRangeFilter(InputListFilter):
    title = "date range (recorded)"
    form_class = DateRangeForm

    def queryset(self, request, queryset):
        problem = date_range_problem(self.form) if self.values else ""
        if problem:
            # Said on the page, next to the typed value; nothing listed (fails closed).
            messages.error(request, problem)
            return queryset.none()
        return super().queryset(request, queryset)

    def filter(self, queryset, cleaned_data: dict):
        tz = get_current_timezone()
        start, end = cleaned_data.get("from"), cleaned_data.get("to")
        if start:
            queryset = queryset.filter(recorded_at__gte=datetime.combine(start, time.min, tz))
        if end:
            queryset = queryset.filter(recorded_at__lte=datetime.combine(end, time.max, tz))
        return queryset


class KindFilter(ChoiceListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [
            (kind, wording.event_kind_label(kind))
            for kind in ("chart.read", "record.read", "document.read", "breakglass.opened")
        ]

    def filter(self, queryset, value: str):
        return queryset.filter(kind=value)


def _staff_matching(term: str) -> QuerySet:
    """Accounts whose first name, last name or username holds every word of `term` (staff
    names are in clear in auth_user; patients' are not, and are not searched here)."""
    match = Q()
    for word in term.split()[:6]:
        match &= (
            Q(first_name__icontains=word)
            | Q(last_name__icontains=word)
            | Q(username__icontains=word)
        )
    return get_user_model()._default_manager.filter(match).values("pk")


def _own_charts(request: HttpRequest) -> dict[str, list[int]]:
    """The condition "the chart is one whose patient ids this admin sees" (auditors: all)."""
    if request.user.is_superuser:
        return {}
    return {"hospital_id__in": admin_hospital_ids(request)}


class HospitalFilter(admin.RelatedOnlyFieldListFilter):
    """A hospital filter under its own title; its choices come from the admin's own rows."""

    label = ""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.title = self.label


class ChartHospitalFilter(HospitalFilter):
    label = "chart's hospital"


class ReaderHospitalFilter(HospitalFilter):
    label = "reader's hospital"


WITHHELD = "withheld"


class _Echo:
    def write(self, value: str) -> str:
        return value


# hospital: the chart's (the event's); actor_hospital: the one the reader acted in.
CSV_HEADER = [
    "event_id", "recorded_at", "kind", "hospital_id", "hospital", "actor_hospital_id",
    "actor_hospital", "actor_id", "actor_username", "actor_name", "patient_id", "subject_type",
    "subject_id", "purpose", "break_glass", "via", "role", "status", "anchored_at",
]  # fmt: skip


def access_events_csv(queryset) -> Iterator[str]:
    """CSV rows of access events: ids, codes and staff names only (never patient data).

    `queryset` is the admin's (AccessEventAdmin.get_queryset): rows whose chart the admin
    does not audit in full say "withheld" for the patient and the subject."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    rows = queryset.select_related("hospital", "actor_hospital", "actor").order_by(
        "-recorded_at", "-id"
    )
    for e in rows.iterator(chunk_size=2000):
        attrs = e.attrs or {}
        actor = e.actor
        shown = getattr(e, "chart_visible", False)  # not annotated: withheld (fails closed)
        yield writer.writerow(
            [
                e.event_id, e.recorded_at.isoformat(), e.kind, e.hospital_id, e.hospital.name,
                e.actor_hospital_id or "", e.actor_hospital.name if e.actor_hospital else "",
                e.actor_id or "", actor.get_username() if actor else "",
                actor.get_full_name() if actor else "",
                (e.patient_id or "") if shown else WITHHELD,
                e.subject_type if shown else WITHHELD, e.subject_id if shown else WITHHELD,
                attrs.get("purpose") or "",
                "yes" if e.kind == "breakglass.opened" or attrs.get("break_glass") else "no",
                attrs.get("via") or "", attrs.get("role") or "", e.get_status_display(),
                e.anchored_at.isoformat() if e.anchored_at else "",
            ]
        )  # fmt: skip


def _dated(request: HttpRequest) -> bool:
    return any(request.GET.get(name) for name in DateRangeForm.base_fields)


def csv_response(queryset, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(access_events_csv(queryset), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@admin.register(AccessEvent)
class AccessEventAdmin(ReadOnlyMixin, HospitalAdminAccessMixin, admin.ModelAdmin):
    change_list_template = "admin/ledger/accessevent/change_list.html"
    # Seven narrow columns that wrap (admin.css), so the list fits a 1280 px screen: the
    # reader's hospital goes under the chart's when they differ, the role under the name,
    # the channel and break-glass under the purpose. The page of one event has every field.
    list_display = ["when", "what", "who", "patient", "hospitals", "why", "anchored"]
    list_display_links = ["when"]
    list_filter = [
        KindFilter,
        ("hospital", ChartHospitalFilter),
        ("actor_hospital", ReaderHospitalFilter),
        ("actor", admin.RelatedOnlyFieldListFilter),
        PatientIdFilter,
        DateRangeFilter,
        BreakGlassFilter,
        PurposeFilter,
    ]
    list_select_related = ["hospital", "actor_hospital", "actor"]
    search_fields = ["=event_id", "=subject_id"]  # see get_search_results
    actions = ["export_csv"]
    show_full_result_count = False
    # The page of one event (read-only); the leaf is left out, and when the chart is another
    # hospital's, so are the patient, the subject, its digest and the attributes that name
    # the record (MASKED_FIELDS).
    FIELDS = [
        "event_id", "recorded", "kind_words", "chart_hospital", "reader_hospital", "who",
        "patient", "subject_type", "subject_id", "purpose", "flag", "via", "role", "attrs",
        "digest", "anchored_when",
    ]  # fmt: skip
    MASKED_FIELDS = {"subject_type", "subject_id", "attrs", "digest"}
    readonly_fields = FIELDS

    def hospital_q(self, ids: list[int]) -> Q:
        """Reads of the admin's hospitals' charts, and reads by the admin's hospitals' staff."""
        return Q(hospital__in=ids) | Q(actor_hospital__in=ids)

    def get_queryset(self, request: HttpRequest):
        """`chart_visible` on each row: whether its chart is one of the admin's hospitals'
        (the patient and the subject are shown only then). The list, the CSV and the page
        of one event all read it from here."""
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            yes = Value(True, output_field=BooleanField())
            return qs.annotate(chart_visible=yes, actor_linked=yes)
        ids = admin_hospital_ids(request)
        own = When(hospital_id__in=ids, then=Value(True))
        # `actor_linked`: the reader acted in one of the admin's hospitals, so the user
        # admin shows them (a hospital admin sees their own staff only).
        staff = When(actor_hospital_id__in=ids, then=Value(True))
        return qs.annotate(
            chart_visible=Case(own, default=Value(False), output_field=BooleanField()),
            actor_linked=Case(staff, default=Value(False), output_field=BooleanField()),
        )

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        """A staff member (every word in their first name, last name or username), a
        patient's MRN (exact, or a prefix of 3 or more characters, through the keyed blind
        indexes), an event id, or a subject id. MRNs and subject ids find only charts the
        admin audits in full (another hospital's finds nothing, as an unknown one does)."""
        term = " ".join(search_term.split())
        if not term:
            return queryset, False
        own = _own_charts(request)
        found = Q(subject_id=term, **own)
        with contextlib.suppress(ValueError):  # not an event id
            found |= Q(event_id=uuid.UUID(term))
        found |= Q(actor__in=_staff_matching(term))
        if request.user.is_superuser:
            hospital_ids = list(Hospital.objects.values_list("pk", flat=True))
        else:
            hospital_ids = admin_hospital_ids(request)
        patients = search.patient_ids_by_mrn(hospital_ids=hospital_ids, term=term)
        found |= Q(patient_id__in=patients, **own)
        return queryset.filter(found), False

    def get_fields(self, request: HttpRequest, obj=None):
        if obj is not None and not getattr(obj, "chart_visible", False):
            return [f for f in self.FIELDS if f not in self.MASKED_FIELDS]
        return list(self.FIELDS)

    @admin.display(description="chart's hospital", ordering="hospital__name")
    def chart_hospital(self, obj: Event):
        return obj.hospital

    @admin.display(description="reader's hospital", ordering="actor_hospital__name")
    def reader_hospital(self, obj: Event):
        return obj.actor_hospital or "—"

    @admin.display(description="recorded", ordering="recorded_at")
    def when(self, obj: Event) -> str:
        # To the second, in the site's time zone: an auditor lines events up by it.
        return date_format(timezone.localtime(obj.recorded_at), "Y-m-d H:i:s")

    @admin.display(description="event", ordering="kind")
    def what(self, obj: Event) -> str:
        return wording.event_kind_label(obj.kind)

    @admin.display(description="by", ordering="actor__last_name")
    def who(self, obj: Event):
        actor = obj.actor
        if actor is None:
            return "—"
        role = (obj.attrs or {}).get("role") or ""
        name = wording.person_label(actor)
        if getattr(obj, "actor_linked", False):
            url = reverse("admin:auth_user_change", args=[actor.pk])
            shown = format_html('<a href="{}">{}</a>', url, name)
        else:
            shown = format_html("{}", name)
        if name != actor.get_username():
            shown = format_html('{}<br><span class="quiet">{}</span>', shown, actor.get_username())
        if role:
            shown = format_html("{}<br>{}", shown, wording.role_label(role))
        return shown

    @admin.display(description="patient")
    def patient(self, obj: Event):
        if not getattr(obj, "chart_visible", False):
            return "another hospital's patient"
        if obj.patient_id is None:
            return "—"
        url = reverse("admin:records_patient_change", args=[obj.patient_id])
        return format_html('<a href="{}">Patient {}</a>', url, obj.patient_id)

    @admin.display(description="hospital", ordering="hospital__name")
    def hospitals(self, obj: Event):
        chart = obj.hospital.name if obj.hospital else "—"
        reader = obj.actor_hospital
        if reader is None or reader.pk == obj.hospital_id:
            return chart
        return format_html('{}<br><span class="quiet">read from {}</span>', chart, reader.name)

    @admin.display(description="why")
    def why(self, obj: Event):
        attrs = obj.attrs or {}
        shown = format_html("{}", wording.purpose_label(attrs.get("purpose")) or "—")
        if attrs.get("via"):
            channel = wording.audit_channel_label(attrs["via"])
            shown = format_html('{}<br><span class="quiet">{}</span>', shown, channel)
        if self.flag(obj):
            shown = format_html('{}<br><strong class="break-glass">Break-glass</strong>', shown)
        return shown

    @admin.display(description="in the log", ordering="status")
    def anchored(self, obj: Event) -> str:
        # Words, not a red cross: a pending event is recorded, just not anchored yet.
        return "Anchored" if obj.status == Event.ANCHORED else "Pending"

    @admin.display(description="anchored")
    def anchored_when(self, obj: Event) -> str:
        if obj.status != Event.ANCHORED or obj.anchored_at is None:
            return "Pending"
        return date_format(timezone.localtime(obj.anchored_at), "Y-m-d H:i:s")

    @admin.display(description="purpose")
    def purpose(self, obj: Event) -> str:
        code = (obj.attrs or {}).get("purpose") or ""
        return f"{wording.purpose_label(code)} ({code})" if code else ""

    @admin.display(description="break-glass", boolean=True)
    def flag(self, obj: Event) -> bool:
        return obj.kind == "breakglass.opened" or bool((obj.attrs or {}).get("break_glass"))

    @admin.display(description="via")
    def via(self, obj: Event) -> str:
        return wording.audit_channel_label((obj.attrs or {}).get("via"))

    @admin.display(description="role")
    def role(self, obj: Event) -> str:
        role = (obj.attrs or {}).get("role") or ""
        return wording.role_label(role)

    @admin.display(description="kind")
    def kind_words(self, obj: Event) -> str:
        return f"{wording.event_kind_label(obj.kind)} ({obj.kind})"

    @admin.display(description="recorded")
    def recorded(self, obj: Event) -> str:
        return self.when(obj)

    @admin.action(description="Export the selected events as CSV")
    def export_csv(self, request: HttpRequest, queryset):
        return csv_response(queryset, "access-events.csv")

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_view),
                name="{}_{}_export".format(*info),
            ),
            *super().get_urls(),
        ]

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        """Every event the changelist shows with the current filters, streamed."""
        if not self.has_view_permission(request):
            from django.http import Http404

            raise Http404("No such page.")
        problem = date_range_problem(DateRangeForm(request.GET)) if _dated(request) else ""
        if problem:
            return self.admin_site.bad_request(request, f"{problem} Nothing was exported.")
        try:
            changelist: ChangeList = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return self.admin_site.bad_request(
                request, "A filter value could not be used, so nothing was exported."
            )
        return csv_response(changelist.get_queryset(request), "access-events.csv")


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = ["index", "event", "created_at"]
    list_select_related = ["event"]
    exclude = ["leaf", "leaf_hash", "chain_hash"]
    readonly_fields = [
        "index",
        "event",
        "leaf_text",
        "leaf_hash_hex",
        "chain_hash_hex",
        "created_at",
    ]

    @admin.display(description="leaf")
    def leaf_text(self, obj: Entry) -> str:
        return bytes(obj.leaf).decode("ascii", "replace")

    @admin.display(description="leaf hash")
    def leaf_hash_hex(self, obj: Entry) -> str:
        return bytes(obj.leaf_hash).hex()

    @admin.display(description="chain hash")
    def chain_hash_hex(self, obj: Entry) -> str:
        return bytes(obj.chain_hash).hex()


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ["size", "created_at", "root_hex"]
    exclude = ["root_hash"]
    readonly_fields = ["size", "root_hex", "note", "created_at"]

    @admin.display(description="root")
    def root_hex(self, obj: Checkpoint) -> str:
        return bytes(obj.root_hash).hex()


@admin.register(Cosignature)
class CosignatureAdmin(ReadOnlyAdmin):
    """Witnesses' cosignatures of the log's checkpoints (auditors only, read-only)."""

    list_display = ["checkpoint", "witness", "timestamp", "created_at"]
    list_filter = ["witness"]
    list_select_related = ["checkpoint"]
    readonly_fields = ["checkpoint", "witness", "vkey", "timestamp", "line", "created_at"]


@admin.register(WitnessState)
class WitnessStateAdmin(ReadOnlyAdmin):
    list_display = ["name", "size", "cosigned_at", "stopped", "last_status", "next_attempt_at"]
    readonly_fields = [
        "name", "url", "vkey", "size", "cosigned_at", "attempts", "next_attempt_at", "stopped",
        "last_status", "last_error", "last_error_at", "updated_at",
    ]  # fmt: skip


@admin.register(VerificationRun)
class VerificationRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "status", "requested_by", "requested_at", "finished_at", "stage"]
    list_filter = ["status"]
    list_select_related = ["requested_by"]
