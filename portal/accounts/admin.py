"""Users, groups and log-in records in the admin: read-only, for everyone.

Accounts are made by the portals and `seed_demo`; groups and object permissions are written
only by the tenancy, records and consent services, so nothing here changes them (Django's
GroupAdmin would let a superuser edit them; permissions themselves have no admin). A
hospital admin sees the accounts holding a membership at their hospital, and no groups.
Failed and successful log-ins (django-axes) are audit records: auditors read them, nobody
deletes them here (a locked-out account is released with `manage.py axes_reset_username`).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest

from portal.admin_site import admin_hospital_ids
from portal.tenancy.admin import AuditorOnlyMixin, HospitalAdminAccessMixin, ReadOnlyMixin
from portal.tenancy.models import Membership

User = get_user_model()

for model in (User, Group):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


@admin.register(Group)
class PortalGroupAdmin(ReadOnlyMixin, AuditorOnlyMixin, GroupAdmin):
    """The hospital-wide and department groups, kept by the tenancy service: auditors only."""

    list_display = ["name"]


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


def _read_only_axes_admins() -> None:
    """django-axes registers editable admins (a superuser could delete log-in records);
    the same admins again, read-only and without the bulk clean-up action."""
    from axes import admin as axes_admin
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    for model, base in (
        (AccessAttempt, axes_admin.AccessAttemptAdmin),
        (AccessLog, axes_admin.AccessLogAdmin),
        (AccessFailureLog, axes_admin.AccessFailureLogAdmin),
    ):
        if not admin.site.is_registered(model):
            continue  # AXES_ENABLE_ADMIN is off
        admin.site.unregister(model)
        read_only = type(
            f"ReadOnly{base.__name__}",
            (ReadOnlyMixin, AuditorOnlyMixin, base),
            {"actions": [], "__module__": __name__},
        )
        admin.site.register(model, read_only)


_read_only_axes_admins()
