"""Consents, access requests, break-glass and proxy grants in the admin: read-only.

They are written only by consent.services (which also write the object permissions and the
ledger events), so nothing here changes them. A consent's page shows its history: the
ledger events about it. A break-glass reason is shown only on its own page.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import BooleanField, Case, Q, Value, When
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from consent.models import (
    AccessRequest,
    BreakGlass,
    BreakGlassFailure,
    Consent,
    ProxyGrant,
    ProxyInvitation,
)
from consent.selectors import events_about
from portal import wording
from portal.admin_site import admin_hospital_ids
from portal.tenancy.admin import AuditorOnlyMixin, HospitalAdminAccessMixin, ReadOnlyMixin


def _history(obj, *, hospital_ids: list[int] | None = None) -> str:
    """The ledger events about a row; with `hospital_ids`, only those of these hospitals."""
    events = events_about(objects=[obj]).get(str(obj.row_uuid), [])
    if hospital_ids is not None:
        events = [e for e in events if e.hospital_id in hospital_ids]
    if not events:
        return "No ledger events."
    return format_html(
        "<table><tr><th>time</th><th>event</th><th>actor</th><th>status</th>"
        "<th>event id</th></tr>{}</table>",
        format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            (
                (
                    f"{e.recorded_at:%Y-%m-%d %H:%M:%S}", e.kind, e.actor_id or "system",
                    e.get_status_display(), e.event_id,
                )
                for e in events
            ),
        ),
    )  # fmt: skip


class ReadOnlyScopedAdmin(ReadOnlyMixin, HospitalAdminAccessMixin, admin.ModelAdmin):
    pass


@admin.register(Consent)
class ConsentAdmin(ReadOnlyScopedAdmin):
    list_display = [
        "row_uuid", "patient_id", "hospital", "grantee_kind", "grantee", "purpose", "status",
        "first_day", "last_day", "created_at",
    ]  # fmt: skip
    list_filter = [
        "status", "grantee_kind", "purpose", ("hospital", admin.RelatedOnlyFieldListFilter),
    ]  # fmt: skip
    list_select_related = [
        "hospital", "grantee_hospital", "grantee_department__hospital", "grantee_user",
    ]  # fmt: skip
    search_fields = ["=row_uuid"]
    fields = [
        "row_uuid", "patient", "hospital", "grantee_kind", "grantee", "purpose", "scope",
        "first_day", "last_day", "period_start", "period_end", "status", "granted_by",
        "access_request", "created_at", "ended_at", "ended_by", "history",
    ]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="grantee")
    def grantee(self, obj: Consent) -> str:
        return obj.grantee_label

    # The days the patient chose (the end is the last day included, as on their page); the
    # exact instants stay in the detail view.
    @admin.display(description="from", ordering="period_start")
    def first_day(self, obj: Consent) -> str:
        return wording.period_start_label(obj.period_start)

    @admin.display(description="last day", ordering="period_end")
    def last_day(self, obj: Consent) -> str:
        return wording.period_end_label(obj.period_end) or "no end"

    @admin.display(description="scope")
    def scope(self, obj: Consent) -> str:
        return ", ".join(obj.scope_labels)

    @admin.display(description="history (ledger events)")
    def history(self, obj: Consent) -> str:
        return _history(obj)


class RequesterOutcomeFilter(admin.SimpleListFilter):
    """Outcome as the requesting side knows it (a denial and no match both read "waiting",
    then "expired"), so filtering tells nothing more than the list does."""

    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return [("waiting", "Waiting for an answer"), ("approved", "Approved"),
                ("expired", "Expired without an answer")]  # fmt: skip

    def queryset(self, request, queryset):
        approved = Q(status=AccessRequest.Status.APPROVED)
        cutoff = timezone.now() - AccessRequest.ANSWER_WITHIN
        if self.value() == "approved":
            return queryset.filter(approved)
        if self.value() == "waiting":
            return queryset.exclude(approved).filter(created_at__gt=cutoff)
        if self.value() == "expired":
            return queryset.exclude(approved).filter(created_at__lte=cutoff)
        return queryset


@admin.register(AccessRequest)
class AccessRequestAdmin(ReadOnlyScopedAdmin):
    """Shown to the requester's hospital admins as the requester sees it: whom the details
    matched, and a denial, only to auditors and the admins of that patient's hospital (and
    to everyone once the patient approved)."""

    list_display = [
        "row_uuid", "requester", "requester_hospital", "addressed_to", "purpose", "outcome",
        "created_at", "decided",
    ]  # fmt: skip
    list_select_related = ["requester", "requester_hospital", "addressee"]
    search_fields = ["=row_uuid"]
    fields = [
        "row_uuid", "requester", "requester_hospital", "addressed_to", "purpose", "outcome",
        "created_at", "decided", "history",
    ]  # fmt: skip
    readonly_fields = fields

    def hospital_q(self, ids: list[int]) -> Q:
        # The requester's hospital, and the hospital of the chart asked for.
        return Q(requester_hospital_id__in=ids) | Q(addressee__hospital_id__in=ids)

    def get_list_filter(self, request: HttpRequest):
        hospitals = ("requester_hospital", admin.RelatedOnlyFieldListFilter)
        if request.user.is_superuser:
            return ["status", "purpose", hospitals]
        return [RequesterOutcomeFilter, "purpose", hospitals]

    def get_queryset(self, request: HttpRequest):
        # Whether this viewer may see whom a row's details matched (computed per row).
        if request.user.is_superuser:
            visible = Value(True)
        else:
            visible = Case(
                When(addressee__hospital_id__in=admin_hospital_ids(request), then=Value(True)),
                default=Value(False), output_field=BooleanField(),
            )  # fmt: skip
        return super().get_queryset(request).annotate(addressee_visible=visible)

    def get_object(self, request: HttpRequest, object_id: str, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj.viewer_hospital_ids = (
                None if request.user.is_superuser else admin_hospital_ids(request)
            )
        return obj

    @admin.display(description="addressed to")
    def addressed_to(self, obj: AccessRequest) -> str:
        if obj.addressee_visible:
            return str(obj.addressee) if obj.addressee_id else "Nobody (no match)"
        if obj.status == AccessRequest.Status.APPROVED and obj.patient_id:
            return str(obj.patient)
        return "Not shown until the patient approves"

    @admin.display(description="outcome")
    def outcome(self, obj: AccessRequest) -> str:
        return obj.state_label if obj.addressee_visible else obj.requester_state_label

    @admin.display(description="decided at")
    def decided(self, obj: AccessRequest):
        if obj.addressee_visible or obj.status == AccessRequest.Status.APPROVED:
            return obj.decided_at
        return None

    @admin.display(description="history (ledger events)")
    def history(self, obj: AccessRequest) -> str:
        return _history(obj, hospital_ids=getattr(obj, "viewer_hospital_ids", []))


class NoticeMailedFilter(admin.SimpleListFilter):
    title = "notice e-mailed"
    parameter_name = "mailed"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "Not yet (the worker keeps trying)")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(mailed_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(mailed_at__isnull=True)
        return queryset


@admin.register(BreakGlass)
class BreakGlassAdmin(ReadOnlyScopedAdmin):
    list_display = [
        "flagged", "row_uuid", "user", "user_hospital", "patient_id", "hospital", "started_at",
        "expires_at", "active", "notice_mailed",
    ]  # fmt: skip
    list_filter = [
        NoticeMailedFilter,
        ("hospital", admin.RelatedOnlyFieldListFilter),
        ("user_hospital", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["user", "user_hospital", "hospital"]
    search_fields = ["=row_uuid"]
    date_hierarchy = "started_at"
    fields = [
        "row_uuid", "user", "user_hospital", "patient", "hospital", "reason", "started_at",
        "expires_at", "notice_mailed", "patient_mailed_at", "admins_mailed_at", "mail_tried_at",
        "history",
    ]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="notice e-mailed", boolean=True)
    def notice_mailed(self, obj: BreakGlass) -> bool:
        # Set only once the mail server accepted every notice: "no" means still to send.
        return obj.mailed_at is not None

    @admin.display(description="⚠", boolean=False)
    def flagged(self, obj: BreakGlass) -> str:
        return "⚠ break-glass"

    @admin.display(description="active", boolean=True)
    def active(self, obj: BreakGlass) -> bool:
        return obj.is_active

    @admin.display(description="history (ledger events)")
    def history(self, obj: BreakGlass) -> str:
        return _history(obj)


@admin.register(BreakGlassFailure)
class BreakGlassFailureAdmin(ReadOnlyScopedAdmin):
    """Emergency-access attempts whose details matched no patient: for the admins of the
    user's hospital and of the hospital they named (the lockout counts these)."""

    list_display = ["attempted_at", "user", "user_hospital", "hospital_named"]
    list_filter = [
        ("user_hospital", admin.RelatedOnlyFieldListFilter),
        ("hospital", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["user", "user_hospital", "hospital"]
    search_fields = ["=row_uuid"]
    date_hierarchy = "attempted_at"
    fields = ["row_uuid", "attempted_at", "user", "user_hospital", "hospital_named"]
    readonly_fields = fields

    def hospital_q(self, ids: list[int]) -> Q:
        return Q(user_hospital_id__in=ids) | Q(hospital_id__in=ids)

    @admin.display(description="hospital named", ordering="hospital__name")
    def hospital_named(self, obj: BreakGlassFailure) -> str:
        return str(obj.hospital)


@admin.register(ProxyInvitation)
class ProxyInvitationAdmin(ReadOnlyMixin, AuditorOnlyMixin, admin.ModelAdmin):
    """Between patient accounts, of no one hospital: auditors only."""

    list_display = ["row_uuid", "grantor", "username", "relationship", "status", "created_at"]
    list_filter = ["status", "relationship"]
    list_select_related = ["grantor"]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return [f.name for f in self.opts.fields]


@admin.register(ProxyGrant)
class ProxyGrantAdmin(ReadOnlyMixin, AuditorOnlyMixin, admin.ModelAdmin):
    """Between two patient accounts, of no one hospital: auditors only."""

    list_display = [
        "row_uuid", "grantor", "proxy", "relationship", "status", "last_day", "created_at",
    ]  # fmt: skip
    list_filter = ["status", "relationship"]
    list_select_related = ["grantor", "proxy"]

    @admin.display(description="last day", ordering="period_end")
    def last_day(self, obj: ProxyGrant) -> str:
        return wording.period_end_label(obj.period_end) or "no end"

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return [f.name for f in self.opts.fields]
