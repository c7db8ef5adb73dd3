"""The per-request session, user and second-factor reads (prepared statements) decide as
Django's and django-otp's own lookups do."""

from __future__ import annotations

import datetime as dt
import time

from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.accounts.backends import ModelBackend
from portal.accounts.middleware import AUTH_AT, IDLE_SECONDS, SEEN_AT, OTPMiddleware
from portal.accounts.models import Session, TOTPDevice
from portal.accounts.selectors import auth_context_fetch, session_fetch
from portal.accounts.sessions import SessionStore
from portal.records.selectors import user_is_patient
from portal.tenancy.models import Role
from portal.tenancy.selectors import membership_list_for_user
from tests import factories


def test_session_store_reads_live_sessions_only(db):
    store = SessionStore()
    store["answer"] = 42
    store.create()
    key = store.session_key
    assert SessionStore(key).load() == {"answer": 42}
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() - dt.timedelta(seconds=1)
    )
    expired = SessionStore(key)
    assert expired.load() == {} and expired.session_key is None  # a new key on save
    for bad in ("nope", "x" * 40, "../../etc", ""):
        assert SessionStore(bad).load() == {}


def test_expired_session_cookie_signs_nobody_in(client, clinician_a, sign_in):
    sign_in(client, clinician_a)
    assert client.get("/provider/").status_code == 200
    Session.objects.update(expire_date=timezone.now() - dt.timedelta(seconds=1))
    response = client.get("/provider/")
    assert response.status_code == 302 and "/accounts/login/" in response.url


def test_backend_returns_active_users_only(db):
    user = factories.UserFactory()
    backend = ModelBackend()
    assert backend.get_user(user.pk) == user
    assert backend.get_user(str(user.pk)).username == user.username
    assert backend.get_user(user.pk).password == user.password  # the session hash needs it
    assert backend.get_user(10**9) is None
    assert backend.get_user("abc") is None
    user.is_active = False
    user.save()
    assert backend.get_user(user.pk) is None


def _verified(user, persistent_id) -> bool:
    request = RequestFactory().get("/")
    request.session = SessionStore()
    request.session["otp_device_id"] = persistent_id
    request.user = user
    return OTPMiddleware(lambda r: r.user.is_verified())(request)


def test_second_factor_is_the_sessions_own_confirmed_device(db):
    user, other = factories.UserFactory(), factories.UserFactory()
    mine = factories.TOTPDeviceFactory(user=user)
    theirs = factories.TOTPDeviceFactory(user=other)
    assert _verified(user, mine.persistent_id)
    assert not _verified(user, theirs.persistent_id)  # another user's device
    assert not _verified(user, "accounts.totpdevice/999999")
    assert not _verified(user, "accounts.totpdevice/abc")
    assert not _verified(user, "otp_static.staticdevice/1")  # a kind this site has not
    assert not _verified(user, "garbage")
    mine.confirmed = False
    mine.save()
    assert not _verified(user, mine.persistent_id)


def test_signed_in_request_reads_session_and_user_context_in_one_statement(
    client, clinician_a, sign_in
):
    sign_in(client, clinician_a)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get("/provider/shared/")
    assert response.status_code == 200
    sqls = [q["sql"] for q in ctx.captured_queries]
    # The session with its user, device, memberships and registrations.
    tables = ('"accounts_session"', '"auth_user" ', '"accounts_totpdevice"', '"tenancy_membership"')
    assert all(t in sqls[0] for t in tables)
    assert not any(t in s for s in sqls[1:] for t in tables)  # (auth_user_groups may be)


