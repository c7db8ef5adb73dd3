"""Users, groups, log-in records and sign-in devices in the admin: read-only, for everyone,
and a ledgered device reset.

Accounts are made by the portals and `seed_demo`; groups and object permissions are written
only by the tenancy, records and consent services, so nothing here changes them (Django's
GroupAdmin would let a superuser edit them; permissions themselves have no admin). A
hospital admin sees the accounts holding a membership at their hospital, and no groups.
Failed and successful log-ins (django-axes) are audit records: auditors read them, nobody
deletes them here (a locked-out account is released with `manage.py axes_reset_username`).
"""

from __future__ import annotations

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model, logout
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from portal.accounts import services
from portal.accounts.models import TOTPDevice
from portal.admin_base import admin_hospital_ids
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


# --- sign-in devices --------------------------------------------------------------------------

# django-otp's own TOTP admin shows and edits the secret; its model is not used (see
# accounts.models.TOTPDevice), but the app stays installed for its migration history.
if apps.is_installed("django_otp.plugins.otp_totp"):
    _legacy = apps.get_model("otp_totp", "TOTPDevice")
    if admin.site.is_registered(_legacy):
        admin.site.unregister(_legacy)


class ResetForm(forms.Form):
    token = forms.RegexField(
        regex=r"^\s*\d{6}\s*$",
        label="Your own current 6-digit code",
        error_messages={"invalid": "Enter the 6-digit code shown in your authenticator app."},
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(ReadOnlyMixin, HospitalAdminAccessMixin, admin.ModelAdmin):
    """Sign-in devices: whether one exists, is confirmed, and when it was last used; never
    its secret. Nobody adds, edits or deletes one here; *Reset* removes an account's devices
    (ledgered), so that it sets up a new one at its next sign-in. Auditors may reset anyone
    but themselves (their own devices are changed from the two-factor page, with a code);
    a hospital admin only their own hospital's active staff, never themselves and never a
    superuser: other rows are not in their list, and their ids answer 404."""

    list_display = ["user", "name", "confirmed", "has_key", "created_at", "last_used_at"]
    list_filter = ["confirmed"]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    fields = ["user", "name", "confirmed", "has_key", "created_at", "last_used_at",
              "throttling_failure_count"]  # fmt: skip
    readonly_fields = fields
    change_form_template = "admin/accounts/totpdevice/change_form.html"

    def get_queryset(self, request: HttpRequest):
        qs = admin.ModelAdmin.get_queryset(self, request).exclude(user=request.user)
        if request.user.is_superuser:
            return qs
        staff = Membership._base_manager.filter(
            hospital_id__in=admin_hospital_ids(request), is_active=True
        )
        return qs.filter(user__in=staff.values("user_id"), user__is_superuser=False)

    @admin.display(boolean=True, description="secret set")
    def has_key(self, obj: TOTPDevice) -> bool:
        return bool(obj.encrypted_key)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/reset/",
                self.admin_site.admin_view(self.reset_view),
                name="accounts_totpdevice_reset",
            ),
            *super().get_urls(),
        ]

    def reset_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        device = self.get_object(request, unquote(object_id))
        if device is None or not self.has_view_permission(request, device):
            raise Http404("No such device.")
        account = device.user
        form = ResetForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            token = form.cleaned_data["token"].strip()
            verified_by = services.totp_code_check(user=request.user, token=token)
            if verified_by is not None:
                removed = services.totp_devices_reset(
                    user=account, actor=request.user, verified_by=verified_by
                )
                services.two_factor_code_passed(request=request, device=verified_by)
                self.message_user(
                    request,
                    f"Two-factor sign-in of {account.get_username()} was reset ({removed} "
                    "device(s) removed): they set up a new authenticator app at their next "
                    "sign-in.",
                    messages.SUCCESS,
                )
                return redirect("admin:accounts_totpdevice_changelist")
            if not services.two_factor_code_failed(request=request, user=request.user):
                logout(request)
                return redirect("accounts:login")
            form.add_error(
                "token",
                "That code is not correct or has expired. Wait for the next one (after a "
                "wrong code, also a few seconds).",
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reset two-factor sign-in of {account.get_username()}",
            "opts": self.model._meta,
            "device": device,
            "account": account,
            "devices": TOTPDevice.objects.filter(user=account).count(),
            "form": form,
        }
        response = TemplateResponse(
            request, "admin/accounts/totpdevice/reset.html", context,
            status=400 if form.errors else 200,
        )  # fmt: skip
        return response


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
