"""Admin for hospitals, departments and memberships, and the mixins every admin uses.

Every write goes through portal.tenancy.services: a membership added or changed here is a
`membership.changed` ledger event in the same transaction, and its groups are synced.
Nobody changes their own membership, superusers included (the service refuses it too), and
nothing is deleted here: a membership is deactivated, which is ledgered; a deletion would not be.
A membership is added by typing the account's exact username (never a list of accounts): a
hospital admin may name only accounts tied to no hospital but theirs.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Q
from django.http import HttpRequest

from portal.admin_base import MissingIsNotFoundMixin, PortalModelAdminMixin, admin_hospital_ids
from portal.tenancy import selectors, services
from portal.tenancy.models import Department, Hospital, Membership


class HospitalAdminAccessMixin(MissingIsNotFoundMixin, PortalModelAdminMixin):
    """Lets hospital admins into a ModelAdmin and keeps them inside their hospitals.

    Superusers keep Django's model permissions. A hospital admin (no model permissions) is
    allowed to view, and to add/change when `hospital_admin_can_edit` is set. Their rows are
    filtered by `hospital_field` (a lookup path to the owning hospital), on top of the
    request's hospital scope for tenant-owned models; `None` leaves them out entirely.
    Missing and foreign objects are both 404 (Django's default is a redirect).
    """

    hospital_admin_can_edit = False
    hospital_admin_can_view = True
    hospital_field: str | None = "hospital"

    def _hospital_admin(self, request: HttpRequest) -> bool:
        return (
            not request.user.is_superuser
            and self.hospital_admin_can_view
            and bool(admin_hospital_ids(request))
        )

    def get_queryset(self, request: HttpRequest):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        if not self.hospital_admin_can_view:
            return qs.none()
        return qs.filter(self.hospital_q(admin_hospital_ids(request)))

    def hospital_q(self, ids: list[int]) -> Q:
        """The rows of these hospitals (override for rows that belong to two)."""
        if self.hospital_field is None:
            return Q(pk__in=[])
        return Q(**{f"{self.hospital_field}__in": ids})

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._hospital_admin(request) or super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._hospital_admin(request) or super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        if self._hospital_admin(request):
            return self.hospital_admin_can_edit
        return super().has_add_permission(request, *args)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        if self._hospital_admin(request):
            return self.hospital_admin_can_edit
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        if self._hospital_admin(request):
            return False
        return super().has_delete_permission(request, obj)


class ReadOnlyMixin(PortalModelAdminMixin):
    """Rows written only by services (ledger, consents, permissions): shown, never changed."""

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class AuditorOnlyMixin(MissingIsNotFoundMixin, PortalModelAdminMixin):
    """Cross-hospital data (the log itself, checkpoints): superusers only; 404 when missing."""


class NoDeleteMixin:
    """Tenancy rows are never deleted in the admin: a deletion would cascade to memberships
    without a ledger event or group sync. Deactivate a membership instead."""

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Hospital)
class HospitalAdmin(NoDeleteMixin, HospitalAdminAccessMixin, admin.ModelAdmin):
    hospital_field = "pk"
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    fields = ["name", "slug"]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return ["slug"] if obj is not None else []

    def get_prepopulated_fields(self, request: HttpRequest, obj=None):
        return {"slug": ["name"]} if obj is None else {}

    def save_model(self, request: HttpRequest, obj: Hospital, form, change: bool) -> None:
        saved = services.hospital_ensure(slug=obj.slug, name=obj.name)
        obj.pk = saved.pk


@admin.register(Department)
class DepartmentAdmin(NoDeleteMixin, HospitalAdminAccessMixin, admin.ModelAdmin):
    hospital_admin_can_edit = True
    list_display = ["name", "slug", "hospital"]
    list_filter = [("hospital", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["hospital"]
    search_fields = ["name", "slug"]
    fields = ["hospital", "name", "slug"]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return ["hospital", "slug"] if obj is not None else []

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "hospital" and not request.user.is_superuser:
            kwargs["queryset"] = Hospital.objects.filter(pk__in=admin_hospital_ids(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Department, form, change: bool) -> None:
        saved = services.department_ensure(hospital=obj.hospital, slug=obj.slug, name=obj.name)
        obj.pk = saved.pk


class AccountByUsernameField(forms.ModelChoiceField):
    """The account a new membership is for, typed as its exact username: a text box, never a
    list, so the form shows no one's accounts; any name the admin may not use (unknown,
    another hospital's patient or staff, a superuser, their own) gets the same answer."""

    widget = forms.TextInput
    default_error_messages = {
        "invalid_choice": (
            "There is no account with this username that you can add. Type the exact "
            "username the person signs in with."
        ),
    }

    def __init__(self, queryset, **kwargs):
        kwargs.setdefault("label", "Account (username)")
        kwargs.setdefault("help_text", "The exact username of the account, as they sign in.")
        super().__init__(queryset, to_field_name="username", **kwargs)


@admin.register(Membership)
class MembershipAdmin(NoDeleteMixin, HospitalAdminAccessMixin, admin.ModelAdmin):
    hospital_admin_can_edit = True
    list_display = ["user", "hospital", "role", "department", "is_active", "created_at"]
    list_filter = [
        "role",
        "is_active",
        ("hospital", admin.RelatedOnlyFieldListFilter),
        ("department", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["user__username"]
    list_select_related = ["user", "hospital", "department__hospital"]
    fields = ["user", "hospital", "role", "department", "is_active"]

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # One's own membership is shown, never changed: not by a hospital admin (who could
        # make themselves a clinician and read charts), not by a superuser either.
        if obj is not None and obj.user_id == request.user.pk:
            return False
        return super().has_change_permission(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return ["user", "hospital"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Membership, form, change: bool) -> None:
        data = form.cleaned_data
        if change:
            saved = services.membership_update(
                membership=obj, role=data["role"], department=data.get("department"),
                is_active=data["is_active"], actor=request.user,
            )  # fmt: skip
        else:
            saved = services.membership_create(
                user=data["user"], hospital=data["hospital"], role=data["role"],
                department=data.get("department"), is_active=data["is_active"],
                actor=request.user,
            )  # fmt: skip
        obj.pk = saved.pk

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        hospital_id = obj.hospital_id if obj is not None else None

        class MembershipForm(form):
            def clean(self):
                data = super().clean()
                department = data.get("department")
                hospital = data.get("hospital")
                owner = hospital.pk if hospital is not None else hospital_id
                if department is not None and owner is not None and department.hospital_id != owner:
                    self.add_error("department", "This department belongs to another hospital.")
                return data

        return MembershipForm

    def formfield_for_dbfield(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "user":
            # Not Django's select (every account) nor its related-object links.
            return AccountByUsernameField(
                selectors.membership_candidates(actor=request.user), required=True
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        if not request.user.is_superuser:
            ids = admin_hospital_ids(request)
            if db_field.name == "hospital":
                kwargs["queryset"] = Hospital.objects.filter(pk__in=ids)
            elif db_field.name == "department":
                kwargs["queryset"] = Department.objects.filter(hospital_id__in=ids)
        elif db_field.name == "department":
            kwargs["queryset"] = Department.objects.select_related("hospital")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
