"""SMART App Launch: the apps the portal knows beyond DOT's Application, the authorizations
people gave them, which DOT access tokens each authorization issued, and EHR launch contexts.

An authorization (a patient approved app X to read Y of chart Z, or a clinician launched app
X on a chart) is what grants access: it is ledgered (smart.authorized, smart.revoked) and a
token reads nothing unless it is linked to a live one. DOT's own rows (applications,
grants, tokens) are credentials derived from it and are not ledgered themselves.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from oauth2_provider.settings import oauth2_settings

from portal.records.models import Patient
from portal.tenancy.models import Hospital


class SmartApp(models.Model):
    """What SMART adds to a DOT Application: where an EHR launch sends the browser, and
    whether staff may launch it from a chart."""

    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE, related_name="smart_app"
    )
    launch_url = models.URLField(
        blank=True, help_text="The app's launch page (EHR launch): it receives iss and launch."
    )
    ehr_launch = models.BooleanField(
        default=False, help_text="Staff may launch it from a patient's chart."
    )
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name = "SMART app"

    def __str__(self) -> str:
        return str(self.application.name)


class SmartAuthorization(models.Model):
    """A person's approval of an app: the scopes granted, whose chart (the launch patient),
    how (standalone or EHR launch), and whether the session had two factors. Ended by
    revocation (the patient, the app, an admin); never deleted."""

    class Launch(models.TextChoices):
        STANDALONE = "standalone", "Standalone launch"
        EHR = "ehr", "Launched from the portal"

    class Audience(models.TextChoices):
        PATIENT = "patient", "Patient"
        STAFF = "staff", "Staff"

    row_uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    application = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="smart_authorizations"
    )
    # The hospital the authorization belongs to: the launch patient's, or the staff member's
    # active one (user/ scopes without a patient).
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    audience = models.CharField(max_length=10, choices=Audience.choices)
    launch = models.CharField(max_length=12, choices=Launch.choices)
    scope = models.TextField()  # the granted scopes, space separated (codes, no PHI)
    two_factor = models.BooleanField()  # the session that approved had passed two factors
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="+",
    )  # fmt: skip

    class Meta:
        verbose_name = "SMART app authorization"
        constraints = [
            # The two-factor rule for staff, in the database too: no staff authorization
            # (and so no staff token) without a session verified with two factors.
            models.CheckConstraint(
                condition=~models.Q(audience="staff") | models.Q(two_factor=True),
                name="smart_staff_two_factor",
            ),
        ]

    def __str__(self) -> str:
        return f"SMART authorization {self.row_uuid}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def scopes(self) -> list[str]:
        return self.scope.split()


class SmartToken(models.Model):
    """Which authorization an access token was issued under (DOT's AccessToken has no
    place for it). Gone with its token."""

    authorization = models.ForeignKey(
        SmartAuthorization, on_delete=models.CASCADE, related_name="tokens"
    )
    access_token = models.OneToOneField(
        oauth2_settings.ACCESS_TOKEN_MODEL, on_delete=models.CASCADE, related_name="smart_token"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"SMART token {self.pk}"


class LaunchContext(models.Model):
    """An EHR launch: a clinician pressed "Launch app" on a chart. The app gets an opaque
    `launch` value (only its hash is kept); the authorization request that names it resolves
    it, for the same user, once, within a few minutes."""

    launch_hash = models.CharField(max_length=64, unique=True)
    application = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    hospital = models.ForeignKey(Hospital, on_delete=models.CASCADE, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"EHR launch {self.pk}"


class SmartCode(models.Model):
    """Which authorization an authorization code (DOT's Grant) was issued under, until the
    app exchanges it (gone with the code)."""

    authorization = models.ForeignKey(
        SmartAuthorization, on_delete=models.CASCADE, related_name="+"
    )
    grant = models.OneToOneField(
        oauth2_settings.GRANT_MODEL, on_delete=models.CASCADE, related_name="smart_code"
    )

    def __str__(self) -> str:
        return f"SMART code {self.pk}"
