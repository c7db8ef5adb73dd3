"""Sign-in devices (accounts.TOTPDevice): the encrypted secret, its binding, rotation, the
events of each change, and the demo commands that print secrets and codes."""

from __future__ import annotations

import base64
import os
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django_otp import devices_for_user, user_has_device, verify_token
from django_otp.oath import totp

from ledger.models import Event
from ledger.subjects import digest_content
from portal.accounts import services
from portal.accounts.models import TOTPDevice
from portal.records import crypto
from portal.tenancy.models import Role
from tests import factories


def test_account_secrets_are_bound_to_their_row_and_account(settings):
    aad = crypto.account_secret_aad(
        model_label="accounts.totpdevice", field="key", row="r", user_id=1
    )
    key_id, blob = crypto.account_secret_encrypt(b"secret", aad=aad)
    assert crypto.account_secret_decrypt(blob, master_key_id=key_id, aad=aad) == b"secret"
    for other in (
        "accounts.totpdevice|key|r|2",
        aad.replace("|1", "|2"),
        aad.replace("|r|", "|s|"),
    ):
        with pytest.raises(crypto.DecryptionError):
            crypto.account_secret_decrypt(blob, master_key_id=key_id, aad=other)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(crypto.DecryptionError):
        crypto.account_secret_decrypt(tampered, master_key_id=key_id, aad=aad)
    with pytest.raises(crypto.DecryptionError):
        crypto.account_secret_decrypt(b"\x01short", master_key_id=key_id, aad=aad)
    with pytest.raises(ImproperlyConfigured):
        crypto.account_secret_decrypt(blob, master_key_id="gone", aad=aad)
    # The derived key is not the master key itself (which wraps the hospitals' data keys).
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    master = crypto.KeyRing.from_settings().key(key_id)
    with pytest.raises(InvalidTag):
        AESGCM(master).decrypt(blob[1:13], blob[13:], blob[:1] + aad.encode())


def test_a_device_is_django_otps_through_its_public_interface(db):
    user = factories.UserFactory()
    secret = os.urandom(20)
    device = factories.TOTPDeviceFactory(user=user, secret=secret)
    assert device.bin_key == secret
    assert bytes(device.encrypted_key).find(secret) == -1
    assert user_has_device(user) and list(devices_for_user(user)) == [device]
    valid = {f"{totp(secret, drift=d):06d}" for d in (-1, 0, 1, 2)}
    wrong = next(f"{n:06d}" for n in range(10) if f"{n:06d}" not in valid)
    assert verify_token(user, device.persistent_id, wrong) is None
    device.refresh_from_db()
    assert device.throttling_failure_count == 1  # throttled like django-otp's own
    device.throttle_reset()
    assert verify_token(user, device.persistent_id, f"{totp(secret):06d}") == device
    assert verify_token(user, device.persistent_id, f"{totp(secret):06d}") is None  # once only
    url = device.config_url
    assert (
        url.startswith("otpauth://totp/Hospital%20Portal%3A") and "issuer=Hospital%20Portal" in url
    )
    assert f"secret={base64.b32encode(secret).decode()}" in url


def test_unconfirmed_devices_are_for_enrolment_only(db, client):
    user = factories.UserFactory()
    pending = services.totp_device_create(user=user)
    assert not user_has_device(user)
    assert services.totp_code_check(user=user, token=f"{totp(pending.bin_key):06d}") is None


def test_device_events_go_to_each_hospital_of_the_account(make_staff, hospital_a, hospital_b):
    locum = make_staff(hospital_a, Role.CLINICIAN)
    factories.MembershipFactory(user=locum, hospital=hospital_b, role=Role.NURSE)
    gone = factories.HospitalFactory(slug="gone")
    factories.MembershipFactory(user=locum, hospital=gone, role=Role.NURSE, is_active=False)
    (device,) = devices_for_user(locum)
    extra = factories.TOTPDeviceFactory(user=locum)
    services.totp_device_remove(user=locum, device=extra, verified_by=device)
    events = Event.objects.filter(kind="totp.removed").order_by("hospital_id")
    assert [e.hospital_id for e in events] == sorted([hospital_a.pk, hospital_b.pk])
    assert events[0].attrs == {
        "user": locum.pk, "remaining": 1, "device": extra.pk, "verified_by": device.pk,
    }  # fmt: skip
    # One change, one state, committed under each hospital's own digest key.
    state = {"kind": "totp.removed", "devices": [device.pk], **events[0].attrs}
    assert [e.digest for e in events] == [
        digest_content(state, hospital_id=e.hospital_id) for e in events
    ]
    assert events[0].digest != events[1].digest


def test_staff_keep_a_device_and_cannot_turn_two_factor_off(make_staff, hospital_a, hospital_b):
    nurse = make_staff(hospital_a, Role.NURSE)
    (device,) = devices_for_user(nurse)
    with pytest.raises(services.TwoFactorRefused):
        services.totp_device_remove(user=nurse, device=device, verified_by=device)
    with pytest.raises(services.TwoFactorRefused):
        services.totp_turn_off(user=nurse, verified_by=device)
    assert list(devices_for_user(nurse)) == [device]
    assert not Event.objects.filter(kind__startswith="totp.").exists()


def test_rotate_keys_reports_a_secret_under_a_master_key_no_longer_in_the_ring(db, settings):
    device = factories.TOTPDeviceFactory(user=factories.UserFactory())
    TOTPDevice.objects.filter(pk=device.pk).update(key_master_id="lost")
    new_key = f"k9:{base64.b64encode(os.urandom(32)).decode()}"
    settings.FIELD_ENCRYPTION_KEYS = f"{new_key},{settings.FIELD_ENCRYPTION_KEYS}"
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("rotate_keys", "--settle-seconds", "0", stdout=StringIO(), stderr=err)
    assert f"TOTP device {device.pk} is encrypted under master key 'lost'" in err.getvalue()


def test_totp_code_prints_the_demo_accounts_current_code(db, settings):
    user = factories.UserFactory(username="stmary.nurse")
    secret = os.urandom(20)
    factories.TOTPDeviceFactory(user=user, secret=secret)
    settings.DEBUG = True
    out = StringIO()
    call_command("totp_code", "stmary.nurse", stdout=out)
    assert out.getvalue().strip() in {f"{totp(secret, drift=d):06d}" for d in (0, -1)}
    with pytest.raises(CommandError):
        call_command("totp_code", "nobody", stdout=StringIO())
    settings.DEBUG = False
    with pytest.raises(CommandError):
        call_command("totp_code", "stmary.nurse", stdout=StringIO())


def test_nothing_but_the_migration_uses_django_otps_own_totp_model():
    """Its secret is in clear: the portal's code (and the benchmarks, the tests) use
    accounts.TOTPDevice; only the migration that moved its rows reads it."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = [
        str(path.relative_to(root))
        for folder in ("portal", "ledger", "consent", "bench", "tests")
        for path in (root / folder).rglob("*.py")
        if "migrations" not in path.parts
        and path.name != "test_devices.py"
        and ("otp_totp.models" in path.read_text() or "otp_totp import" in path.read_text())
    ]
    assert offenders == []
