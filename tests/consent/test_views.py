"""The consent pages end to end through the test client: flows, bad input, the
cross-patient matrix of every patient-portal URL, and query counts."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from consent import services
from consent.models import AccessRequest, BreakGlass, Consent, ProxyGrant, ProxyInvitation
from ledger.anchoring import ledger_anchor_pending
from ledger.models import Event

pytestmark = pytest.mark.django_db


def test_patient_grants_on_the_form_and_the_clinician_opens_the_chart(
    client, sign_in, consent_world
):
    w = consent_world
    sign_in(client, w["account"])
    page = client.get("/patient/consents/new/")
    assert page.status_code == 200 and b"Riverside General" in page.content
    response = client.post(
        "/patient/consents/new/",
        {
            "registration": w["patient"].pk, "grantee_kind": "practitioner",
            "grantee_user": w["clinician_b"].pk, "scope_all": "some", "categories": ["labs"],
            "purpose": "TREAT",
        },
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    consent = Consent.objects.get()
    assert consent.categories == ["labs"]
    listing = client.get("/patient/consents/")
    assert b"Laboratory results" in listing.content and b"Consent granted" in listing.content

    sign_in(client, w["clinician_b"])
    shared = client.get("/provider/shared/")
    assert b"Jones" in shared.content
    chart = client.get(f"/provider/patients/{w['patient'].pk}/")
    assert chart.status_code == 200
    assert b"Shared with you" in chart.content and b"Hemoglobin A1c" in chart.content
    assert b"Heart rate" not in chart.content  # vitals were not shared
    assert b"Record blood pressure" not in chart.content  # read only
    event = Event.objects.filter(kind="chart.read", actor=w["clinician_b"]).get()
    assert event.attrs["via"] == "consent" and event.attrs["purpose"] == "TREAT"

    sign_in(client, w["account"])
    client.post(f"/patient/consents/{consent.row_uuid}/revoke/")
    sign_in(client, w["clinician_b"])
    assert client.get(f"/provider/patients/{w['patient'].pk}/").status_code == 404


@pytest.mark.parametrize(
    "change, message",
    [
        ({"grantee_kind": "hospital", "grantee_hospital": "987654"}, b"does not exist"),
        ({"period_start": "2099-01-10", "period_end": "2099-01-05"}, b"is before the start date"),
        ({"period_end": "2001-01-01"}, b"in the past"),
        ({"registration": "OTHER"}, b"your own registrations"),
        ({"scope_all": "some"}, b"at least one category"),
        ({"grantee_user": ""}, b"Choose who"),
    ],
)
def test_bad_consent_forms_save_nothing(client, sign_in, consent_world, change, message):
    w = consent_world
    sign_in(client, w["account"])
    data = {
        "registration": w["patient"].pk, "grantee_kind": "practitioner",
        "grantee_user": w["clinician_b"].pk, "scope_all": "all", "purpose": "TREAT", **change,
    }  # fmt: skip
    if data["registration"] == "OTHER":
        data["registration"] = w["other"].pk
    events = Event.objects.count()
    response = client.post("/patient/consents/new/", data)
    assert response.status_code == 400
    assert message in response.content
    assert not Consent.objects.exists() and Event.objects.count() == events


def test_shared_list_holds_only_granted_charts(client, sign_in, consent_world):
    w = consent_world
    sign_in(client, w["clinician_b"])
    assert b"Jones" not in client.get("/provider/shared/").content
    services.consent_grant(
        patient=w["patient"], actor=w["account"], grantee_kind="practitioner",
        grantee_user=w["clinician_b"],
    )  # fmt: skip
    page = client.get("/provider/shared/").content
    assert b"Jones" in page and b"Other" not in page
    sign_in(client, w["clinician_a"])  # the home hospital's staff: not "shared"
    assert b"Jones" not in client.get("/provider/shared/").content


def test_access_request_flow(client, sign_in, consent_world):
    w = consent_world
    sign_in(client, w["clinician_b"])
    form = {"hospital": w["a"].pk, "mrn": "SM-100", "birth_date": "1970-02-03", "purpose": "TREAT"}
    response = client.post("/provider/access-requests/new/", form, follow=True)
    assert b"If the details match" in response.content
    wrong = client.post(
        "/provider/access-requests/new/", {**form, "birth_date": "1999-01-01"}, follow=True
    )
    assert b"If the details match" in wrong.content  # the same answer: nothing revealed
    assert (
        client.post("/provider/access-requests/new/", {**form, "hospital": 99999}).status_code
        == 400
    )
    request = AccessRequest.objects.get(addressee=w["patient"])

    sign_in(client, w["other_account"])  # another patient cannot answer it
    assert client.get(f"/patient/requests/{request.row_uuid}/").status_code == 404
    sign_in(client, w["account"])
    assert b"asks to see" in client.get("/patient/").content
    url = f"/patient/requests/{request.row_uuid}/"
    response = client.post(url, {"decision": "approve", "scope_all": "all"})
    assert response.status_code == 302
    replay = client.post(url, {"decision": "deny", "scope_all": "all"}, follow=True)
    assert b"already been answered" in replay.content
    request.refresh_from_db()
    assert request.status == "approved" and Consent.objects.count() == 1

    sign_in(client, w["clinician_b"])
    assert b"Approved" in client.get("/provider/shared/").content
    assert client.get(f"/provider/patients/{w['patient'].pk}/").status_code == 200


def test_break_glass_flow(client, sign_in, consent_world, mailoutbox):
    w = consent_world
    sign_in(client, w["clinician_b"])
    url = f"/provider/patients/{w['patient'].pk}/"
    assert client.get(url).status_code == 404
    details = {"hospital": w["a"].pk, "mrn": "SM-100", "birth_date": "1970-02-03"}
    short = client.post("/provider/break-glass/", {**details, "reason": "quick"})
    assert short.status_code == 400 and not BreakGlass.objects.exists()
    nobody = client.post(
        "/provider/break-glass/", {**details, "mrn": "NOPE", "reason": "Unconscious, no ID"}
    )
    assert nobody.status_code == 400 and b"No patient matches" in nobody.content
    response = client.post("/provider/break-glass/", {**details, "reason": "Unconscious, no ID"})
    assert response.status_code == 302 and response.url == url
    chart = client.get(url)
    assert b"Emergency (break-glass) access" in chart.content
    assert b"break-glass</span>" in client.get("/provider/shared/").content
    event = Event.objects.filter(kind="chart.read", actor=w["clinician_b"]).get()
    assert event.attrs["break_glass"] is True and event.attrs["purpose"] == "ETREAT"
    # Recorded under the chart's hospital (St Mary's), read from Riverside; so is the opening.
    opened = Event.objects.get(kind="breakglass.opened")
    for e in (event, opened):
        assert (e.hospital_id, e.actor_hospital_id) == (w["a"].pk, w["b"].pk)

    sign_in(client, w["account"])
    home = client.get("/patient/")
    assert b"Emergency access" in home.content
    log = client.get("/patient/access/")
    assert b"break-glass" in log.content and b"Rui Costa" in log.content
    assert b"<td>Rui Costa</td><td>Riverside General</td><td>St Mary&#x27;s Hospital</td>" in (
        log.content
    )
    sign_in(client, w["admin_a"])
    assert b"Emergency access at" in client.get("/provider/").content


def test_patient_verifies_an_access_receipt(client, sign_in, consent_world):
    w = consent_world
    sign_in(client, w["clinician_a"])
    client.get(f"/provider/patients/{w['patient'].pk}/")
    event = Event.objects.get(kind="chart.read")
    sign_in(client, w["account"])
    pending = client.get(f"/patient/access/{event.event_id}/verify/")
    assert b"Not anchored yet" in pending.content
    ledger_anchor_pending()
    page = client.get(f"/patient/access/{event.event_id}/verify/")
    assert page.status_code == 200 and b"Verified: entry" in page.content
    receipt = client.get(f"/ledger/events/{event.event_id}/receipt")
    assert receipt.status_code == 200


def test_records_page_by_category_with_charts(client, sign_in, consent_world):
    w = consent_world
    sign_in(client, w["account"])
    vitals = client.get("/patient/records/?category=vitals")
    assert (
        vitals.status_code == 200 and b"<svg" in vitals.content and b"Heart rate" in vitals.content
    )
    main = vitals.content.split(b"<main")[1]
    # The other patient's value is nowhere: not drawn, not in the values table. (A bare "90"
    # may be an axis tick or a coordinate now that the chart has a scale.)
    assert b"71 /min" in main and b"<td>71</td>" in main
    assert b"90 /min" not in main and b"<td>90</td>" not in main
    notes = client.get("/patient/records/?category=notes").content
    assert b"Therapy" in notes  # the patient reads their own restricted note
    assert client.get("/patient/records/?category=bogus").status_code == 404


def test_proxy_pages(client, sign_in, consent_world):
    w = consent_world
    sign_in(client, w["account"])
    response = client.post(
        "/patient/proxies/",
        {"proxy_username": w["other_account"].username, "relationship": "family",
         "scope_all": "some", "categories": ["vitals"]},
    )  # fmt: skip
    assert response.status_code == 302
    own = {"proxy_username": w["account"].username, "relationship": "family", "scope_all": "all"}
    bad = client.post("/patient/proxies/", own)
    assert bad.status_code == 400 and b"your own username" in bad.content
    invitation = ProxyInvitation.objects.get()
    assert not ProxyGrant.objects.exists()  # nothing until they accept
    sign_in(client, w["other_account"])
    assert b"invites you" in client.get("/patient/").content
    assert b"invites you" in client.get("/patient/proxies/").content
    accepted = client.post(f"/patient/proxies/{invitation.row_uuid}/accept/")
    assert accepted.status_code == 302
    grant = ProxyGrant.objects.get()
    assert grant.proxy == w["other_account"]
    page = client.get(f"/patient/proxies/{grant.row_uuid}/records/?category=vitals")
    assert page.status_code == 200 and b"Heart rate" in page.content
    labs = client.get(f"/patient/proxies/{grant.row_uuid}/records/?category=labs").content
    assert b"Hemoglobin" not in labs
    client.post(f"/patient/proxies/{grant.row_uuid}/revoke/")  # the proxy steps down
    assert client.get(f"/patient/proxies/{grant.row_uuid}/records/").status_code == 404


def test_export_json_and_print(client, sign_in, consent_world):
    w = consent_world
    sign_in(client, w["account"])
    response = client.get("/patient/export.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/fhir+json"
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    types = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert types.count("Patient") == 1 and types.count("Observation") == 2
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(bundle) if hasattr(Bundle, "model_validate") else Bundle.parse_obj(bundle)
    assert b"Olga" not in response.content
    page = client.get("/patient/export/")
    assert page.status_code == 200 and b"Hemoglobin A1c" in page.content


def test_other_patients_ids_are_404(client, sign_in, consent_world, make_patient_user):
    """Every patient-portal URL that takes an id answers 404 for another patient's."""
    w = consent_world
    proxy, _ = make_patient_user(w["b"])
    consent = services.consent_grant(
        patient=w["other"], actor=w["other_account"], grantee_kind="hospital",
        grantee_hospital=w["b"],
    )  # fmt: skip
    invitation = services.proxy_invite(
        grantor=w["other_account"], proxy_username=w["account"].username, relationship="carer"
    )
    grant = services.proxy_accept(
        invitation=services.proxy_invite(
            grantor=w["other_account"], proxy_username=proxy.username, relationship="carer"
        ),
        actor=proxy,
    )
    request = services.access_request_create(
        requester=w["clinician_b"], requester_hospital=w["b"], patient_hospital=w["a"],
        mrn="SM-200", birth_date=dt.date(1960, 1, 1),
    )  # fmt: skip
    sign_in(client, w["clinician_a"])
    client.get(f"/provider/patients/{w['other'].pk}/")
    foreign_event = Event.objects.get(kind="chart.read")
    sign_in(client, w["account"])
    for url in (
        reverse("patient:event_verify", args=[foreign_event.event_id]),
        reverse("patient:consent_revoke", args=[consent.row_uuid]),
        reverse("patient:request_decide", args=[request.row_uuid]),
        reverse("patient:proxy_revoke", args=[grant.row_uuid]),
        reverse("patient:proxy_records", args=[grant.row_uuid]),
        reverse("patient:proxy_accept", args=[grant.row_uuid]),
        reverse("patient:event_verify", args=["not-a-uuid"]),
    ):
        method = client.post if "revoke" in url or "accept" in url else client.get
        assert method(url).status_code == 404, url
    consent.refresh_from_db()
    assert consent.status == "active"
    # An invitation to this account is its to answer; another account's is 404 to it.
    sign_in(client, proxy)
    for url in (reverse("patient:proxy_accept", args=[invitation.row_uuid]),
                reverse("patient:proxy_revoke", args=[invitation.row_uuid])):  # fmt: skip
        assert client.post(url).status_code == 404, url
    sign_in(client, w["account"])
    pages = [reverse(f"patient:{n}") for n in ("records", "access_log", "consents", "requests",
                                                "proxies", "export_print")]  # fmt: skip
    for url in pages:
        body = client.get(url).content
        assert b"Olga" not in body and b"SM-200" not in body, url
    assert b"Olga" not in client.get(reverse("patient:export_json")).content
    # Not a patient at all: the patient pages are refused, the proxy page is empty.
    sign_in(client, w["clinician_b"])
    assert client.get(reverse("patient:consents")).status_code == 403
    assert client.get(reverse("patient:consent_new")).status_code == 403


