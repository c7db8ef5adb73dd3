"""The sign-in device (TOTP, its secret encrypted at rest). Sessions are Django's own
(django.contrib.sessions)."""

from __future__ import annotations

import logging
import time
import uuid
from base64 import b32encode
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import models
from django.utils.functional import cached_property
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP

from portal.records import crypto

logger = logging.getLogger(__name__)


class TOTPDevice(TimestampMixin, ThrottlingMixin, Device):
    """An authenticator app (RFC 6238 TOTP), through django-otp's plugin interface, with its
    secret encrypted at rest (django-otp's own TOTPDevice keeps it in clear, in hex).

    The secret is AES-GCM under a key derived from the master key ring
    (`crypto.account_secret_encrypt`), bound to this row (`row_uuid`, known before the
    INSERT) and its user; `key_master_id` names the master key, so `rotate_keys` re-encrypts
    it under the current one. It is decrypted only to verify a code or to show it once while
    enrolling; the per-request check of a signed-in session reads the row but never the key.
    Wrong codes are throttled by django-otp (1 s, 2 s, 4 s, ... after each failure).
    """

    # Device's own field, with its own reverse name (django-otp's TOTPDevice, whose rows the
    # migration 0003 moved here, keeps `totpdevice_set`).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="totp_devices",
        help_text="The user that this device belongs to.",
    )
    row_uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    key_master_id = models.CharField(max_length=32, editable=False)
    encrypted_key = models.BinaryField(editable=False)
    step = models.PositiveSmallIntegerField(default=30)
    t0 = models.BigIntegerField(default=0)
    digits = models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6)
    tolerance = models.PositiveSmallIntegerField(default=1)
    drift = models.SmallIntegerField(default=0)
    last_t = models.BigIntegerField(default=-1)

    class Meta(Device.Meta):
        verbose_name = "TOTP device"
        db_table = "accounts_totpdevice"

    def key_aad(self) -> str:
        """What the encrypted secret is bound to: this model and field, this row, its user."""
        return crypto.account_secret_aad(
            model_label=self._meta.label_lower, field="key", row=str(self.row_uuid),
            user_id=self.user_id,
        )  # fmt: skip

    def set_key(self, secret: bytes) -> None:
        """Encrypt `secret` into this (unsaved or to-be-saved) row; the caller saves."""
        if self.user_id is None:
            raise ValueError("A device's secret is bound to its user: set the user first.")
        self.key_master_id, self.encrypted_key = crypto.account_secret_encrypt(
            secret, aad=self.key_aad()
        )
        self.__dict__.pop("bin_key", None)

    @cached_property
    def bin_key(self) -> bytes:
        """The secret (decrypted once per instance)."""
        return crypto.account_secret_decrypt(
            self.encrypted_key, master_key_id=self.key_master_id, aad=self.key_aad()
        )

    def rewrap(self, ring: crypto.KeyRing) -> bool:
        """Re-encrypt the secret under the ring's current master key (rotate_keys). False if it
        already was. The caller saves `key_master_id` and `encrypted_key`."""
        if self.key_master_id == ring.current_id:
            return False
        secret = crypto.account_secret_decrypt(
            self.encrypted_key, master_key_id=self.key_master_id, aad=self.key_aad(), ring=ring
        )
        self.key_master_id, self.encrypted_key = crypto.account_secret_encrypt(
            secret, aad=self.key_aad(), ring=ring
        )
        return True

    def verify_token(self, token) -> bool:
        """django-otp's TOTP check (as its TOTPDevice does), with throttling and replay
        protection: a code is accepted once, and only a later time step's code after it."""
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        try:
            number = int(token)
            key = self.bin_key
        except (TypeError, ValueError):
            verified = False
        except crypto.DecryptionError:
            # Altered, or copied from another row or account: it verifies nothing. Ids only.
            logger.error("TOTP device %s: its secret does not decrypt", self.pk)
            verified = False
        else:
            totp = TOTP(key, self.step, self.t0, self.digits, self.drift)
            totp.time = time.time()
            verified = totp.verify(number, self.tolerance, self.last_t + 1)
            if verified:
                self.last_t = totp.t()
                if getattr(settings, "OTP_TOTP_SYNC", True):
                    self.drift = totp.drift
                self.throttle_reset(commit=False)
                self.set_last_used_timestamp(commit=False)
                self.save()
        if not verified:
            self.throttle_increment(commit=True)
        return verified

    def get_throttle_factor(self) -> int:
        return getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1)

    @property
    def config_url(self) -> str:
        """The otpauth:// URL an authenticator app reads (Key Uri Format)."""
        label = self.user.get_username()
        params = {
            "secret": b32encode(self.bin_key).decode(),
            "algorithm": "SHA1",
            "digits": self.digits,
            "period": self.step,
        }
        issuer = (getattr(settings, "OTP_TOTP_ISSUER", "") or "").replace(":", "")
        if issuer:
            label = f"{issuer}:{label}"
            params["issuer"] = issuer
        return f"otpauth://totp/{quote(label)}?{urlencode(params, quote_via=quote)}"
