"""Patient endpoints: my registrations, records, access log, consents, access requests and
proxies; another patient's ids are 404, staff tokens are not patients, lists run a constant
number of queries."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from consent import services as consent_services
from consent.models import AccessRequest, Consent, ProxyGrant
from portal.records import access
from portal.tenancy.scoping import unscoped
from tests import factories

LISTS = [
    "/api/v1/me/registrations/", "/api/v1/me/records/", "/api/v1/me/access-log/",
    "/api/v1/me/consents/", "/api/v1/me/access-requests/", "/api/v1/me/proxies/",
]  # fmt: skip


def _results(response):
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_staff_and_anonymous_are_refused(api, api_world):
    for url in LISTS[:5]:
        assert api(api_world["a"]["staff_token"]).get(url).status_code == 403, url
        assert api().get(url).status_code == 401, url


def test_my_registrations_records_and_access_log(api, api_world, make_patient_user):
    a, b = api_world["a"], api_world["b"]
    client = api(a["patient_token"])
    regs = _results(client.get("/api/v1/me/registrations/"))
    assert [r["id"] for r in regs] == [a["patient"].pk]
    vitals = _results(client.get("/api/v1/me/records/"))
    assert [r["id"] for r in vitals] == [a["observation"].pk]
    notes = _results(client.get("/api/v1/me/records/", {"category": "notes"}))
    assert [r["id"] for r in notes] == [a["note"].pk]
    bad = client.get("/api/v1/me/records/", {"category": "secrets"})
    assert bad.status_code == 400 and "category" in bad.json()["detail"]
    # Another patient's records never appear.
    theirs = _results(api(b["patient_token"]).get("/api/v1/me/records/"))
    assert [r["id"] for r in theirs] == [b["observation"].pk]
    # A staff read shows in the access log.
    api(a["staff_token"]).get(f"/api/v1/patients/{a['patient'].pk}/chart/")
    log = _results(client.get("/api/v1/me/access-log/"))
    assert log[0]["what"] == "Opened your chart" and log[0]["break_glass"] is False
    assert log[0]["hospital"] == log[0]["chart_hospital"] == a["patient"].hospital.name
    assert (log[0]["purpose"], log[0]["channel"]) == ("Treatment", "the hospital's own staff")
    # B's patient sees nothing of A's reads.
    assert _results(api(b["patient_token"]).get("/api/v1/me/access-log/")) == []


def test_consents_grant_list_revoke(api, api_world):
    a, b = api_world["a"], api_world["b"]
    client = api(a["patient_token"])
    body = {"registration": a["patient"].pk, "grantee_kind": "hospital",
            "grantee_hospital": b["hospital"].pk, "scope_all": False, "categories": ["vitals"],
            "purpose": "TREAT"}  # fmt: skip
    # Someone else's registration is not a valid choice.
    other = client.post("/api/v1/me/consents/", {**body, "registration": b["patient"].pk})
    assert other.status_code == 400 and "registration" in other.json()["detail"]
    none = client.post("/api/v1/me/consents/", {**body, "categories": []})
    assert none.status_code == 400 and "categories" in none.json()["detail"]
    created = client.post("/api/v1/me/consents/", body)
    assert created.status_code == 201, created.content
    consent = created.json()
    assert consent["status"] == "active" and consent["categories"] == ["vitals"]
    # B's clinician now sees A's vitals (only), through the same selectors.
    b_client = api(b["staff_token"])
    chart = b_client.get(f"/api/v1/patients/{a['patient'].pk}/chart/").json()
    assert chart["access"]["categories"] == ["vitals"] and chart["access"]["shared"] is True
    conds = b_client.get(f"/api/v1/patients/{a['patient'].pk}/records/condition/")
    assert _results(conds) == []
    assert [c["id"] for c in _results(client.get("/api/v1/me/consents/"))] == [consent["id"]]
    assert _results(api(b["patient_token"]).get("/api/v1/me/consents/")) == []
    # Another patient cannot revoke it; the owner can, once.
    url = f"/api/v1/me/consents/{consent['id']}/revoke/"
    assert api(b["patient_token"]).post(url).status_code == 404
    revoked = client.post(url)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert client.post(url).status_code == 400
    assert b_client.get(f"/api/v1/patients/{a['patient'].pk}/chart/").status_code == 404
    assert client.post("/api/v1/me/consents/00000000-0000-0000-0000-000000000000/revoke/"
                       ).status_code == 404  # fmt: skip


def test_access_requests_list_and_decide(api, api_world):
    a, b = api_world["a"], api_world["b"]
    details = {"hospital": "st-mary", "mrn": "A-100", "birth_date": "1970-02-03",
               "purpose": "TREAT"}  # fmt: skip
    first = api(b["staff_token"]).post("/api/v1/access-requests/", details).json()
    client = api(a["patient_token"])
    pending = _results(client.get("/api/v1/me/access-requests/"))
    assert [r["id"] for r in pending] == [first["id"]]
    assert _results(api(b["patient_token"]).get("/api/v1/me/access-requests/")) == []
    url = f"/api/v1/me/access-requests/{first['id']}/decide/"
    # Only the patient it is addressed to can answer.
    assert api(b["patient_token"]).post(url, {"decision": "approve"}).status_code == 404
    assert client.post(url, {"decision": "maybe"}).status_code == 400
    answered = client.post(url, {"decision": "approve", "scope_all": True})
    assert answered.status_code == 200 and answered.json()["status"] == "approved"
    assert Consent.objects.filter(access_request__row_uuid=first["id"]).exists()
    assert client.post(url, {"decision": "deny"}).status_code == 400  # answered once
    assert _results(client.get("/api/v1/me/access-requests/")) == []
    assert len(_results(client.get("/api/v1/me/access-requests/", {"status": "all"}))) == 1
    staff_view = _results(api(b["staff_token"]).get("/api/v1/access-requests/"))
    assert staff_view[0]["status"] == "approved" and staff_view[0]["patient"] == a["patient"].pk
    second = api(b["staff_token"]).post("/api/v1/access-requests/", details).json()
    denied = client.post(f"/api/v1/me/access-requests/{second['id']}/decide/",
                         {"decision": "deny"})  # fmt: skip
    assert denied.json()["status"] == "denied"
    assert AccessRequest.objects.get(row_uuid=second["id"]).status == "denied"


def _patient_account(hospital):
    user = factories.UserFactory()
    with unscoped():
        factories.PatientFactory(hospital=hospital, user=user)
    return user


def test_proxies_grant_list_revoke(api, api_world):
    a, b = api_world["a"], api_world["b"]
    carer = _patient_account(b["hospital"])
    from portal.api.services import token_issue

    carer_token = token_issue(user=carer, name="carer", audience="patient", two_factor=False)[1]
    client = api(a["patient_token"])
    own = client.post("/api/v1/me/proxies/", {"proxy_username": a["account"].username,
                      "relationship": "carer"})  # fmt: skip
    assert own.status_code == 400 and "proxy_username" in own.json()["detail"]
    created = client.post("/api/v1/me/proxies/", {"proxy_username": carer.username,
                          "relationship": "carer", "scope_all": False,
                          "categories": ["vitals"]})  # fmt: skip
    assert created.status_code == 201, created.content
    invitation = created.json()
    assert invitation["status"] == "invited" and invitation["proxy"] == carer.username
    assert [g["id"] for g in _results(client.get("/api/v1/me/proxies/"))] == [invitation["id"]]
    assert _results(api(carer_token).get("/api/v1/me/proxies/", {"direction": "received"})) == []
    invited = _results(api(carer_token).get("/api/v1/me/proxies/", {"direction": "invited"}))
    assert [i["id"] for i in invited] == [invitation["id"]]
    # Only the invited account can accept: another patient 404, a staff token 403 (it acts
    # as staff only), the patient themself 400.
    accept = f"/api/v1/me/proxies/{invitation['id']}/accept/"
    assert api(b["patient_token"]).post(accept).status_code == 404
    for token in (b["staff_token"], a["staff_token"]):
        assert api(token).post(accept).status_code == 403
    assert client.post(accept).status_code == 400  # their own invitation: not theirs to accept
    accepted = api(carer_token).post(accept)
    assert accepted.status_code == 200 and accepted.json()["status"] == "active"
    grant = accepted.json()
    assert [g["id"] for g in _results(client.get("/api/v1/me/proxies/"))] == [grant["id"]]
    received = _results(api(carer_token).get("/api/v1/me/proxies/", {"direction": "received"}))
    assert [g["id"] for g in received] == [grant["id"]]
    assert api(carer_token).post(accept).status_code == 404  # answered
    with unscoped():
        assert access.proxy_chart_for(user=carer, patient=a["patient"]) is not None
    # A stranger cannot end it; the patient can.
    url = f"/api/v1/me/proxies/{grant['id']}/revoke/"
    assert api(b["patient_token"]).post(url).status_code == 404
    assert api(b["staff_token"]).post(url).status_code == 403  # a staff token acts as staff only
    ended = client.post(url)
    assert ended.status_code == 200 and ended.json()["status"] == "revoked"
    assert ProxyGrant.objects.get(row_uuid=grant["id"]).status == "revoked"
    assert client.post(url).status_code == 400
    # An invitation is withdrawn through the same endpoint.
    again = client.post("/api/v1/me/proxies/", {"proxy_username": "nobody-here",
                        "relationship": "carer"}).json()  # fmt: skip
    withdrawn = client.post(f"/api/v1/me/proxies/{again['id']}/revoke/")
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    # An account without registrations cannot give proxy access.
    nobody_token = token_issue(
        user=factories.UserFactory(), name="x", audience="patient", two_factor=False
    )[1]
    refused = api(nobody_token).post("/api/v1/me/proxies/", {
        "proxy_username": a["account"].username, "relationship": "family"})  # fmt: skip
    assert refused.status_code == 400


def test_patient_lists_run_constant_queries(api, api_world, make_staff):
    a, b = api_world["a"], api_world["b"]
    client = api(a["patient_token"])

    def counts():
        out = {}
        for url in LISTS:
            client.get(url)
            with CaptureQueriesContext(connection) as ctx:
                assert client.get(url).status_code == 200
            out[url] = len(ctx.captured_queries)
        return out

    def add_rows():
        with unscoped():
            consent_services.consent_grant(
                patient=a["patient"], actor=a["account"], grantee_kind="hospital",
                grantee_hospital=b["hospital"],
            )  # fmt: skip
            api(a["staff_token"]).get(f"/api/v1/patients/{a['patient'].pk}/")
            _proxies()

    def _proxies():
        invitation = consent_services.proxy_invite(
            grantor=a["account"], proxy_username=factories.UserFactory().username,
            relationship="carer",
        )  # fmt: skip
        carer = _patient_account(b["hospital"])
        consent_services.proxy_accept(
            invitation=consent_services.proxy_invite(
                grantor=a["account"], proxy_username=carer.username, relationship="carer"
            ),
            actor=carer,
        )
        return invitation

    add_rows()
    few = counts()
    with unscoped():
        for _ in range(4):
            consent_services.consent_grant(
                patient=a["patient"], actor=a["account"], grantee_kind="hospital",
                grantee_hospital=b["hospital"],
            )  # fmt: skip
            api(a["staff_token"]).get(f"/api/v1/patients/{a['patient'].pk}/")
            _proxies()
    assert counts() == few
