"""Admin for patients and the object-permission tables.

Lists show no PHI in the clear: the MRN keeps its last three characters and names their
initials ("J*** S***"). The change page of one patient (the admin's own hospital only) shows
the demographics and is recorded as an access event (`chart.read`, via=admin). Hospital
admins restrict charts here; they cannot open them in the provider portal.
The permission tables are read-only: only the records and consent services write them.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from portal.admin_base import admin_hospital_ids
from portal.records import audit, search, services
from portal.records.models import (
    ClinicalNoteUserObjectPermission,
    Patient,
    PatientGroupObjectPermission,
    PatientUserObjectPermission,
)
from portal.tenancy.admin import HospitalAdminAccessMixin, ReadOnlyMixin
from portal.tenancy.models import Hospital


def mask_text(value: str | None) -> str:
    """ "Jane Smith" -> "J*** S***": the first letter of each word, never more."""
    words = str(value or "").split()
    return " ".join(f"{w[0]}***" for w in words) or "—"


def mask_mrn(value: str | None) -> str:
    mrn = str(value or "")
    return "•" * max(len(mrn) - 3, 0) + mrn[-3:]


@admin.register(Patient)
class PatientAdmin(HospitalAdminAccessMixin, admin.ModelAdmin):
    list_display = ["id", "masked_name", "masked_mrn", "hospital", "restricted", "created_at"]
    list_filter = ["restricted", ("hospital", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["hospital"]
    fields = [
        "id", "hospital", "mrn", "given_name", "family_name", "birth_date", "sex", "phone",
        "restricted", "created_at",
    ]  # fmt: skip
    readonly_fields = fields
    actions = ["restrict", "unrestrict"]
    # The search box (get_search_results decides what it finds: MRNs are encrypted).
    search_fields = ["mrn"]

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        """By MRN, exact or a prefix of 3 or more characters, through the keyed blind
        indexes of the hospitals this admin sees (their queryset decides which rows show)."""
        if not search_term.strip():
            return queryset, False
        if request.user.is_superuser:
            hospital_ids = list(Hospital.objects.values_list("pk", flat=True))
        else:
            hospital_ids = admin_hospital_ids(request)
        found = search.patient_ids_by_mrn(hospital_ids=hospital_ids, term=search_term)
        return queryset.filter(pk__in=found), False

    @admin.display(description="MRN")
    def masked_mrn(self, obj: Patient) -> str:
        return mask_mrn(obj.mrn)

    @admin.display(description="name")
    def masked_name(self, obj: Patient) -> str:
        return f"{mask_text(obj.given_name)} {mask_text(obj.family_name)}"

    def change_view(self, request: HttpRequest, object_id, form_url="", extra_context=None):
        patient = self.get_object(request, object_id)
        if patient is not None and request.method == "GET":
            # A hospital admin only gets their own hospitals' patients here: they act in
            # that hospital's admin membership. An auditor acts in no hospital.
            audit.chart_read_record(reader=request.user, administration=patient)
        return super().change_view(request, object_id, form_url, extra_context)

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


class ObjectPermissionAdmin(ReadOnlyMixin, HospitalAdminAccessMixin, admin.ModelAdmin):
    hospital_field = "content_object__hospital"
    list_filter = [("content_object__hospital", admin.RelatedOnlyFieldListFilter), "source"]
    search_fields = ["source"]

    @admin.display(description="permission")
    def codename(self, obj) -> str:
        return obj.permission.codename


@admin.register(PatientUserObjectPermission)
class PatientUserObjectPermissionAdmin(ObjectPermissionAdmin):
    list_display = ["id", "user", "codename", "content_object_id", "source", "expires_at"]
    list_select_related = ["user", "permission"]


@admin.register(PatientGroupObjectPermission)
class PatientGroupObjectPermissionAdmin(ObjectPermissionAdmin):
    list_display = ["id", "group", "codename", "content_object_id", "source", "expires_at"]
    list_select_related = ["group", "permission"]


@admin.register(ClinicalNoteUserObjectPermission)
class ClinicalNoteUserObjectPermissionAdmin(ObjectPermissionAdmin):
    list_display = ["id", "user", "codename", "content_object_id", "source", "expires_at"]
    list_select_related = ["user", "permission"]
