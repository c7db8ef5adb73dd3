"""POST [type]: create, and conditional create (If-None-Exist), also under concurrent
requests (portal.fhir.transactions, portal.fhir.locks)."""

import datetime as dt
import json
import threading

import pytest
import requests
from django.db import connection

from ledger.models import Event
from portal.api.services import token_issue
from portal.fhir.models import ImportIdentity
from portal.records import services
from portal.records.models import Observation, Patient
from portal.tenancy.scoping import unscoped
from tests.fhir.test_views import BASE, _valid

MRN_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}


def _observation(patient_id, value=72):
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4",
                             "display": "Heart rate"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2021-03-04T05:06:07+00:00",
        "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org",
                          "code": "/min"},
    }  # fmt: skip


def _patient(mrn, family="Okafor"):
    return {
        "resourceType": "Patient",
        "identifier": [{"type": MRN_TYPE, "value": mrn}],
        "name": [{"family": family, "given": ["Jordan"]}],
        "gender": "female",
        "birthDate": "1980-01-02",
    }


def _create(client, rtype, resource, criteria=None, status=201):
    headers = {"If-None-Exist": criteria} if criteria is not None else {}
    response = client.post(
        f"{BASE}{rtype}", json.dumps(resource), content_type="application/fhir+json",
        headers=headers,
    )  # fmt: skip
    body = _valid(response, status)
    return response, body


def _counts():
    with unscoped():
        return (Patient.objects.count(), Observation.objects.count(),
                ImportIdentity._base_manager.count())  # fmt: skip


def test_a_create_answers_201_with_its_location(client, sign_in, chart):
    a = chart["a"]
    sign_in(client, a["clinician"])
    response, body = _create(client, "Observation", _observation(a["patient"].pk))
    assert body["meta"]["versionId"] == "1"
    assert response["Location"].endswith(f"/fhir/R4/Observation/{body['id']}/_history/1")
    assert response["ETag"] == 'W/"1"'
    assert _valid(client.get(f"{BASE}Observation/{body['id']}")) == body
    # A create without criteria always creates, whatever the resource's id says.
    again = _create(client, "Observation", {**_observation(a["patient"].pk), "id": "x"})[1]
    assert again["id"] != body["id"]


def test_if_none_exist_creates_once_then_answers_the_match(client, sign_in, chart):
    a = chart["a"]
    sign_in(client, a["clinician"])
    resource = _observation(a["patient"].pk)
    first = _create(client, "Observation", resource, "identifier=urn:lab|obs-1")[1]
    before = _counts()
    last = Event.objects.order_by("-id").values_list("id", flat=True).first()
    response, second = _create(client, "Observation", resource, "identifier=urn:lab|obs-1", 200)
    assert second == first
    assert response["Location"].endswith(f"Observation/{first['id']}/_history/1")
    assert _counts() == before
    # Answering the match is a read of it: recorded as one.
    kinds = list(Event.objects.filter(id__gt=last).values_list("kind", flat=True))
    assert kinds == ["record.read"]
    # Other criteria, another resource.
    third = _create(client, "Observation", resource, "identifier=urn:lab|obs-2")[1]
    assert third["id"] != first["id"]


def test_a_patient_matches_by_its_search_parameters(client, sign_in, chart):
    a = chart["a"]
    sign_in(client, a["clinician"])
    _, found = _create(client, "Patient", _patient("A-100"), "identifier=A-100", 200)
    assert found["id"] == str(a["patient"].pk)
    _, created = _create(client, "Patient", _patient("NEW-1", "Mensah"), "family=Mensah")
    assert created["identifier"][0]["value"] == "NEW-1"
    assert created["meta"]["versionId"] == "1"
    _, same = _create(client, "Patient", _patient("NEW-2", "Mensah"), "family=Mensah", 200)
    assert same["id"] == created["id"]


def test_several_matches_are_412_and_write_nothing(client, sign_in, chart):
    a = chart["a"]
    with unscoped():
        for mrn in ("S-1", "S-2"):
            services.patient_register(
                hospital=a["hospital"], mrn=mrn, given_name="Sam", family_name="Smith",
                birth_date=dt.date(1990, 1, 1), actor=a["clinician"],
            )  # fmt: skip
    sign_in(client, a["clinician"])
    before = _counts()
    _, body = _create(client, "Patient", _patient("S-3", "Smith"), "family=Smith", 412)
    assert body["issue"][0]["code"] == "duplicate"
    assert _counts() == before


