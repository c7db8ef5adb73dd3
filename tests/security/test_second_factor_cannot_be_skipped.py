"""Issue 13, item 1: the second factor cannot be skipped.

The attack: with a staff member's password alone, `GET /accounts/login/setup-2fa/` showed a
new TOTP secret even though the account had a confirmed device, and a code from it completed
the log-in (and left the attacker's device confirmed). It worked for a nurse and for the
superuser `auditor`. Now enrolment during log-in is only for an account with no confirmed
device; adding, replacing or removing a device needs a session signed in with two factors
and a current code, and is a ledger event; patients turn TOTP on and off themselves.

Devices are looked at through django-otp's public `devices_for_user`, and codes are made from
the secret a page shows, so these tests make the attack exactly as an outsider would.
"""

from __future__ import annotations

import re
import time
from base64 import b32decode

import pytest
from django.test import Client
from django_otp import devices_for_user
from django_otp.oath import totp

from ledger.models import Event
from portal.tenancy.models import Role
from tests import factories
from tests.conftest import current_code, login_through_forms

LOGIN, VERIFY, SETUP = "/accounts/login/", "/accounts/login/verify/", "/accounts/login/setup-2fa/"
TWO_FACTOR = "/accounts/two-factor/"
ADD = "/accounts/two-factor/add/"
SECRET = re.compile(rb'<code class="secret">([A-Z2-7=]+)</code>')


def _secret_on(page) -> str | None:
    found = SECRET.search(page.content)
    return found.group(1).decode() if found else None


def _code(secret: str, *, steps_ahead: int = 0) -> str:
    return f"{totp(b32decode(secret), drift=steps_ahead):06d}"


def _confirmed(user) -> set[int]:
    return {d.pk for d in devices_for_user(user, confirmed=True)}


def _signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def _password_step(client, user):
    return client.post(LOGIN, {"username": user.username, "password": factories.PASSWORD})


@pytest.fixture
def nurse(make_staff, hospital_a, hospital_b):
    return make_staff(hospital_a, Role.NURSE)


@pytest.fixture
def auditor(db, hospital_a, hospital_b):
    user = factories.UserFactory(is_superuser=True, is_staff=True, username="auditor")
    factories.TOTPDeviceFactory(user=user)
    return user


# --- log-in -------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["nurse", "auditor"])
def test_password_alone_cannot_enrol_a_device_for_an_account_that_has_one(request, who):
    victim = request.getfixturevalue(who)
    before = _confirmed(victim)
    attacker = Client()
    assert _password_step(attacker, victim).url == VERIFY

    # The attack: open the enrolment step anyway, and confirm whatever secret it shows.
    page = attacker.get(SETUP)
    secret = _secret_on(page)
    if secret is not None:
        attacker.post(SETUP, {"token": _code(secret)})
    attacker.post(SETUP, {"token": "123456"})

    assert not _signed_in(attacker)
    assert _confirmed(victim) == before  # no device of the attacker's
    protected = ["/admin/", "/admin/ledger/health/"] if who == "auditor" else ["/provider/"]
    for url in [*protected, "/accounts/api-tokens/", TWO_FACTOR]:
        response = attacker.get(url)
        assert response.status_code == 302 and response.url.startswith(LOGIN), url
    # The step itself refuses: back to the code of the device the account has.
    assert page.status_code == 302 and page.url == VERIFY
    assert secret is None and b"otpauth://" not in page.content
    again = attacker.post(SETUP, {"token": "123456"})
    assert again.status_code == 302 and again.url == VERIFY

    # The account's owner still signs in with their own device.
    owner = Client()
    assert login_through_forms(owner, victim).status_code == 302
    assert _signed_in(owner)
    assert owner.get(protected[0]).status_code == 200


def test_a_leftover_unconfirmed_device_cannot_be_confirmed_at_log_in(nurse):
    leftover = factories.TOTPDeviceFactory(user=nurse, confirmed=False)
    attacker = Client()
    _password_step(attacker, nurse)
    attacker.post(SETUP, {"token": f"{totp(leftover.bin_key):06d}"})
    assert not _signed_in(attacker)
    assert leftover.pk not in _confirmed(nurse)


