"""Patients and clinical records, modelled on their FHIR R4 counterparts.

Records are never hard-deleted: a correction creates a new version that `replaces` the old
one, and the old one is marked entered-in-error, so the history stays readable.
Per-record access is django-guardian object permissions in direct foreign-key tables
(PatientUserObjectPermission, PatientGroupObjectPermission, ClinicalNoteUserObjectPermission),
written only by the registration, care-team and consent services.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from portal.records.categories import CHART_CATEGORIES
from portal.records.fields import (
    BlindIndexField,
    EncryptedBinaryField,
    EncryptedCharField,
    EncryptedDateField,
    EncryptedDecimalField,
    EncryptedTextField,
)
from portal.records.keys_models import HospitalKey  # noqa: F401  (a model of this app)
from portal.tenancy.models import Hospital
from portal.tenancy.scoping import TenantManager


class Patient(models.Model):
    """A patient's registration at one hospital (MRN unique per hospital).

    One person registered at several hospitals has one Patient row per hospital, all linked
    to the same account, which then sees every registration.
    """

    class Sex(models.TextChoices):
        FEMALE = "female", "Female"
        MALE = "male", "Male"
        OTHER = "other", "Other"
        UNKNOWN = "unknown", "Unknown"

    row_uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="patients")
    # Names, identifiers and contact details are encrypted (AES-GCM, per-hospital data keys);
    # search uses the keyed blind indexes next to them.
    mrn = EncryptedCharField("MRN", max_length=64)
    mrn_index = BlindIndexField(source="mrn")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="patient_registrations",
    )
    given_name = EncryptedCharField(max_length=100)
    given_name_index = BlindIndexField(source="given_name")
    family_name = EncryptedCharField(max_length=100)
    family_name_index = BlindIndexField(source="family_name")
    birth_date = EncryptedDateField()
    sex = models.CharField(max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    phone = EncryptedCharField(max_length=40, blank=True, null=True)
    # A VIP or an employee: only the care team may open the chart.
    restricted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hospital", "mrn_index"], name="mrn_unique_per_hospital"
            )
        ]
        # Names are ciphertext in the database: order by registration, not by name.
        ordering = ["id"]
        # Category-scoped views of a chart, granted by consents and proxies that cover only
        # some categories; `view_patient` is the whole chart.
        permissions = [
            (f"view_chart_{code}", f"Can view the chart's {label.lower()}")
            for code, label in CHART_CATEGORIES
        ]

    def __str__(self) -> str:
        return f"Patient {self.pk} at hospital {self.hospital_id}"


class GrantFields(models.Model):
    """What every object-permission row also says: which grant wrote it, and until when.

    One user may hold the same permission on the same chart several times over (the
    hospital-wide grant, a care-team entry, a consent, a break-glass): each grant owns its own
    row, so revoking one never removes another. `source` is "" for registration and care-team
    grants, else "consent:<uuid>", "breakglass:<uuid>" or "proxy:<uuid>". A row whose
    `expires_at` has passed grants nothing, whether or not a sweep has deleted it yet.
    """

    source = models.CharField(max_length=64, default="", blank=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        holder = f"user {self.user_id}" if hasattr(self, "user_id") else f"group {self.group_id}"
        return f"{holder}: permission {self.permission_id} on {self.content_object_id}"


class PatientUserObjectPermission(GrantFields, UserObjectPermissionBase):
    content_object = models.ForeignKey(Patient, on_delete=models.CASCADE)

    class Meta(UserObjectPermissionBase.Meta):
        abstract = False
        unique_together = ["user", "permission", "content_object", "source"]


class PatientGroupObjectPermission(GrantFields, GroupObjectPermissionBase):
    content_object = models.ForeignKey(Patient, on_delete=models.CASCADE)

    class Meta(GroupObjectPermissionBase.Meta):
        abstract = False
        unique_together = ["group", "permission", "content_object", "source"]


class CareTeamMember(models.Model):
    """A named member of a patient's care team (the grant that survives restriction)."""

    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="care_team")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="care_teams"
    )
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "user"], name="one_care_team_entry")
        ]

    def __str__(self) -> str:
        return f"care team of patient {self.patient_id}: user {self.user_id}"


class RecordStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ENTERED_IN_ERROR = "entered-in-error", "Entered in error"


class ClinicalRecord(models.Model):
    """Fields every clinical record shares: owner, patient, version history, author."""

    row_uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=20, choices=RecordStatus.choices, default=RecordStatus.ACTIVE
    )
    version = models.PositiveIntegerField(default=1)
    replaces = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="replaced_by"
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.pk} of patient {self.patient_id}"


class Encounter(ClinicalRecord):
    class_code = models.CharField(max_length=20, default="AMB")  # v3 ActCode: AMB, IMP, EMER
    type_code = models.CharField(max_length=40, blank=True, default="")
    type_display = models.CharField(max_length=200, blank=True, default="")
    reason = EncryptedTextField(blank=True, null=True)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["patient", "period_start"])]


class Observation(ClinicalRecord):
    """A vital sign or lab value: LOINC code, value, unit, effective time."""

    class Category(models.TextChoices):
        VITAL_SIGNS = "vital-signs", "Vital signs"
        LABORATORY = "laboratory", "Laboratory"

    category = models.CharField(max_length=20, choices=Category.choices)
    code = models.CharField("LOINC code", max_length=20)
    display = models.CharField(max_length=200)
    value = EncryptedDecimalField(max_digits=12, decimal_places=3)
    unit = models.CharField(max_length=32)
    effective_at = models.DateTimeField()
    encounter = models.ForeignKey(
        Encounter, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["patient", "code", "effective_at"])]


class Condition(ClinicalRecord):
    code = models.CharField(max_length=40)  # SNOMED CT
    display = models.CharField(max_length=200)
    clinical_status = models.CharField(max_length=20, default="active")
    onset_date = models.DateField(null=True, blank=True)
    abatement_date = models.DateField(null=True, blank=True)


class MedicationRequest(ClinicalRecord):
    code = models.CharField(max_length=40)  # RxNorm
    display = models.CharField(max_length=200)
    dosage = EncryptedTextField(blank=True, null=True)
    request_status = models.CharField(max_length=20, default="active")
    authored_on = models.DateTimeField()


class AllergyIntolerance(ClinicalRecord):
    code = models.CharField(max_length=40)
    display = models.CharField(max_length=200)
    criticality = models.CharField(max_length=20, default="unable-to-assess")
    reaction = EncryptedTextField(blank=True, null=True)
    recorded_date = models.DateTimeField()


class Immunization(ClinicalRecord):
    vaccine_code = models.CharField(max_length=20)  # CVX
    display = models.CharField(max_length=200)
    occurrence = models.DateTimeField()


class Procedure(ClinicalRecord):
    code = models.CharField(max_length=40)
    display = models.CharField(max_length=200)
    performed_at = models.DateTimeField()


class ClinicalNote(ClinicalRecord):
    """Free text. A restricted note (for example psychotherapy) is visible only to users
    granted on that very note."""

    title = EncryptedCharField(max_length=200)
    text = EncryptedTextField()
    restricted = models.BooleanField(default=False)


class ClinicalNoteUserObjectPermission(GrantFields, UserObjectPermissionBase):
    content_object = models.ForeignKey(ClinicalNote, on_delete=models.CASCADE)

    class Meta(UserObjectPermissionBase.Meta):
        abstract = False
        unique_together = ["user", "permission", "content_object", "source"]


class Document(ClinicalRecord):
    title = EncryptedCharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    content = EncryptedBinaryField()


RECORD_MODELS: tuple[type[ClinicalRecord], ...] = (
    Encounter,
    Observation,
    Condition,
    MedicationRequest,
    AllergyIntolerance,
    Immunization,
    Procedure,
    ClinicalNote,
    Document,
)
