"""API tokens: only a SHA-256 hash of each token is stored; the token is shown once."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class TokenAudience(models.TextChoices):
    """Whom a token acts as, fixed when it is issued: a membership given later never turns a
    patient token into a staff one."""

    PATIENT = "patient", "Patient (my own records)"
    STAFF = "staff", "Staff (hospital work)"


class ApiToken(models.Model):
    """A bearer token of one account for the REST and FHIR APIs, acting as a patient or as
    staff (`audience`); `two_factor` says whether two factors were used when it was issued.

    Tokens are 256-bit random strings, so a plain SHA-256 (no salt, no slow hash) is
    enough to make the stored value useless to a reader of the database, and it lets the
    token be found by an indexed equality lookup. `prefix` (the first characters) only helps
    the owner recognise a token in the list.
    """

    # Not a column: why a listed token is refused (api.selectors.tokens_for_user sets it).
    refusal: str | None = None

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12)
    token_hash = models.CharField("SHA-256 of the token", max_length=64, unique=True)
    audience = models.CharField("acts as", max_length=10, choices=TokenAudience.choices)
    two_factor = models.BooleanField("issued after two-factor sign-in", default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(audience__in=TokenAudience.values),
                name="api_token_audience_known",
            )
        ]

    def __str__(self) -> str:
        return f"API token {self.pk} of user {self.user_id}"

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "active"
