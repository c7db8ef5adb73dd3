"""Consents, access requests, break-glass and proxy grants in the admin: read-only.

They are written only by consent.services (which also write the object permissions and the
ledger events), so nothing here changes them. A consent's page shows its history: the
ledger events about it. A break-glass reason is shown only on its own page.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from consent.models import AccessRequest, BreakGlass, Consent, ProxyGrant
from consent.selectors import events_about
from portal.tenancy.admin import AuditorOnlyMixin, HospitalAdminAccessMixin, ReadOnlyMixin


def _history(obj) -> str:
    events = events_about(objects=[obj]).get(str(obj.row_uuid), [])
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
        "period_start", "period_end", "created_at",
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
        "period_start", "period_end", "status", "granted_by", "access_request", "created_at",
        "ended_at", "ended_by", "history",
    ]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="grantee")
    def grantee(self, obj: Consent) -> str:
        return obj.grantee_label

    @admin.display(description="scope")
    def scope(self, obj: Consent) -> str:
        return ", ".join(obj.scope_labels)

    @admin.display(description="history (ledger events)")
    def history(self, obj: Consent) -> str:
        return _history(obj)


@admin.register(AccessRequest)
class AccessRequestAdmin(ReadOnlyScopedAdmin):
    list_display = [
        "row_uuid", "requester", "requester_hospital", "patient_id", "purpose", "status",
        "created_at", "decided_at",
    ]  # fmt: skip
    list_filter = ["status", "purpose", ("requester_hospital", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["requester", "requester_hospital"]
    search_fields = ["=row_uuid"]
    fields = [
        "row_uuid", "requester", "requester_hospital", "patient", "purpose", "status",
        "created_at", "decided_at", "history",
    ]  # fmt: skip
    readonly_fields = fields

    def hospital_q(self, ids: list[int]) -> Q:
        # The requester's hospital, and the hospital of the chart asked for.
        return Q(requester_hospital_id__in=ids) | Q(patient__hospital_id__in=ids)

    @admin.display(description="history (ledger events)")
    def history(self, obj: AccessRequest) -> str:
        return _history(obj)


@admin.register(BreakGlass)
class BreakGlassAdmin(ReadOnlyScopedAdmin):
    list_display = [
        "flagged", "row_uuid", "user", "user_hospital", "patient_id", "hospital", "started_at",
        "expires_at", "active",
    ]  # fmt: skip
    list_filter = [
        ("hospital", admin.RelatedOnlyFieldListFilter),
        ("user_hospital", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["user", "user_hospital", "hospital"]
    search_fields = ["=row_uuid"]
    date_hierarchy = "started_at"
    fields = [
        "row_uuid", "user", "user_hospital", "patient", "hospital", "reason", "started_at",
        "expires_at", "mailed_at", "history",
    ]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="⚠", boolean=False)
    def flagged(self, obj: BreakGlass) -> str:
        return "⚠ break-glass"

    @admin.display(description="active", boolean=True)
    def active(self, obj: BreakGlass) -> bool:
        return obj.is_active

    @admin.display(description="history (ledger events)")
    def history(self, obj: BreakGlass) -> str:
        return _history(obj)


@admin.register(ProxyGrant)
class ProxyGrantAdmin(ReadOnlyMixin, AuditorOnlyMixin, admin.ModelAdmin):
    """Between two patient accounts, of no one hospital: auditors only."""

    list_display = ["row_uuid", "grantor", "proxy", "relationship", "status", "created_at"]
    list_filter = ["status", "relationship"]
    list_select_related = ["grantor", "proxy"]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return [f.name for f in self.opts.fields]
