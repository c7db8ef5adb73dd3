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
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.models import BooleanField, Case, Q, Value, When
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import path
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
from portal.admin_site import ChoiceListFilter, InputListFilter, admin_hospital_ids
from portal.tenancy.admin import AuditorOnlyMixin, HospitalAdminAccessMixin, ReadOnlyMixin

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

PURPOSES = [
    ("TREAT", "Treatment"),
    ("ETREAT", "Emergency treatment"),
    ("CAREMGT", "Care coordination"),
    ("PATRQT", "At the patient's request"),
    ("HRESCH", "Research"),
    ("HSYSADMIN", "Administration (admin)"),
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
DateRangeForm = type(
    "DateRangeForm",
    (forms.Form,),
    {
        "from": forms.DateField(
            label="From (YYYY-MM-DD)", required=False, input_formats=["%Y-%m-%d"]
        ),
        "to": forms.DateField(label="To, inclusive", required=False, input_formats=["%Y-%m-%d"]),
    },
)


class DateRangeFilter(InputListFilter):
    title = "date range (recorded)"
    form_class = DateRangeForm

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
            ("chart.read", "Chart opened"),
            ("record.read", "Record opened"),
            ("document.read", "Document downloaded"),
            ("breakglass.opened", "Break-glass opened"),
        ]

    def filter(self, queryset, value: str):
        return queryset.filter(kind=value)


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


def csv_response(queryset, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(access_events_csv(queryset), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@admin.register(AccessEvent)
class AccessEventAdmin(ReadOnlyMixin, HospitalAdminAccessMixin, admin.ModelAdmin):
    change_list_template = "admin/ledger/accessevent/change_list.html"
    list_display = [
        "recorded_at", "kind", "chart_hospital", "reader_hospital", "actor", "patient",
        "purpose", "flag", "via", "role", "status",
    ]  # fmt: skip
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
        "event_id", "recorded_at", "kind", "chart_hospital", "reader_hospital", "actor",
        "patient", "subject_type", "subject_id", "purpose", "flag", "via", "role", "attrs",
        "digest", "status", "anchored_at",
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
            return qs.annotate(chart_visible=Value(True, output_field=BooleanField()))
        own = When(hospital_id__in=admin_hospital_ids(request), then=Value(True))
        return qs.annotate(
            chart_visible=Case(own, default=Value(False), output_field=BooleanField())
        )

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        """An event id, or a subject id among the charts the admin audits in full (a subject
        id of another hospital's chart finds nothing, as an unknown one does)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        found = Q(subject_id=term, **_own_charts(request))
        with contextlib.suppress(ValueError):  # not an event id
            found |= Q(event_id=uuid.UUID(term))
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

    @admin.display(description="patient id")
    def patient(self, obj: Event):
        if not getattr(obj, "chart_visible", False):
            return "another hospital's patient"
        return obj.patient_id if obj.patient_id is not None else "—"

    @admin.display(description="purpose")
    def purpose(self, obj: Event) -> str:
        return (obj.attrs or {}).get("purpose") or ""

    @admin.display(description="break-glass", boolean=True)
    def flag(self, obj: Event) -> bool:
        return obj.kind == "breakglass.opened" or bool((obj.attrs or {}).get("break_glass"))

    @admin.display(description="via")
    def via(self, obj: Event) -> str:
        return (obj.attrs or {}).get("via") or ""

    @admin.display(description="role")
    def role(self, obj: Event) -> str:
        return (obj.attrs or {}).get("role") or ""

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
