"""Issue 13, item 5: access requests reveal nothing.

A clinician at Riverside asks, over the provider portal and the API, for access to records at
St Mary's, once with details that match a patient with a portal account and once with
details that match nobody. Until the patient approves, everything the requesting side can
see must be the same either way: the answer, the ids (asking again gives a new one each
time), the provider portal's list, the API's list, the requester's hospital admin's view in
/admin/, and the ledger receipts the requester may fetch; and the matched path runs the same
statements as the other, so timing does not tell them apart either. A denial reads like no
answer at all."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consent.models import AccessRequest, Consent
from ledger.anchoring import ledger_anchor_pending
from ledger.models import Event
from ledger.subjects import digest_content
from portal.api.services import token_issue

pytestmark = pytest.mark.django_db

MATCH = {"hospital": "st-mary", "mrn": "SM-100", "birth_date": "1970-02-03", "purpose": "TREAT"}
NO_MATCH = {**MATCH, "mrn": "SM-999"}
WRONG_BIRTH_DATE = {**MATCH, "birth_date": "1999-09-09"}


def _bearer(client, token):
    def post(url, body):
        return client.post(
            url, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
        )

    def get(url):
        return client.get(url, HTTP_AUTHORIZATION=f"Bearer {token}")

    return post, get


def _form(details, hospital):
    return {**details, "hospital": hospital.pk}


def _without_volatile(data: dict) -> dict:
    return {k: v for k, v in data.items() if k not in ("id", "created_at")}


def _normalized(html: str) -> str:
    """A page with what differs between any two requests (ids, times, CSRF) taken out."""
    html = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", html)
    html = re.sub(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?", "TIME", html)
    html = re.sub(r"[A-Z][a-z]{2}\.? \d{1,2}, \d{4}, [\d:apm. ]+|midnight|noon", "TIME", html)
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "CSRF", html)
    html = re.sub(r"/\d+/(change|history)/", r"/ID/\1/", html)
    return html


def test_asking_again_gives_a_new_id_whether_or_not_the_details_match(
    client, sign_in, consent_world
):
    w = consent_world
    token = token_issue(user=w["clinician_b"], name="probe", audience="staff", two_factor=True)[1]
    post, _ = _bearer(client, token)
    answers = {}
    for name, details in (("match", MATCH), ("none", NO_MATCH), ("birth", WRONG_BIRTH_DATE)):
        first = post("/api/v1/access-requests/", details)
        again = post("/api/v1/access-requests/", details)
        assert first.status_code == again.status_code == 202, first.content
        assert first.json()["id"] != again.json()["id"], name  # a repeat is a new request
        answers[name] = _without_volatile(first.json())
    assert answers["match"] == answers["none"] == answers["birth"]
    # The provider portal: the same words, a new row each time.
    sign_in(client, w["clinician_b"])
    before = AccessRequest.objects.count()
    pages = [
        client.post("/provider/access-requests/new/", _form(d, w["a"]), follow=True)
        for d in (MATCH, MATCH, NO_MATCH, NO_MATCH)
    ]
    assert AccessRequest.objects.count() == before + 4
    messages = {re.search(r"Request sent\.[^<]*", p.content.decode()).group(0) for p in pages}
    assert len(messages) == 1


def test_the_requesting_side_sees_the_same_until_the_patient_approves(
    client, sign_in, consent_world
):
    w = consent_world
    token = token_issue(user=w["clinician_b"], name="probe", audience="staff", two_factor=True)[1]
    post, get = _bearer(client, token)
    matched = post("/api/v1/access-requests/", MATCH).json()
    unmatched = post("/api/v1/access-requests/", NO_MATCH).json()

    # The patient denies the request that reached them (through their portal).
    sign_in(client, w["account"])
    answer = client.post(
        f"/patient/requests/{matched['id']}/", {"decision": "deny", "scope_all": "all"}
    )
    assert answer.status_code == 302
    assert AccessRequest.objects.get(row_uuid=matched["id"]).status == "denied"

    # API: the requester's list shows both alike (waiting, no decision time, no chart).
    listed = {r["id"]: r for r in get("/api/v1/access-requests/").json()["results"]}
    assert _without_volatile(listed[matched["id"]]) == _without_volatile(listed[unmatched["id"]])
    assert listed[matched["id"]]["status"] == "pending"
    assert listed[matched["id"]]["decided_at"] is None

    # Provider portal: the two rows of "My access requests" read the same.
    sign_in(client, w["clinician_b"])
    shared = client.get("/provider/shared/").content.decode()
    rows = re.findall(r"<tr><td>[^<]*</td><td>Riverside.*?</tr>", shared)
    assert len(rows) == 2 and len({_normalized(r) for r in rows}) == 1, rows
    assert b"Denied" not in client.get("/provider/shared/").content
    assert b"denied" not in client.get("/provider/").content  # no notice of the denial

    # The requester's hospital admin: the same row and the same page for both.
    sign_in(client, w["admin_b"])
    listing = client.get("/admin/consent/accessrequest/").content.decode()
    assert f"Patient {w['patient'].pk} at" not in listing
    assert "Denied" not in listing
    pages = []
    for data in (matched, unmatched):
        pk = AccessRequest.objects.get(row_uuid=data["id"]).pk
        page = client.get(f"/admin/consent/accessrequest/{pk}/change/")
        assert page.status_code == 200
        html = page.content.decode()
        assert f"Patient {w['patient'].pk} at" not in html and "denied" not in html.lower()
        pages.append(_normalized(html.split('id="content"')[1]))
    assert pages[0] == pages[1]
    # Filtering by outcome tells nothing more either.
    for value in ("waiting", "approved", "expired"):
        found = client.get(f"/admin/consent/accessrequest/?outcome={value}").content.decode()
        assert (matched["id"] in found) == (unmatched["id"] in found), value

    # ...while the admins of the patient's own hospital see whom it was addressed to.
    sign_in(client, w["admin_a"])
    pk = AccessRequest.objects.get(row_uuid=matched["id"]).pk
    assert (
        f"Patient {w['patient'].pk} at"
        in client.get(f"/admin/consent/accessrequest/{pk}/change/").content.decode()
    )
    unmatched_pk = AccessRequest.objects.get(row_uuid=unmatched["id"]).pk
    assert client.get(f"/admin/consent/accessrequest/{unmatched_pk}/change/").status_code == 404

    # Ledger: the receipts the requester may fetch name no patient, and their digests are
    # the keyed digest of what the requester knows, assuming no match at all (the same for
    # a match or none); keyed, so the requester cannot even test that.
    ledger_anchor_pending()
    sign_in(client, w["clinician_b"])
    for data in (matched, unmatched):
        event = Event.objects.get(kind="accessrequest.created", subject_id=data["id"])
        receipt = client.get(f"/ledger/events/{event.event_id}/receipt")
        assert receipt.status_code == 200
        leaf = json.loads(base64.b64decode(receipt.json()["entry"]["leaf"]))
        assert leaf["patient"] is None
        guess = {
            "row_uuid": data["id"], "requester_id": w["clinician_b"].pk,
            "requester_hospital_id": w["b"].pk, "patient_id": None, "purpose": "TREAT",
            "status": "pending", "decided_at": None,
        }  # fmt: skip
        assert leaf["v"] == 2
        assert leaf["digest"] == digest_content(guess, hospital_id=w["b"].pk)
        unkeyed = hashlib.sha256(
            json.dumps(guess, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        assert leaf["digest"] != unkeyed
    # Events after the request (the denial) are not the requester's to fetch.
    denial = Event.objects.get(kind="accessrequest.denied")
    assert client.get(f"/ledger/events/{denial.event_id}/receipt").status_code == 404
    sign_in(client, w["admin_b"])
    assert client.get(f"/ledger/events/{denial.event_id}/receipt").status_code == 404


def test_once_approved_the_requester_sees_the_chart(client, sign_in, consent_world):
    w = consent_world
    sign_in(client, w["clinician_b"])
    client.post("/provider/access-requests/new/", _form(MATCH, w["a"]))
    request = AccessRequest.objects.get()
    sign_in(client, w["account"])
    client.post(
        f"/patient/requests/{request.row_uuid}/", {"decision": "approve", "scope_all": "all"}
    )
    assert Consent.objects.filter(access_request=request).exists()
    sign_in(client, w["clinician_b"])
    shared = client.get("/provider/shared/").content.decode()
    assert f"/provider/patients/{w['patient'].pk}/" in shared and "Approved" in shared
    sign_in(client, w["admin_b"])
    page = client.get(f"/admin/consent/accessrequest/{request.pk}/change/").content.decode()
    assert f"Patient {w['patient'].pk} at" in page


def test_a_match_runs_the_same_statements_as_no_match(
    client, sign_in, consent_world, django_capture_on_commit_callbacks
):
    """No extra round trip on the matched path: the same statements (by table and kind),
    and the same work left for after the commit."""
    w = consent_world
    sign_in(client, w["clinician_b"])
    client.post("/provider/access-requests/new/", _form({**MATCH, "mrn": "WARM-UP"}, w["a"]))

    def shape(details):
        with (
            CaptureQueriesContext(connection) as ctx,
            django_capture_on_commit_callbacks() as callbacks,
        ):
            response = client.post("/provider/access-requests/new/", _form(details, w["a"]))
        assert response.status_code == 302
        statements = [
            re.sub(r"\s+", " ", q["sql"]).split(" WHERE ")[0] for q in ctx.captured_queries
        ]
        statements = [re.sub(r"VALUES .*", "VALUES", s) for s in statements]
        statements = [re.sub(r"'[^']*'|\b\d+\b|\"s\d+_x\d+\"", "?", s) for s in statements]
        return statements, len(callbacks)

    match, none, birth = shape(MATCH), shape(NO_MATCH), shape(WRONG_BIRTH_DATE)
    for a, b in zip(match[0], none[0], strict=False):
        assert a == b, (a, b)
    assert match == none == birth
    assert shape(MATCH) == shape(MATCH)  # asking again costs the same too
