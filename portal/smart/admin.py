"""SMART apps in the admin: DOT's own Application admin registers the OAuth client (client
id, secret, redirect URIs, public or confidential); this adds what SMART needs (the launch
page, EHR launch) and lists the authorizations people gave, read-only (they change only
through the services, with their ledger events)."""

from django.contrib import admin

from portal.admin_base import PortalModelAdminMixin
from portal.smart.models import SmartApp, SmartAuthorization


@admin.register(SmartApp)
class SmartAppAdmin(PortalModelAdminMixin, admin.ModelAdmin):
    list_display = ("application", "ehr_launch", "launch_url")
    search_fields = ("application__name", "application__client_id")
    raw_id_fields = ("application",)


@admin.register(SmartAuthorization)
class SmartAuthorizationAdmin(PortalModelAdminMixin, admin.ModelAdmin):
    list_display = ("application", "audience", "launch", "hospital", "created_at", "revoked_at")
    list_filter = ("audience", "launch")
    fields = ("application", "audience", "launch", "hospital", "scope", "two_factor",
              "created_at", "revoked_at")  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