@pytest.mark.parametrize(
    ("rtype", "resource", "criteria", "status"),
    [
        ("Observation", {"resourceType": "Patient"}, None, 400),
        ("Observation", None, "code=8867-4", 400),
        ("Observation", None, "identifier=a&identifier=b", 400),
        ("Patient", None, "gender=female", 400),
        ("Patient", None, "birthdate=yesterday", 400),
        ("AuditEvent", {"resourceType": "AuditEvent"}, None, 405),
        ("Nothing", {"resourceType": "Nothing"}, None, 404),
    ],
)
def test_bad_creates_are_refused_and_write_nothing(client, sign_in, chart, rtype, resource,
                                                   criteria, status):  # fmt: skip
    a = chart["a"]
    sign_in(client, a["clinician"])
    if resource is None:
        resource = _patient("Z-1") if rtype == "Patient" else _observation(a["patient"].pk)
    before = _counts()
    _create(client, rtype, resource, criteria, status)
    assert _counts() == before


def test_no_create_on_another_hospitals_chart(client, sign_in, chart):
    a, b = chart["a"], chart["b"]
    sign_in(client, a["clinician"])
    before = _counts()
    for criteria in (None, "identifier=urn:lab|b-1"):
        _, body = _create(client, "Observation", _observation(b["patient"].pk), criteria, 422)
        assert "does not resolve to a Patient" in body["issue"][0]["diagnostics"]
    # B's patient, by its MRN: not among what A may open, so no match; a new registration at
    # A under that MRN is A's own patient, never B's chart.
    _, body = _create(client, "Patient", _patient("B-100", "LovelaceB"), "identifier=B-100")
    assert body["id"] != str(b["patient"].pk)
    assert _counts()[1:] == (before[1], before[2] + 1)


def test_a_duplicate_refused_by_a_unique_constraint_is_retried_and_matched(
    client, sign_in, chart, monkeypatch
):
    """What the advisory lock cannot cover (SQLite, a writer without criteria): the
    constraint refuses the second identity, and the retry finds the first one's row."""
    from django.db import IntegrityError

    from portal.fhir import transactions

    a = chart["a"]
    sign_in(client, a["clinician"])
    real = transactions.fhir_bundle_import
    calls = []

    def racing(**kwargs):
        calls.append(1)
        if len(calls) == 1:  # another request commits the same resource first
            real(**kwargs)
            raise IntegrityError("duplicate key value violates unique constraint")
        return real(**kwargs)

    monkeypatch.setattr(transactions, "fhir_bundle_import", racing)
    before = _counts()
    resource = _observation(a["patient"].pk)
    _, body = _create(client, "Observation", resource, "identifier=urn:lab|dup-1", 200)
    assert len(calls) == 2
    assert _counts()[1] == before[1] + 1
    assert body["meta"]["versionId"] == "1"


# --- concurrency (PostgreSQL) -----------------------------------------------------------------

CLIENTS = 8


def _race(url, token, body, criteria):
    """CLIENTS requests at once, each on its own connection (and server thread)."""
    barrier = threading.Barrier(CLIENTS)
    answers = [None] * CLIENTS

    def one(i):
        with requests.Session() as session:
            barrier.wait()
            answers[i] = session.post(
                url, data=json.dumps(body), timeout=60,
                headers={"Authorization": f"Bearer {token}", "If-None-Exist": criteria,
                         "Content-Type": "application/fhir+json"},
            )  # fmt: skip

    threads = [threading.Thread(target=one, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


@pytest.mark.parametrize("rtype", ["Observation", "Patient"])
def test_concurrent_conditional_creates_create_exactly_one(live_server, chart, rtype):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL (SQLite takes one writer at a time)")
    a = chart["a"]
    token = token_issue(user=a["clinician"], name="race", audience="staff", two_factor=True)[1]
    if rtype == "Observation":
        body, criteria = _observation(a["patient"].pk), "identifier=urn:lab|race-1"
    else:
        body, criteria = _patient("RACE-1", "Racer"), "family=Racer"
    before = _counts()
    answers = _race(f"{live_server.url}{BASE}{rtype}", token, body, criteria)
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * (CLIENTS - 1) + [201], [r.text[:300] for r in answers]
    assert len({r.headers["Location"] for r in answers}) == 1
    assert len({r.json()["id"] for r in answers}) == 1
    after = _counts()
    if rtype == "Observation":
        assert after[:2] == (before[0], before[1] + 1)
    else:
        assert after[:2] == (before[0] + 1, before[1])
