"""Every signed-in request: Django's session and user, django-otp's second factor, the
user's memberships; what they decide, and what they cost."""

from __future__ import annotations

import time
from importlib import import_module

from django.conf import settings
from django.core.cache.backends.base import BaseCache
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django_otp.middleware import OTPMiddleware

from portal.accounts.middleware import AUTH_AT, IDLE_SECONDS, SEEN_AT
from portal.accounts.models import TOTPDevice
from tests import factories


class DownCache(BaseCache):
    """A cache whose server is down: every call fails, as Django's RedisCache does then."""

    def __init__(self, location=None, params=None):
        super().__init__(params or {})

    def _down(self, *args, **kwargs):
        raise ConnectionError("the cache is down")

    get = set = add = delete = has_key = touch = clear = _down


def _store():
    return import_module(settings.SESSION_ENGINE).SessionStore()


def _verified(user, persistent_id) -> bool:
    request = RequestFactory().get("/")
    request.session = _store()
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
    assert not _verified(user, "otp_static.staticdevice/1")  # a kind this site has not
    mine.confirmed = False
    mine.save()
    assert not _verified(user, mine.persistent_id)


def test_another_users_device_in_the_session_does_not_verify(client, clinician_a, clinician_b):
    client.force_login(clinician_a, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    now = time.time()
    session.update({AUTH_AT: now, SEEN_AT: now, IDLE_SECONDS: 900.0})
    session["otp_device_id"] = TOTPDevice.objects.get(user=clinician_b).persistent_id
    session.save()
    response = client.get("/provider/")
    assert response.status_code == 302 and "/accounts/login/" in response.url
    # and the wrong device id was dropped from the session, as django-otp does
    assert "otp_device_id" not in client.session


def test_a_changed_password_ends_the_session(client, clinician_a, sign_in):
    sign_in(client, clinician_a)
    assert client.get("/provider/").status_code == 200
    clinician_a.set_password("another long passphrase 42")
    clinician_a.save()
    response = client.get("/provider/")
    assert response.status_code == 302 and "/accounts/login/" in response.url


def test_a_deactivated_account_is_signed_in_nowhere(client, clinician_a, sign_in):
    sign_in(client, clinician_a)
    assert client.get("/provider/").status_code == 200
    clinician_a.is_active = False
    clinician_a.save()
    response = client.get("/provider/")
    assert response.status_code == 302 and "/accounts/login/" in response.url
    assert client.get("/api/v1/patients/").status_code in (401, 403)


def test_an_unknown_session_key_signs_nobody_in(client, clinician_a, sign_in):
    client.cookies[settings.SESSION_COOKIE_NAME] = "x" * 32
    response = client.get("/provider/")
    assert response.status_code == 302 and "/accounts/login/" in response.url


def test_a_signed_in_request_reads_user_device_and_memberships_once(client, clinician_a, sign_in):
    """What every signed-in request pays before its view: the session, the user, the
    session's device and the memberships, one query each, whatever the account holds."""
    sign_in(client, clinician_a)
    factories.MembershipFactory(user=clinician_a)  # a second hospital: still one query
    client.get("/healthz")
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/healthz").status_code == 200
    tables = ["django_session", "auth_user", "accounts_totpdevice", "tenancy_membership"]
    assert len(ctx.captured_queries) == len(tables)
    for table, query in zip(tables, ctx.captured_queries, strict=True):
        assert f'FROM "{table}"' in query["sql"]


def test_the_session_store_needs_no_cache(client, clinician_a, sign_in, settings):
    """Sessions live in the database only: a cache that is down (Redis, in production)
    signs nobody out and fails no page."""
    settings.CACHES = {"default": {"BACKEND": "tests.accounts.test_sign_in_path.DownCache"}}
    sign_in(client, clinician_a)
    assert client.get("/provider/").status_code == 200
