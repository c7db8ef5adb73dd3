import time
from importlib import import_module

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.utils import timezone

from portal.accounts.middleware import AUTH_AT, SEEN_AT
from portal.accounts.models import TOTPDevice
from tests import factories
from tests.conftest import current_code, login_through_forms


def _session_exists(key: str) -> bool:
    """Whether the configured session store (its cache and its table) still has `key`."""
    return import_module(settings.SESSION_ENGINE).SessionStore().exists(key)


def _authenticated(client) -> bool:
    return "_auth_user_id" in client.session


def test_staff_must_pass_totp(client, clinician_a):
    response = client.post(
        "/accounts/login/", {"username": clinician_a.username, "password": factories.PASSWORD}
    )
    assert response.status_code == 302
    assert response.url == "/accounts/login/verify/"
    assert not _authenticated(client)
    assert client.get("/provider/").status_code == 302  # still signed out

    wrong = client.post("/accounts/login/verify/", {"token": "000000"})
    assert wrong.status_code == 400
    assert b"not correct" in wrong.content
    assert not _authenticated(client)

    time.sleep(1.1)  # django-otp throttles the device for 1 s after a wrong code
    ok = client.post("/accounts/login/verify/", {"token": current_code(clinician_a)})
    assert ok.status_code == 302
    assert _authenticated(client)
    assert client.get("/provider/").status_code == 200


def test_staff_without_device_enrols_before_signing_in(client, hospital_a, hospital_b):
    user = factories.UserFactory()
    factories.MembershipFactory(user=user, hospital=hospital_a)
    response = client.post(
        "/accounts/login/", {"username": user.username, "password": factories.PASSWORD}
    )
    assert response.url == "/accounts/login/setup-2fa/"
    page = client.get("/accounts/login/setup-2fa/")
    assert b"otpauth://totp/" in page.content
    assert not _authenticated(client)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    from django_otp.oath import totp

    client.post("/accounts/login/setup-2fa/", {"token": f"{totp(device.bin_key):06d}"})
    device.refresh_from_db()
    assert device.confirmed
    assert _authenticated(client)


def test_patient_without_device_signs_in_with_password(
    client, make_patient_user, hospital_a, hospital_b
):
    user, _ = make_patient_user(hospital_a)
    response = login_through_forms(client, user)
    assert response.status_code == 302
    assert _authenticated(client)
    assert client.get("/").url == "/patient/"


def test_patient_who_opted_in_to_totp_must_use_it(
    client, make_patient_user, hospital_a, hospital_b
):
    user, _ = make_patient_user(hospital_a)
    factories.TOTPDeviceFactory(user=user)
    response = client.post(
        "/accounts/login/", {"username": user.username, "password": factories.PASSWORD}
    )
    assert response.url == "/accounts/login/verify/"
    assert not _authenticated(client)


def test_wrong_password_and_unknown_user_look_the_same(client, clinician_a):
    wrong = client.post("/accounts/login/", {"username": clinician_a.username, "password": "nope"})
    unknown = client.post("/accounts/login/", {"username": "nobody", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 400
    assert b"not correct" in wrong.content and b"not correct" in unknown.content


def test_session_key_is_rotated_at_log_in(client, make_patient_user, hospital_a, hospital_b):
    user, _ = make_patient_user(hospital_a)
    client.get("/accounts/login/")
    session = client.session
    session["planted"] = True
    session.save()
    before = session.session_key
    login_through_forms(client, user)
    assert client.session.session_key != before
    assert not _session_exists(before)


def test_lockout_after_five_failures_per_username_and_ip(client, clinician_a):
    for _ in range(5):
        client.post(
            "/accounts/login/",
            {"username": clinician_a.username, "password": "wrong"},
            REMOTE_ADDR="10.0.0.1",
        )
    locked = client.post(
        "/accounts/login/",
        {"username": clinician_a.username, "password": factories.PASSWORD},
        REMOTE_ADDR="10.0.0.1",
    )
    assert locked.status_code == 429
    assert b"locked" in locked.content
    assert "pending_login" not in client.session

    # The same username from another address is not locked (username AND ip).
    other = client.post(
        "/accounts/login/",
        {"username": clinician_a.username, "password": factories.PASSWORD},
        REMOTE_ADDR="10.0.0.2",
    )
    assert other.status_code == 302

    # After 15 minutes the pair may try again.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timezone.timedelta(minutes=16))
    client.cookies.clear()
    again = client.post(
        "/accounts/login/",
        {"username": clinician_a.username, "password": factories.PASSWORD},
        REMOTE_ADDR="10.0.0.1",
    )
    assert again.status_code == 302


def test_wrong_totp_codes_count_towards_lockout(client, clinician_a):
    def password_step():
        return client.post(
            "/accounts/login/",
            {"username": clinician_a.username, "password": factories.PASSWORD},
            REMOTE_ADDR="10.0.0.9",
        )

    password_step()
    for _ in range(5):
        client.post("/accounts/login/verify/", {"token": "123456"}, REMOTE_ADDR="10.0.0.9")
    assert "pending_login" not in client.session  # used up: back to the password
    assert password_step().status_code == 429


@pytest.mark.parametrize(
    ("kind", "idle_minutes", "signed_out"),
    [("staff", 14, False), ("staff", 16, True), ("patient", 16, False), ("patient", 31, True)],
)
def test_idle_log_off(
    client, sign_in, clinician_a, make_patient_user, hospital_a, kind, idle_minutes, signed_out
):
    if kind == "staff":
        user, url = clinician_a, "/provider/"
    else:
        user, url = make_patient_user(hospital_a)[0], "/patient/"
    sign_in(client, user)
    session = client.session
    session[SEEN_AT] = time.time() - idle_minutes * 60
    session.save()
    key = session.session_key
    response = client.get(url)
    if signed_out:
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")
        assert not _session_exists(key)  # ended server-side
    else:
        assert response.status_code == 200


def test_absolute_log_off_after_twelve_hours(client, sign_in, make_patient_user, hospital_a):
    user, _ = make_patient_user(hospital_a)
    sign_in(client, user)
    session = client.session
    session[AUTH_AT] = time.time() - 12 * 3600 - 5
    session.save()
    assert client.get("/patient/").status_code == 302


def test_log_out_ends_the_session_on_the_server(client, sign_in, clinician_a):
    sign_in(client, clinician_a)
    cookie = client.cookies["sessionid"].value
    assert client.get("/accounts/logout/").status_code == 405  # GET never signs out
    assert client.post("/accounts/logout/").status_code == 302
    assert not _session_exists(cookie)
    client.cookies["sessionid"] = cookie  # replaying the old cookie gets nothing
    assert client.get("/provider/").status_code == 302


def test_passwords_are_argon2_hashed_and_validated(db):
    user = factories.UserFactory()
    assert user.password.startswith("argon2$")
    with pytest.raises(ValidationError):
        validate_password("short")
    with pytest.raises(ValidationError):
        validate_password("123456789012")
    validate_password("Correct-Horse-Battery-9")


def test_open_redirect_after_log_in_is_refused(client, make_patient_user, hospital_a):
    user, _ = make_patient_user(hospital_a)
    response = client.post(
        "/accounts/login/",
        {
            "username": user.username,
            "password": factories.PASSWORD,
            "next": "https://evil.example/",
        },
    )
    assert response.status_code == 302
    assert response.url == "/"
