"""Issue 13, item 6 (the TOTP part): TOTP secrets are encrypted at rest.

The attack: a `pg_dump` showed every staff member's TOTP secret (django-otp's
`otp_totp_totpdevice.key`, hex), so a dump yielded every staff code. Now the secret is
AES-GCM under a key derived from the master key ring, bound to its row and account;
`rotate_keys` re-encrypts it; and the devices django-otp held were moved, encrypted, by a
migration that leaves the old table empty.

The secrets are the ones the log-in pages show (or the device gives through django-otp's
public interface); the dump is every cell of every table, and on PostgreSQL `pg_dump` itself.
"""

from __future__ import annotations

import base64
import importlib
import os
import re
import shutil
import subprocess
from base64 import b32decode, b32encode
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django_otp import devices_for_user
from django_otp.oath import totp

from portal.tenancy.models import Role
from tests import factories
from tests.conftest import login_through_forms

SECRET = re.compile(rb'<code class="secret">([A-Z2-7=]+)</code>')


def _forms(secret: bytes) -> set[bytes]:
    """Every way a dump could spell the secret."""
    text = b32encode(secret)
    return {secret, secret.hex().encode(), secret.hex().upper().encode(), text, text.rstrip(b"=")}


def _all_cells() -> bytes:
    cells: list[bytes] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        cells.append(bytes(value))
                        cells.append(bytes(value).hex().encode())
                    elif value is not None:
                        cells.append(str(value).encode())
    return b"\n".join(cells)


def _found(secrets: list[bytes], dump: bytes) -> list[str]:
    return [
        f"secret {i} as {form!r}"
        for i, secret in enumerate(secrets)
        for form in _forms(secret)
        if form in dump
    ]


def _enrol_through_the_forms(client, user) -> bytes:
    """A staff member's first log-in: the password, the set-up page's secret, its code."""
    client.post("/accounts/login/", {"username": user.username, "password": factories.PASSWORD})
    page = client.get("/accounts/login/setup-2fa/")
    secret = b32decode(SECRET.search(page.content).group(1))
    response = client.post("/accounts/login/setup-2fa/", {"token": f"{totp(secret):06d}"})
    assert response.status_code == 302 and "_auth_user_id" in client.session
    return secret


def _device_secret(user) -> bytes:
    (device,) = devices_for_user(user)
    return device.bin_key


@pytest.fixture
def staff(make_staff, hospital_a, hospital_b):
    """Staff with secrets: one enrolled through the real forms, two made by the fixtures."""
    newcomer = factories.UserFactory()
    factories.MembershipFactory(user=newcomer, hospital=hospital_a, role=Role.NURSE)
    enrolled = _enrol_through_the_forms(Client(), newcomer)
    nurse = make_staff(hospital_a, Role.NURSE)
    admin_b = make_staff(hospital_b, Role.HOSPITAL_ADMIN)
    return {
        "users": [newcomer, nurse, admin_b],
        "secrets": [enrolled, _device_secret(nurse), _device_secret(admin_b)],
    }


def test_no_table_holds_a_totp_secret_in_clear(staff):
    assert _found(staff["secrets"], _all_cells()) == []
    # Nor does django-otp's own table hold any device.
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM otp_totp_totpdevice")
        assert cursor.fetchone()[0] == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_pg_dump_holds_no_totp_secret(staff):
    if connection.vendor != "postgresql":
        pytest.skip("pg_dump is PostgreSQL's")
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    settings = connection.settings_dict
    env = dict(os.environ)
    if settings.get("PASSWORD"):
        env["PGPASSWORD"] = settings["PASSWORD"]
    dump = subprocess.run(
        [
            "pg_dump", "--data-only", "--no-owner",
            "-h", settings.get("HOST") or "127.0.0.1", "-p", str(settings.get("PORT") or 5432),
            "-U", settings.get("USER") or "postgres", settings["NAME"],
        ],
        capture_output=True, check=True, env=env, timeout=120,
    ).stdout  # fmt: skip
    assert _found(staff["secrets"], dump) == []
    assert b"COPY public.accounts_totpdevice" in dump  # the devices' table is in the dump


def test_rotate_keys_reencrypts_the_secrets_and_devices_keep_verifying(staff, settings):
    old_ring = settings.FIELD_ENCRYPTION_KEYS
    new_key = f"k-new:{base64.b64encode(os.urandom(32)).decode()}"
    settings.FIELD_ENCRYPTION_KEYS = f"{new_key},{old_ring}"
    out = StringIO()
    call_command("rotate_keys", "--settle-seconds", "0", stdout=out)
    assert "Sign-in secrets: 3 re-encrypted" in out.getvalue()
    settings.FIELD_ENCRYPTION_KEYS = new_key  # the old master key has left the ring

    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT key_master_id FROM accounts_totpdevice")
        assert cursor.fetchall() == [("k-new",)]
    assert _found(staff["secrets"], _all_cells()) == []
    for user, secret in zip(staff["users"][1:], staff["secrets"][1:], strict=True):
        client = Client()
        response = login_through_forms(client, user, code=f"{totp(secret):06d}")
        assert response.status_code == 302, user
        assert client.session["otp_device_id"]
    # Running it again changes nothing.
    out = StringIO()
    call_command("rotate_keys", "--settle-seconds", "0", stdout=out)
    assert "Sign-in secrets: 0 re-encrypted" in out.getvalue()


def test_django_otp_devices_are_moved_encrypted_so_nobody_is_locked_out(
    client, hospital_a, hospital_b
):
    legacy = apps.get_model("otp_totp", "TOTPDevice")
    user = factories.UserFactory()
    factories.MembershipFactory(user=user, hospital=hospital_a, role=Role.CLINICIAN)
    secret = os.urandom(20)
    legacy.objects.create(user=user, name="Phone", key=secret.hex(), confirmed=True, last_t=5)
    migration = importlib.import_module(
        "portal.accounts.migrations.0003_totp_devices_from_django_otp"
    )
    migration.forwards(apps, None)

    assert not legacy.objects.exists()
    assert _found([secret], _all_cells()) == []
    (device,) = devices_for_user(user)
    assert (device.name, device.last_t) == ("Phone", 5)
    response = login_through_forms(client, user, code=f"{totp(secret):06d}")
    assert response.status_code == 302 and client.get("/provider/").status_code == 200


def test_a_secret_copied_to_another_account_verifies_nothing(make_staff, hospital_a, hospital_b):
    """Someone who can write to the database copies their own device's ciphertext into a
    colleague's row, to sign in as them with their own app: the secret is bound to its row
    and account, so it decrypts to nothing there."""
    mallory = make_staff(hospital_a, Role.NURSE)
    victim = make_staff(hospital_a, Role.CLINICIAN)
    mallorys_secret = _device_secret(mallory)
    table = connection.ops.quote_name("accounts_totpdevice")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET encrypted_key = (SELECT encrypted_key FROM {table} "
            "WHERE user_id = %s) WHERE user_id = %s",
            [mallory.pk, victim.pk],
        )
    client = Client()
    response = login_through_forms(client, victim, code=f"{totp(mallorys_secret):06d}")
    assert response.status_code == 400
    assert "_auth_user_id" not in client.session
