"""Issue 13, item 7 (the TOTP-device part): Django admin shows no TOTP secret.

The attack: the auditor could read, edit, add and delete every user's TOTP secret in the
admin (django-otp's own TOTPDevice admin), and so sign in as anyone with their password.
Now the admin shows only whether a device exists, is confirmed and when it was last used;
nobody adds, edits or deletes one there; a *Reset* (after the admin's own current code)
removes an account's devices so that it enrols again at its next log-in, and is a ledger
event. Auditors may reset anyone else's; a hospital admin only their own hospital's staff,
never themselves or a superuser (404, as missing ones).
"""

from __future__ import annotations

import time
from base64 import b32encode

import pytest
from django.test import Client
from django_otp import devices_for_user

from ledger.models import Event
from portal.tenancy.models import Role
from tests import factories
from tests.conftest import current_code

DEVICES = "/admin/accounts/totpdevice/"
LEGACY = "/admin/otp_totp/totpdevice/"


def _device(user):
    (device,) = devices_for_user(user)
    return device


def _forms(secret: bytes) -> list[bytes]:
    text = b32encode(secret)
    return [secret.hex().encode(), secret.hex().upper().encode(), text, text.rstrip(b"=")]


@pytest.fixture
def people(make_staff, hospital_a, hospital_b):
    auditor = factories.UserFactory(is_superuser=True, is_staff=True, username="auditor")
    factories.TOTPDeviceFactory(user=auditor)
    other_auditor = factories.UserFactory(is_superuser=True, is_staff=True, username="auditor-2")
    factories.TOTPDeviceFactory(user=other_auditor)
    return {
        "auditor": auditor,
        "other_auditor": other_auditor,
        "admin_a": make_staff(hospital_a, Role.HOSPITAL_ADMIN, username="admin-st-mary"),
        "nurse_a": make_staff(hospital_a, Role.NURSE, username="nurse-st-mary"),
        "nurse_b": make_staff(hospital_b, Role.NURSE, username="nurse-riverside"),
        "a": hospital_a,
        "b": hospital_b,
    }


def test_the_auditor_cannot_see_edit_add_or_delete_a_totp_secret(client, sign_in, people):
    nurse = people["nurse_a"]
    device = _device(nurse)
    secret = device.bin_key
    sign_in(client, people["auditor"])

    pages = []
    # django-otp's own admin is gone.
    for url in (LEGACY, f"{LEGACY}add/", f"{LEGACY}{device.pk}/change/"):
        response = client.get(url)
        pages.append(response)
        assert response.status_code == 404, url
    # The portal's shows the device, never its secret.
    listing = client.get(DEVICES)
    change = client.get(f"{DEVICES}{device.pk}/change/")
    pages += [listing, change]
    assert listing.status_code == 200 and nurse.username.encode() in listing.content
    assert change.status_code == 200 and b"Reset two-factor sign-in" in change.content
    for page in pages:
        for form in _forms(secret):
            assert form not in page.content
    # Nothing is added, changed or deleted here.
    assert client.get(f"{DEVICES}add/").status_code == 403
    new_key = "00" * 20
    edit = client.post(
        f"{DEVICES}{device.pk}/change/",
        {"user": nurse.pk, "name": "x", "confirmed": "on", "key": new_key},
    )
    assert edit.status_code == 403
    added = client.post(f"{DEVICES}add/", {"user": nurse.pk, "name": "x", "key": new_key})
    assert added.status_code == 403
    assert client.post(f"{DEVICES}{device.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(
        DEVICES, {"action": "delete_selected", "_selected_action": [device.pk], "post": "yes"}
    ).status_code in (200, 302, 403)
    assert _device(nurse).bin_key == secret  # the same device, the same secret
    assert not Event.objects.filter(kind__startswith="totp.").exists()


def test_a_reset_forces_enrolment_at_the_next_log_in_and_is_ledgered(client, sign_in, people):
    nurse, auditor = people["nurse_a"], people["auditor"]
    device = _device(nurse)
    nurses_session = Client()
    sign_in(nurses_session, nurse)
    assert nurses_session.get("/provider/").status_code == 200

    sign_in(client, auditor)
    reset = f"{DEVICES}{device.pk}/reset/"
    assert client.get(reset).status_code == 200
    wrong = client.post(reset, {"token": "000000"})
    assert wrong.status_code == 400
    assert _device(nurse).pk == device.pk
    time.sleep(1.1)  # django-otp throttles the auditor's device for 1 s after a wrong code
    done = client.post(reset, {"token": current_code(auditor)})
    assert done.status_code == 302
    assert not list(devices_for_user(nurse, confirmed=None))

    event = Event.objects.get(kind="totp.reset")
    assert (event.hospital_id, event.actor_id) == (people["a"].pk, auditor.pk)
    assert event.subject_id == str(nurse.pk) and event.attrs["user"] == nurse.pk
    for form in _forms(device.bin_key):
        assert form not in bytes(event.leaf)
    # The nurse's session lost its second factor; the next log-in enrols a new device.
    response = nurses_session.get("/provider/")
    assert response.status_code == 302 and "/accounts/login/" in response.url
    again = Client()
    response = again.post(
        "/accounts/login/", {"username": nurse.username, "password": factories.PASSWORD}
    )
    assert response.url == "/accounts/login/setup-2fa/"


def test_a_hospital_admin_resets_only_their_own_staff(client, sign_in, people):
    admin_a = people["admin_a"]
    sign_in(client, admin_a)
    listing = client.get(DEVICES)
    assert listing.status_code == 200
    assert people["nurse_a"].username.encode() in listing.content
    for who in ("nurse_b", "auditor", "admin_a"):
        if who != "admin_a":  # (their own name is in the page's header)
            assert f"{people[who].username}<".encode() not in listing.content, who
        theirs = _device(people[who])
        for url in (f"{DEVICES}{theirs.pk}/reset/", f"{DEVICES}{theirs.pk}/change/"):
            assert client.get(url).status_code == 404, (who, url)
        assert client.post(f"{DEVICES}{theirs.pk}/reset/", {"token": "123456"}).status_code == 404
        assert list(devices_for_user(people[who])) == [theirs]
    assert client.get(f"{DEVICES}999999/reset/").status_code == 404

    ours = _device(people["nurse_a"])
    response = client.post(f"{DEVICES}{ours.pk}/reset/", {"token": current_code(admin_a)})
    assert response.status_code == 302
    assert not list(devices_for_user(people["nurse_a"]))
    assert Event.objects.get(kind="totp.reset").hospital_id == people["a"].pk


def test_an_auditor_resets_anyone_else_but_not_themselves(client, sign_in, people):
    auditor = people["auditor"]
    sign_in(client, auditor)
    own = _device(auditor)
    assert client.get(f"{DEVICES}{own.pk}/reset/").status_code == 404
    other = _device(people["other_auditor"])
    response = client.post(f"{DEVICES}{other.pk}/reset/", {"token": current_code(auditor)})
    assert response.status_code == 302
    assert not list(devices_for_user(people["other_auditor"]))
    assert Event.objects.get(kind="totp.reset").hospital_id is None  # no hospital's staff
