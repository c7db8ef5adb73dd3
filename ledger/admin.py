"""The ledger in the admin, read-only.

Access events (who opened which chart, record or document, and break-glass) are the
auditors' list: hospital admins see their hospital's only. The log itself (every event,
entries, checkpoints, verification runs) is auditors' only, since it spans every hospital.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime, time

from django import forms
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import path
from django.utils.timezone import get_current_timezone

from ledger.models import AccessEvent, Checkpoint, Entry, Event, VerificationRun
from portal.admin_site import ChoiceListFilter, InputListFilter
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
        "subject_type",
        "subject_id",
        "status",
        "recorded_at",
    ]
    list_filter = ["status", "kind", "hospital"]
    list_select_related = ["hospital"]
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

    def filter(self, queryset, cleaned_data: dict):
        return queryset.filter(patient_id=cleaned_data["patient"])


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


class _Echo:
    def write(self, value: str) -> str:
        return value


CSV_HEADER = [
    "event_id", "recorded_at", "kind", "hospital_id", "hospital", "actor_id", "actor_username",
    "actor_name", "patient_id", "subject_type", "subject_id", "purpose", "break_glass", "via",
    "role", "status", "anchored_at",
]  # fmt: skip


def access_events_csv(queryset) -> Iterator[str]:
    """CSV rows of access events: ids, codes and staff names only (never patient data)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    rows = queryset.select_related("hospital", "actor").order_by("-recorded_at", "-id")
    for e in rows.iterator(chunk_size=2000):
        attrs = e.attrs or {}
        actor = e.actor
        yield writer.writerow(
            [
                e.event_id, e.recorded_at.isoformat(), e.kind, e.hospital_id, e.hospital.name,
                e.actor_id or "", actor.get_username() if actor else "",
                actor.get_full_name() if actor else "", e.patient_id or "", e.subject_type,
                e.subject_id, attrs.get("purpose") or "",
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
        "recorded_at", "kind", "hospital", "actor", "patient_id", "purpose", "flag", "via",
        "role", "status",
    ]  # fmt: skip
    list_filter = [
        KindFilter,
        ("hospital", admin.RelatedOnlyFieldListFilter),
        ("actor", admin.RelatedOnlyFieldListFilter),
        PatientIdFilter,
        DateRangeFilter,
        BreakGlassFilter,
        PurposeFilter,
    ]
    list_select_related = ["hospital", "actor"]
    search_fields = ["=event_id", "=subject_id"]
    exclude = ["leaf"]
    actions = ["export_csv"]
    show_full_result_count = False

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


@admin.register(VerificationRun)
class VerificationRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "status", "requested_by", "requested_at", "finished_at", "stage"]
    list_filter = ["status"]
    list_select_related = ["requested_by"]
