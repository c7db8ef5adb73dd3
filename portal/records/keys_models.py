"""Per-hospital data encryption keys, stored only wrapped under a master key.

Infrastructure, not tenant data: the default manager is a plain manager (the encryption code
runs in every scope, including none), and nothing here is ever shown to users.
"""

from __future__ import annotations

from django.db import models

from portal.tenancy.models import Hospital


class HospitalKey(models.Model):
    """One version of a hospital's data key (DEK).

    `wrapped_key` = nonce(12) + AES-GCM(master key `master_key_id`, dek,
    aad=f"hospital-dek|{hospital_id}|{version}"). Rows are never deleted and versions never
    reused: blobs name the version that encrypted them, and caches rely on a version's DEK
    never changing. Exactly one version per hospital is current (encrypts new values).
    """

    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    version = models.PositiveIntegerField()
    master_key_id = models.CharField(max_length=32)
    wrapped_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    rewrapped_at = models.DateTimeField(null=True, blank=True)
    is_current = models.BooleanField(default=False)

    objects = models.Manager()

    class Meta:
        app_label = "records"
        constraints = [
            models.UniqueConstraint(
                fields=["hospital", "version"], name="hospital_key_version_unique"
            ),
            # At most one current key per hospital; data_key() creates the first, so there
            # is exactly one once a hospital has any key.
            models.UniqueConstraint(
                fields=["hospital"],
                condition=models.Q(is_current=True),
                name="hospital_key_one_current",
            ),
            models.CheckConstraint(
                condition=models.Q(version__gte=1), name="hospital_key_version_positive"
            ),
        ]
        ordering = ["hospital_id", "version"]

    def __str__(self) -> str:
        return f"data key v{self.version} of hospital {self.hospital_id} ({self.master_key_id})"


class SiteKey(models.Model):
    """A site-wide secret for what belongs to no hospital, stored only wrapped.

    `wrapped_key` = nonce(12) + AES-GCM(master key `master_key_id`, secret,
    aad=f"site-key|{purpose}"). The secret is random and never changes (rotate_keys
    re-wraps it under the current master key), so what is keyed with it stays verifiable
    across master key rotations. One row per purpose; rows are never deleted.
    """

    purpose = models.CharField(max_length=64, unique=True)
    master_key_id = models.CharField(max_length=32)
    wrapped_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    rewrapped_at = models.DateTimeField(null=True, blank=True)

    objects = models.Manager()

    class Meta:
        app_label = "records"
        ordering = ["purpose"]

    def __str__(self) -> str:
        return f"site key {self.purpose} ({self.master_key_id})"
