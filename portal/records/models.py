from django.conf import settings
from django.db import models

from portal.tenancy.models import Hospital
from portal.tenancy.scoping import TenantManager


class Patient(models.Model):
    """A patient's registration at one hospital (MRN unique per hospital).

    One person registered at several hospitals has one Patient row per hospital, all linked
    to the same account, which then sees every registration.
    """

    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="patients")
    mrn = models.CharField("MRN", max_length=64)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="patient_registrations",
    )
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    birth_date = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hospital", "mrn"], name="mrn_unique_per_hospital")
        ]
        ordering = ["family_name", "given_name", "id"]

    def __str__(self) -> str:
        return f"Patient {self.mrn} at {self.hospital_id}"


class Observation(models.Model):
    """A vital sign or lab value (FHIR Observation): LOINC code, value, unit, time."""

    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="observations")
    code = models.CharField("LOINC code", max_length=20)
    display = models.CharField(max_length=200)
    value = models.DecimalField(max_digits=12, decimal_places=3)
    unit = models.CharField(max_length=32)
    effective_at = models.DateTimeField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-effective_at", "-id"]
        indexes = [models.Index(fields=["patient", "code", "effective_at"])]

    def __str__(self) -> str:
        return f"Observation {self.code} of patient {self.patient_id}"
