"""Users in the admin: read-only.

Accounts are made by the portals and `seed_demo`; groups and object permissions are written
only by the tenancy, records and consent services, so nothing here changes them. A hospital
admin sees the accounts holding a membership at their hospital.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest

from portal.admin_site import admin_hospital_ids
from portal.tenancy.admin import HospitalAdminAccessMixin, ReadOnlyMixin
from portal.tenancy.models import Membership

User = get_user_model()

if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class PortalUserAdmin(ReadOnlyMixin, HospitalAdminAccessMixin, UserAdmin):
    list_display = ["username", "first_name", "last_name", "is_active", "is_superuser"]
    list_filter = ["is_active", "is_superuser"]
    search_fields = ["username", "first_name", "last_name"]
    fieldsets = [
        (None, {"fields": ["username", "first_name", "last_name", "email", "is_active"]}),
        ("Roles", {"fields": ["is_superuser", "memberships_text"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    readonly_fields = ["memberships_text"]

    def get_queryset(self, request: HttpRequest):
        qs = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return qs
        staff = Membership._base_manager.filter(hospital_id__in=admin_hospital_ids(request))
        return qs.filter(pk__in=staff.values("user_id"), is_superuser=False)

    def get_fieldsets(self, request: HttpRequest, obj=None):
        if request.user.is_superuser:
            return self.fieldsets
        # A hospital admin does not learn where else their staff work.
        return [(None, {"fields": ["username", "first_name", "last_name", "is_active"]})]

    @admin.display(description="memberships")
    def memberships_text(self, obj) -> str:
        rows = Membership._base_manager.filter(user=obj).select_related("hospital")
        return "; ".join(str(m) for m in rows) or "none"
