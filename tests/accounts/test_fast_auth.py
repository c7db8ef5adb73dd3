"""The per-request session, user and second-factor reads (prepared statements) decide as
Django's and django-otp's own lookups do."""

from __future__ import annotations

import datetime as dt

from django.contrib.sessions.models import Session
from django.test import RequestFactory
from django.utils import timezone

from portal.accounts.backends import ModelBackend
from portal.accounts.middleware import OTPMiddleware
from portal.accounts.sessions import SessionStore
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
    assert not _verified(user, "otp_totp.totpdevice/999999")
    assert not _verified(user, "otp_totp.totpdevice/abc")
    assert not _verified(user, "otp_static.staticdevice/1")  # a kind this site has not
    assert not _verified(user, "garbage")
    mine.confirmed = False
    mine.save()
    assert not _verified(user, mine.persistent_id)