def test_session_row_names_the_user_and_device_its_data_names(client, clinician_a, sign_in):
    sign_in(client, clinician_a)
    row = Session.objects.get(session_key=client.session.session_key)
    device = TOTPDevice.objects.get(user=clinician_a)
    assert (row.user_pk, row.device_pk) == (clinician_a.pk, device.pk)
    session_data, context = session_fetch(session_key=row.session_key)
    assert SessionStore().decode(session_data)["_auth_user_id"] == str(clinician_a.pk)
    assert context.user == clinician_a and context.device == device
    anonymous = SessionStore()
    anonymous["answer"] = 42
    anonymous.create()
    row = Session.objects.get(session_key=anonymous.session_key)
    assert (row.user_pk, row.device_pk) == (None, None)
    assert session_fetch(session_key=row.session_key)[1] is None
    assert session_fetch(session_key="nope") is None


def test_session_columns_decide_nothing(client, clinician_a, clinician_b, sign_in):
    """Rewritten columns (someone with database access, or a row saved by an older build)
    make the join read another user's context: the backend sees it is not the one the
    signed session data names, and reads the right one."""
    sign_in(client, clinician_a)
    key = client.session.session_key
    other_device = TOTPDevice.objects.get(user=clinician_b)
    Session.objects.filter(session_key=key).update(
        user_pk=clinician_b.pk, device_pk=other_device.pk
    )
    response = client.get("/provider/")
    assert response.status_code == 200
    assert response.wsgi_request.user == clinician_a
    assert response.wsgi_request.user.is_verified()
    assert clinician_a.username.encode() in response.content
    assert clinician_b.username.encode() not in response.content
    Session.objects.filter(session_key=key).update(user_pk=None, device_pk=None)
    response = client.get("/provider/")
    assert response.status_code == 200 and response.wsgi_request.user == clinician_a


def test_auth_context_matches_the_separate_lookups(consent_world, make_staff):
    w = consent_world
    locum = make_staff(w["b"], Role.NURSE)
    factories.MembershipFactory(user=locum, hospital=w["a"], role=Role.CLINICIAN)
    zeta = factories.HospitalFactory(slug="zeta", name="Zeta Clinic")
    factories.MembershipFactory(user=locum, hospital=zeta, role=Role.NURSE, is_active=False)
    device = TOTPDevice.objects.get(user=locum)
    for user, device_id in (
        (locum, device.pk),
        (locum, None),
        (w["account"], device.pk),  # someone else's device: loaded, then refused by django-otp
        (w["other_account"], 10**9),
    ):
        context = auth_context_fetch(user_id=user.pk, device_id=device_id)
        assert context.user == user and context.user.password == user.password
        assert [(m.pk, m.hospital.name) for m in context.memberships] == [
            (m.pk, m.hospital.name) for m in membership_list_for_user(user=user)
        ]
        assert context.is_patient == user_is_patient(user=user)
        expected = TOTPDevice.objects.filter(pk=device_id).first() if device_id else None
        assert context.device == expected
    assert auth_context_fetch(user_id=10**9, device_id=None) is None
    # Active memberships only, in hospital-name order (the hospital switcher's order).
    locum_context = auth_context_fetch(user_id=locum.pk, device_id=None)
    assert [m.hospital.name for m in locum_context.memberships] == [
        "Riverside General",
        "St Mary's Hospital",
    ]


def test_another_users_device_in_the_session_does_not_verify(client, clinician_a, clinician_b):
    client.force_login(clinician_a, backend="portal.accounts.backends.ModelBackend")
    session = client.session
    now = time.time()
    session.update({AUTH_AT: now, SEEN_AT: now, IDLE_SECONDS: 900.0})
    session["otp_device_id"] = TOTPDevice.objects.get(user=clinician_b).persistent_id
    session.save()
    response = client.get("/provider/")
    assert response.status_code == 302 and "/accounts/login/" in response.url
    # and the wrong device id was dropped from the session, as django-otp does
    assert "otp_device_id" not in client.session


def test_a_changed_password_ends_the_session_and_its_context(client, clinician_a, sign_in):
    sign_in(client, clinician_a)
    assert client.get("/provider/").status_code == 200
    clinician_a.set_password("another long passphrase 42")
    clinician_a.save()
    response = client.get("/provider/")
    assert response.status_code == 302 and "/accounts/login/" in response.url
