from django.conf import settings
from django.db import models

from portal.tenancy.scoping import TenantManager


class Hospital(models.Model):
    """The tenant. Everything clinical belongs to exactly one hospital."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    CLINICIAN = "clinician", "Clinician"
    NURSE = "nurse", "Nurse"
    RECORDS_CLERK = "records_clerk", "Records clerk"
    HOSPITAL_ADMIN = "hospital_admin", "Hospital admin"


# Roles that work with charts; they see the hospital's unrestricted patients.
CLINICAL_ROLES = frozenset({Role.CLINICIAN, Role.NURSE, Role.RECORDS_CLERK})
# What each role may do (break glass, ask for access, which parts of a chart): the access
# module's table, portal.records.access.ROLE_ACTIONS.


class Department(models.Model):
    """A department or named team of a hospital (Cardiology, the emergency department).

    Consents may name one as grantee; its members see what it is granted through a group
    of their own, kept in step with memberships by the membership service.
    """

    hospital = models.ForeignKey(Hospital, on_delete=models.CASCADE, related_name="departments")
    slug = models.SlugField(max_length=50)
    name = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hospital", "slug"], name="department_slug_per_hospital"
            )
        ]
        ordering = ["hospital__name", "name"]

    def __str__(self) -> str:
        return f"{self.name}, {self.hospital.name}"

    @property
    def group_name(self) -> str:
        return f"department-{self.pk}"


class Membership(models.Model):
    """A staff member's role at one hospital. A user may hold memberships at several."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    hospital = models.ForeignKey(Hospital, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    department = models.ForeignKey(
        Department, on_delete=models.SET_NULL, null=True, blank=True, related_name="members"
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "hospital"], name="one_membership_per_hospital")
        ]
        ordering = ["hospital__name"]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()} · {self.hospital}"