def test_patient_pages_run_constant_queries(client, sign_in, consent_world):
    w = consent_world
    sign_in(client, w["account"])

    def count(url):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx)

    def grant_and_read():
        services.consent_grant(
            patient=w["patient"], actor=w["account"], grantee_kind="practitioner",
            grantee_user=w["clinician_b"],
        )  # fmt: skip
        sign_in(client, w["clinician_a"])
        client.get(f"/provider/patients/{w['patient'].pk}/")
        sign_in(client, w["account"])

    urls = ["/patient/access/", "/patient/consents/", "/patient/records/?category=vitals"]
    grant_and_read()  # one of each, then three more: the counts must not move
    before = {url: count(url) for url in urls}
    for _ in range(3):
        grant_and_read()
    after = {url: count(url) for url in urls}
    assert after == before


def test_every_consent_change_has_a_receipt_the_verifier_accepts(client, sign_in, consent_world):
    """Consents, requests and proxies each link receipts; each one verifies offline."""
    import json

    from ledger.keys import log_signer
    from ledger.verifier import load_verifier_key, verify_receipt

    w = consent_world
    consent = services.consent_grant(
        patient=w["patient"], actor=w["account"], grantee_kind="practitioner",
        grantee_user=w["clinician_b"],
    )  # fmt: skip
    services.consent_revoke(consent=consent, actor=w["account"])
    request = services.access_request_create(
        requester=w["clinician_b"], requester_hospital=w["b"], patient_hospital=w["a"],
        mrn="SM-100", birth_date=dt.date(1970, 2, 3),
    )  # fmt: skip
    services.access_request_decide(request=request, actor=w["account"], approve=False)
    invitation = services.proxy_invite(
        grantor=w["account"], proxy_username=w["other_account"].username, relationship="family"
    )
    services.proxy_accept(invitation=invitation, actor=w["other_account"])
    ledger_anchor_pending()
    sign_in(client, w["account"])
    key = load_verifier_key(log_signer().vkey())
    seen = set()
    for page in ("/patient/consents/", "/patient/requests/", "/patient/proxies/"):
        html = client.get(page).content.decode()
        links = set(re.findall(r'href="(/ledger/events/[^"]+/receipt)\?download=1"', html))
        assert links, page
        for link in links:
            receipt = client.get(link)
            assert receipt.status_code == 200, link
            verify_receipt(json.loads(receipt.content), key)
            seen.add(receipt.json()["entry"]["kind"])
    # A request's creation is the requester's event (naming no patient: they may fetch it,
    # and it must not tell a match from none); the patient's receipts start at their answer.
    assert {"consent.granted", "consent.revoked", "accessrequest.denied", "proxy.invited",
            "proxy.accepted", "proxy.granted"} <= seen  # fmt: skip
    created = Event.objects.get(kind="accessrequest.created", subject_id=str(request.row_uuid))
    assert created.patient_id is None and created.actor_id == w["clinician_b"].pk
