"""Issue 13, item 13: the proxy form reveals no usernames, and accepts only patient accounts.

A patient types usernames into the proxy form of their portal and of the API: one that
exists nowhere, a clinician's, the auditor's (a superuser), and another patient's. The answer,
the statements run and what the patient sees afterwards (their list of proxies, on the page
and in the API) are the same for all four: each is an invitation waiting for an answer. Only
the patient account is offered the invitation and can accept it; the clinician and the
auditor see nothing, are told nothing, and cannot accept it. A declined invitation looks to
the patient like one not answered."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consent import models as consent_models
from consent.models import Notification, ProxyGrant
from portal.api.services import token_issue
from portal.tenancy.models import Role
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(consent_world, make_staff, make_patient_user):
    w = consent_world
    auditor = factories.UserFactory(is_superuser=True, is_staff=True, username="auditor-z")
    factories.TOTPDeviceFactory(user=auditor)
    # Staff who are also patients somewhere: still not proxies (they work with charts).
    clinician = make_staff(w["a"], Role.CLINICIAN, username="doc-who")
    factories.PatientFactory(hospital=w["b"], user=clinician)
    relative, _ = make_patient_user(w["b"])
    return {
        "nobody": "no-such-user-42", "clinician": clinician, "auditor": auditor,
        "relative": relative,
    }  # fmt: skip


def _name(people, key) -> str:
    value = people[key]
    return value if isinstance(value, str) else value.username


def _normalized(html: str, username: str) -> str:
    html = html.replace(username, "USERNAME")
    html = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", html)
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


KEYS = ("nobody", "clinician", "auditor", "relative")


def test_the_portal_form_answers_alike_for_every_username(client, sign_in, consent_world, people):
    w = consent_world
    sign_in(client, w["account"])
    answers, costs = {}, {}
    for key in KEYS:
        form = {"proxy_username": _name(people, key), "relationship": "family", "scope_all": "all"}
        with CaptureQueriesContext(connection) as ctx:
            response = client.post("/patient/proxies/", form)
        costs[key] = len(ctx.captured_queries)
        assert response.status_code == 302, (key, response.content[:2000])
        page = client.get(response.url)
        message = re.search(r"Invitation sent\.[^<]*", page.content.decode())
        answers[key] = message and message.group(0)
    assert len(set(answers.values())) == 1 and None not in answers.values()
    assert len(set(costs.values())) == 1, costs  # no lookup on one path only
    # Afterwards the patient's list shows four invitations alike, and no grant.
    page = client.get("/patient/proxies/").content.decode()
    rows = {
        key: _normalized(
            re.search(rf"<tr><td>{re.escape(_name(people, key))}</td>.*?</tr>", page, re.S).group(
                0
            ),
            _name(people, key),
        )
        for key in KEYS
    }
    assert len(set(rows.values())) == 1, rows
    assert "Waiting for them to accept" in rows["nobody"]
    assert not ProxyGrant.objects.exists()
    # Nobody was told anything.
    for key in ("clinician", "auditor", "relative"):
        assert not Notification.objects.filter(user=people[key]).exists(), key


def test_the_api_answers_alike_for_every_username(client, consent_world, people):
    w = consent_world
    token = token_issue(user=w["account"], name="me", audience="patient", two_factor=True)[1]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    bodies = {}
    for key in KEYS:
        response = client.post(
            "/api/v1/me/proxies/", {"proxy_username": _name(people, key), "relationship": "carer"},
            content_type="application/json", **auth,
        )  # fmt: skip
        assert response.status_code == 201, (key, response.content)
        bodies[key] = {
            k: v for k, v in response.json().items() if k not in ("id", "created_at", "proxy")
        }
    assert all(body == bodies["nobody"] for body in bodies.values()), bodies
    assert bodies["nobody"]["status"] == "invited"
    listed = client.get("/api/v1/me/proxies/", **auth).json()["results"]
    assert sorted(r["proxy"] for r in listed) == sorted(_name(people, k) for k in KEYS)
    assert {r["status"] for r in listed} == {"invited"}


def test_only_a_patient_account_is_offered_the_invitation(client, sign_in, consent_world, people):
    w = consent_world
    sign_in(client, w["account"])
    for key in ("clinician", "auditor", "relative"):
        client.post(
            "/patient/proxies/",
            {"proxy_username": _name(people, key), "relationship": "carer", "scope_all": "all"},
        )
    assert not ProxyGrant.objects.exists()  # nobody sees anything before accepting
    invitations = {
        key: consent_models.ProxyInvitation.objects.get(username=_name(people, key))
        for key in ("clinician", "auditor", "relative")
    }
    # Staff and the auditor: nothing offered, and accepting is refused as missing (404).
    for key in ("clinician", "auditor"):
        user, invitation = people[key], invitations[key]
        sign_in(client, user)
        page = client.get("/patient/proxies/")
        assert b"invites you" not in page.content
        url = f"/patient/proxies/{invitation.row_uuid}/accept/"
        assert client.post(url).status_code == 404, key
        token = token_issue(user=user, name="x", audience="patient", two_factor=True)[1]
        auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        api_url = f"/api/v1/me/proxies/{invitation.row_uuid}/accept/"
        assert client.post(api_url, **auth).status_code == 404, key
        invited = client.get("/api/v1/me/proxies/?direction=invited", **auth).json()
        assert invited["results"] == [], key
    assert not ProxyGrant.objects.exists()
    # The patient account is offered it and accepts: now, and only now, it is a grant.
    relative = people["relative"]
    sign_in(client, relative)
    assert b"invites you" in client.get("/patient/proxies/").content
    accepted = client.post(f"/patient/proxies/{invitations['relative'].row_uuid}/accept/")
    assert accepted.status_code == 302
    grant = ProxyGrant.objects.get()
    assert grant.proxy == relative and grant.grantor == w["account"]
    sign_in(client, w["account"])
    assert b"accepted your invitation" in client.get("/patient/").content


def test_a_declined_invitation_looks_unanswered(client, sign_in, consent_world, people):
    w = consent_world
    sign_in(client, w["account"])
    for key in ("nobody", "relative"):
        client.post(
            "/patient/proxies/",
            {"proxy_username": _name(people, key), "relationship": "family", "scope_all": "all"},
        )
    assert not ProxyGrant.objects.exists()
    declined = consent_models.ProxyInvitation.objects.get(username=people["relative"].username)
    sign_in(client, people["relative"])
    assert client.post(f"/patient/proxies/{declined.row_uuid}/revoke/").status_code == 302
    declined.refresh_from_db()
    assert declined.status == "declined"
    sign_in(client, w["account"])
    page = client.get("/patient/proxies/").content.decode()
    rows = [
        _normalized(
            re.search(rf"<tr><td>{re.escape(_name(people, k))}</td>.*?</tr>", page, re.S).group(0),
            _name(people, k),
        )
        for k in ("nobody", "relative")
    ]
    assert rows[0] == rows[1] and "Waiting for them to accept" in rows[0]
    token = token_issue(user=w["account"], name="me", audience="patient", two_factor=True)[1]
    listed = client.get("/api/v1/me/proxies/", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert {r["status"] for r in listed["results"]} == {"invited"}
