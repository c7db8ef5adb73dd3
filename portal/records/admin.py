"""Admin for patients: hospital admins restrict charts here (they cannot open charts).

Lists show no names; the MRN is masked (PHI stays in the provider portal, where opening a
chart is an access event).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from portal.records import services
from portal.records.models import Patient
from portal.tenancy.admin import HospitalAdminAccessMixin


@admin.register(Patient)
class PatientAdmin(HospitalAdminAccessMixin, admin.ModelAdmin):
    list_display = ["id", "masked_mrn", "hospital", "restricted", "created_at"]
    list_filter = ["restricted", "hospital"]
    list_select_related = ["hospital"]
    fields = ["id", "masked_mrn", "hospital", "restricted", "created_at"]
    readonly_fields = fields
    actions = ["restrict", "unrestrict"]

    @admin.display(description="MRN")
    def masked_mrn(self, obj: Patient) -> str:
        mrn = str(obj.mrn or "")
        return "•" * max(len(mrn) - 3, 0) + mrn[-3:]

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return False  # patients are registered in the provider portal or by import

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_restrict_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or self._hospital_admin(request)

    @admin.action(description="Restrict to the care team", permissions=["restrict"])
    def restrict(self, request: HttpRequest, queryset) -> None:
        for patient in queryset:
            services.patient_set_restricted(patient=patient, restricted=True, actor=request.user)
        messages.success(request, f"{queryset.count()} chart(s) restricted to their care team.")

    @admin.action(description="Lift the restriction", permissions=["restrict"])
    def unrestrict(self, request: HttpRequest, queryset) -> None:
        for patient in queryset:
            services.patient_set_restricted(patient=patient, restricted=False, actor=request.user)
        messages.success(request, f"{queryset.count()} chart(s) visible to clinical staff again.")
