from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.http import HttpRequest

from portal.admin_site import admin_hospital_ids
from portal.tenancy.models import Hospital, Membership
from portal.tenancy.services import membership_sync_groups


class HospitalAdminAccessMixin:
    """Lets hospital admins into a ModelAdmin; rows are limited by the request's scope.

    Superusers keep Django's model permissions. A hospital admin (no model permissions) is
    allowed to view, and to add/change when `hospital_admin_can_edit` is set.
    """

    hospital_admin_can_edit = False

    def _hospital_admin(self, request: HttpRequest) -> bool:
        return not request.user.is_superuser and bool(admin_hospital_ids(request))

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


@admin.register(Hospital)
class HospitalAdmin(HospitalAdminAccessMixin, admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request: HttpRequest):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(pk__in=admin_hospital_ids(request))


@admin.register(Membership)
class MembershipAdmin(HospitalAdminAccessMixin, admin.ModelAdmin):
    hospital_admin_can_edit = True
    list_display = ["user", "hospital", "role", "is_active", "created_at"]
    list_filter = ["role", "is_active", "hospital"]
    search_fields = ["user__username"]
    list_select_related = ["user", "hospital"]

    def save_model(self, request: HttpRequest, obj: Membership, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        membership_sync_groups(membership=obj)

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        if not request.user.is_superuser:
            ids = admin_hospital_ids(request)
            if db_field.name == "hospital":
                kwargs["queryset"] = Hospital.objects.filter(pk__in=ids)
            elif db_field.name == "user":
                # A hospital admin picks among their own staff and accounts with no role
                # anywhere yet, never another hospital's staff or an auditor.
                users = get_user_model()._default_manager.filter(is_superuser=False)
                kwargs["queryset"] = users.exclude(
                    pk__in=Membership._base_manager.exclude(hospital_id__in=ids).values("user_id")
                ).order_by("username")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