def test_an_enrolment_confirmed_in_another_session_closes_the_others(hospital_a, hospital_b):
    newcomer = factories.UserFactory()
    factories.MembershipFactory(user=newcomer, hospital=hospital_a, role=Role.NURSE)
    owner, attacker = Client(), Client()
    assert _password_step(owner, newcomer).url == SETUP
    assert _password_step(attacker, newcomer).url == SETUP
    owners_secret = _secret_on(owner.get(SETUP))
    attackers_secret = _secret_on(attacker.get(SETUP))
    assert owners_secret and attackers_secret
    # Each log-in attempt enrols its own device: no session sees another's secret.
    assert owners_secret != attackers_secret

    assert owner.post(SETUP, {"token": _code(owners_secret)}).status_code == 302
    assert _signed_in(owner)
    enrolled = _confirmed(newcomer)
    assert len(enrolled) == 1

    # The other session's device can no longer be confirmed, and its step is closed.
    refused = attacker.post(SETUP, {"token": _code(attackers_secret)})
    assert refused.status_code == 302 and refused.url in (SETUP, VERIFY)
    assert not _signed_in(attacker)
    page = attacker.get(SETUP)
    assert page.status_code == 302 and page.url == VERIFY
    assert _confirmed(newcomer) == enrolled
    event = Event.objects.get(kind="totp.enrolled")
    assert event.hospital_id == hospital_a.pk and event.actor_id == newcomer.pk
    assert owners_secret.encode() not in bytes(event.leaf)


def test_a_completed_log_in_cannot_be_replayed(hospital_a, hospital_b):
    newcomer = factories.UserFactory()
    factories.MembershipFactory(user=newcomer, hospital=hospital_a, role=Role.CLINICIAN)
    client = Client()
    _password_step(client, newcomer)
    pending_cookie = client.cookies["sessionid"].value
    secret = _secret_on(client.get(SETUP))
    assert client.post(SETUP, {"token": _code(secret)}).status_code == 302
    enrolled = _confirmed(newcomer)

    # The same session again: nothing pending, no second device.
    page = client.get(SETUP)
    assert page.status_code == 302 and b"otpauth://" not in page.content
    client.post(SETUP, {"token": _code(secret, steps_ahead=1)})
    # The cookie of the pending log-in, replayed: that session is gone.
    replay = Client()
    replay.cookies["sessionid"] = pending_cookie
    response = replay.get(SETUP)
    assert response.status_code == 302 and response.url == LOGIN
    assert not _signed_in(replay)
    assert _confirmed(newcomer) == enrolled


def test_a_device_reset_between_the_steps_starts_the_log_in_again(nurse):
    client = Client()
    _password_step(client, nurse)
    for device in devices_for_user(nurse, confirmed=None):
        device.delete()  # as an admin's reset does
    response = client.post(VERIFY, {"token": "123456"})
    assert response.status_code == 302 and response.url == LOGIN
    assert not _signed_in(client)
    assert _password_step(client, nurse).url == SETUP  # the next log-in enrols


# --- the account's own devices --------------------------------------------------------------


def test_adding_a_device_needs_a_two_factor_session_and_a_current_code(
    client, sign_in, nurse, hospital_a
):
    sign_in(client, nurse, verified=False)  # the password step's session, say
    for url in (TWO_FACTOR, ADD):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(LOGIN), url

    sign_in(client, nurse)
    before = _confirmed(nurse)
    page = client.get(ADD)
    assert page.status_code == 200
    new_secret = _secret_on(page)
    assert new_secret and "no-store" in page["Cache-Control"]

    no_current = client.post(ADD, {"new_token": _code(new_secret)})
    assert no_current.status_code == 400
    wrong_current = client.post(ADD, {"new_token": _code(new_secret), "current_token": "000000"})
    assert wrong_current.status_code == 400
    assert _confirmed(nurse) == before
    time.sleep(1.1)  # django-otp throttles the nurse's device for 1 s after a wrong code

    added = client.post(ADD, {"new_token": _code(new_secret), "current_token": current_code(nurse)})
    assert added.status_code == 302 and added.url == TWO_FACTOR
    assert len(_confirmed(nurse)) == 2 and before < _confirmed(nurse)
    event = Event.objects.get(kind="totp.added")
    assert (event.hospital_id, event.actor_id) == (hospital_a.pk, nurse.pk)
    assert event.attrs["user"] == nurse.pk
    device = next(d for d in devices_for_user(nurse) if d.pk not in before)
    for form in (new_secret.encode(), device.bin_key.hex().encode(), device.bin_key):
        assert form not in bytes(event.leaf)
    assert client.get("/provider/").status_code == 200  # still signed in, with two factors


def test_replacing_and_removing_a_device(client, sign_in, nurse, hospital_a):
    sign_in(client, nurse)
    (old,) = _confirmed(nurse)
    new_secret = _secret_on(client.get(f"{ADD}?replace={old}"))
    replaced = client.post(
        f"{ADD}?replace={old}",
        {"new_token": _code(new_secret), "current_token": current_code(nurse)},
    )
    assert replaced.status_code == 302
    (new,) = _confirmed(nurse)
    assert new != old
    assert Event.objects.get(kind="totp.replaced").attrs["replaced"] == old

    # Staff always keep one device: the last cannot be removed, nor turned off.
    refused = client.post(f"{TWO_FACTOR}{new}/remove/", {"token": _code(new_secret, steps_ahead=1)})
    assert refused.status_code == 400
    assert client.post(f"{TWO_FACTOR}off/", {"token": "123456"}).status_code == 400
    assert _confirmed(nurse) == {new}

    # With a second device, one goes, after a code from the one that stays.
    extra = factories.TOTPDeviceFactory(user=nurse, name="spare phone")
    wrong = client.post(f"{TWO_FACTOR}{extra.pk}/remove/", {"token": "000000"})
    assert wrong.status_code == 400 and extra.pk in _confirmed(nurse)
    time.sleep(1.1)
    removed = client.post(
        f"{TWO_FACTOR}{extra.pk}/remove/", {"token": _code(new_secret, steps_ahead=1)}
    )
    assert removed.status_code == 302
    assert _confirmed(nurse) == {new}
    event = Event.objects.get(kind="totp.removed")
    assert (event.hospital_id, event.attrs["device"]) == (hospital_a.pk, extra.pk)
    assert client.get("/provider/").status_code == 200


def test_another_accounts_devices_are_404(client, sign_in, nurse, make_staff, hospital_b):
    other = make_staff(hospital_b, Role.NURSE)
    factories.TOTPDeviceFactory(user=nurse, name="second")
    (theirs,) = _confirmed(other)
    sign_in(client, nurse)
    page = client.get(TWO_FACTOR)
    assert page.status_code == 200 and b"second" in page.content
    assert other.username.encode() not in page.content
    assert client.get(f"{ADD}?replace={theirs}").status_code == 404
    assert client.get(f"{ADD}?replace=999999999").status_code == 404
    assert client.get(f"{ADD}?replace=x").status_code == 404
    assert client.post(f"{TWO_FACTOR}{theirs}/remove/", {"token": "123456"}).status_code == 404
    assert client.post(f"{TWO_FACTOR}99999999/remove/", {"token": "123456"}).status_code == 404
    assert _confirmed(other) == {theirs}
    client.logout()
    for url in (TWO_FACTOR, ADD):
        assert client.get(url).status_code == 302
    assert client.post(f"{TWO_FACTOR}off/").status_code == 302


def test_wrong_codes_on_the_two_factor_pages_sign_out_and_lock(client, sign_in, nurse):
    sign_in(client, nurse)
    extra = factories.TOTPDeviceFactory(user=nurse)
    for _ in range(5):
        response = client.post(f"{TWO_FACTOR}{extra.pk}/remove/", {"token": "000000"})
    # The fifth: signed out, and (every wrong code counted towards the log-in lockout, as
    # wrong log-in codes do) django-axes' lockout page.
    assert response.status_code == 429
    assert not _signed_in(client)
    assert client.get("/provider/").status_code == 302
    assert extra.pk in _confirmed(nurse)
    assert _password_step(client, nurse).status_code == 429


def test_a_patient_turns_two_factor_sign_in_on_and_off(
    client, sign_in, make_patient_user, hospital_a, hospital_b
):
    patient, _ = make_patient_user(hospital_a)
    sign_in(client, patient)
    assert b"Two-factor sign-in" in client.get("/patient/").content  # in the portal's menus
    page = client.get(TWO_FACTOR)
    assert page.status_code == 200 and b"Off." in page.content

    secret = _secret_on(client.get(ADD))
    wrong_password = client.post(ADD, {"new_token": _code(secret), "password": "not it"})
    assert wrong_password.status_code == 400 and not _confirmed(patient)
    turned_on = client.post(ADD, {"new_token": _code(secret), "password": factories.PASSWORD})
    assert turned_on.status_code == 302
    assert len(_confirmed(patient)) == 1
    event = Event.objects.get(kind="totp.turned_on")
    assert event.hospital_id is None and event.actor_id == patient.pk  # the account's own

    # From now on the password alone does not sign the patient in.
    other = Client()
    assert _password_step(other, patient).url == VERIFY
    assert not _signed_in(other)
    assert other.get(SETUP).url == VERIFY

    assert client.post(f"{TWO_FACTOR}off/", {"token": "000000"}).status_code == 400
    assert len(_confirmed(patient)) == 1
    time.sleep(1.1)
    turned_off = client.post(f"{TWO_FACTOR}off/", {"token": _code(secret, steps_ahead=1)})
    assert turned_off.status_code == 302
    assert not _confirmed(patient)
    assert Event.objects.get(kind="totp.turned_off").hospital_id is None
    again = Client()
    assert _password_step(again, patient).status_code == 302
    assert _signed_in(again)
    assert client.get("/patient/").status_code == 200
