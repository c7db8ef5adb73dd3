"""POST [base]: a transaction answers a transaction-response, a batch a batch-response
(portal.fhir.transactions)."""

import copy
import json

from fhir.resources.R4B.bundle import Bundle

from ledger.models import Event
from portal.fhir.models import ImportIdentity
from portal.records.models import Condition, Observation, Patient
from portal.tenancy.scoping import unscoped
from tests.fhir.test_import import _entry, _tiny_bundle
from tests.fhir.test_views import BASE, _valid

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _post(client, bundle, status=200):
    response = client.post(BASE, json.dumps(bundle), content_type="application/fhir+json")
    return _valid(response, status)


def _bundle():
    bundle = _tiny_bundle()
    bundle["entry"] += [
        _entry("Claim", "claim", {
            "status": "active", "use": "claim", "created": "2020-01-02",
            "type": {"text": "x"}, "patient": {"reference": "urn:uuid:pat-1"},
            "provider": {"display": "p"}, "priority": {"text": "normal"},
            "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "c"}}],
        }),
        _entry("Observation", "bp", {
            "status": "final",
            "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "subject": {"reference": "urn:uuid:pat-1"},
            "effectiveDateTime": "2020-01-02T03:04:05+00:00",
            "component": [
                {"code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                 "valueQuantity": {"value": value, "unit": "mm[Hg]",
                                   "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
                for code, value in (("8480-6", 120), ("8462-4", 80))
            ],
        }),
    ]  # fmt: skip
    return bundle


def _counts():
    with unscoped():
        return (Patient.objects.count(), Condition.objects.count(), Observation.objects.count(),
                ImportIdentity._base_manager.count(), Event.objects.count())  # fmt: skip


def test_a_transaction_answers_one_entry_per_request_in_order(client, sign_in, chart):
    sign_in(client, chart["a"]["clinician"])
    bundle = _bundle()
    body = _post(client, bundle)
    Bundle.model_validate(body)
    assert body["type"] == "transaction-response"
    responses = [e["response"] for e in body["entry"]]
    assert len(responses) == len(bundle["entry"])
    assert [r["status"] for r in responses] == ["201 Created", "201 Created", "200 OK",
                                                 "201 Created"]  # fmt: skip
    patient, condition, claim, panel = responses
    assert patient["location"].startswith("Patient/")
    assert condition["location"].startswith("Condition/")
    assert condition["location"].endswith("/_history/1")
    assert condition["lastModified"]
    assert "location" not in claim
    assert "Claim is not kept" in claim["outcome"]["issue"][0]["diagnostics"]
    # The panel is one Observation with its components (nothing else to name).
    assert panel["location"].startswith("Observation/")
    assert "outcome" not in panel
    for response in (patient, condition, panel):
        version = _valid(client.get(f"{BASE}{response['location']}"))
        current = _valid(client.get(f"{BASE}{response['location'].split('/_history')[0]}"))
        assert version == current
    # Again: nothing new, every stored entry answered 200 at the same place.
    before = _counts()
    again = _post(client, bundle)
    assert [e["response"]["status"] for e in again["entry"]] == ["200 OK"] * 4
    assert [e["response"].get("location") for e in again["entry"]] == [
        r.get("location") for r in responses
    ]
    assert _counts()[:4] == before[:4]


def test_a_location_follows_corrections(client, sign_in, chart):
    from portal.records import services

    a = chart["a"]
    sign_in(client, a["clinician"])
    bundle = _tiny_bundle()
    first = _post(client, bundle)["entry"][1]["response"]["location"]
    with unscoped():
        condition = Condition.objects.latest("id")
        services.record_correct(
            actor=a["clinician"], record=condition, display="HTN", correction_reason="wording"
        )
    again = _post(client, bundle)["entry"][1]["response"]
    assert again["status"] == "200 OK"
    assert again["location"] == first.replace("/_history/1", "/_history/2")


def test_a_bad_entry_refuses_the_whole_transaction(client, sign_in, chart):
    sign_in(client, chart["a"]["clinician"])
    bundle = _bundle()
    bundle["entry"][1]["resource"]["subject"]["reference"] = "urn:uuid:nobody"
    before = _counts()
    body = _post(client, bundle, 422)
    assert body["resourceType"] == "OperationOutcome"
    assert _counts() == before


def test_a_batch_answers_each_entry_on_its_own(client, sign_in, chart):
    sign_in(client, chart["a"]["clinician"])
    bundle = _bundle()
    bundle["type"] = "batch"
    broken = copy.deepcopy(bundle["entry"][1])
    broken["resource"]["id"] = broken["fullUrl"] = "cond-broken"
    broken["resource"]["subject"]["reference"] = "urn:uuid:nobody"
    invalid = copy.deepcopy(bundle["entry"][1])
    invalid["resource"]["id"] = invalid["fullUrl"] = "cond-invalid"
    invalid["resource"]["onsetDateTime"] = "not a date"
    bundle["entry"][1:1] = [broken, invalid]
    before = _counts()
    body = _post(client, bundle)
    Bundle.model_validate(body)
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["201 Created", "422 Unprocessable Entity", "400 Bad Request",
                        "201 Created", "200 OK", "201 Created"]  # fmt: skip
    refused = body["entry"][1]["response"]["outcome"]
    assert "does not resolve to a Patient" in refused["issue"][0]["diagnostics"]
    assert "not valid FHIR" in body["entry"][2]["response"]["outcome"]["issue"][0]["diagnostics"]
    after = _counts()
    # One Patient, one Condition, one Observation (the panel, with its components).
    assert (after[0] - before[0], after[1] - before[1], after[2] - before[2]) == (1, 1, 1)
    # The refused entries left nothing behind: sent again alone, they are refused again.
    assert "location" not in body["entry"][1]["response"]


def test_a_collection_still_answers_the_import_report(client, sign_in, chart):
    sign_in(client, chart["a"]["clinician"])
    bundle = _bundle()
    bundle["type"] = "collection"
    body = _post(client, bundle)
    assert body["resourceType"] == "OperationOutcome"
    assert "created" in json.dumps(body)


def test_if_none_exist_in_a_transaction_matches_by_identifier(client, sign_in, chart):
    sign_in(client, chart["a"]["clinician"])
    bundle = _tiny_bundle()
    bundle["entry"][1]["request"]["ifNoneExist"] = "identifier=urn:lab|c-77"
    first = _post(client, bundle)["entry"][1]["response"]
    assert first["status"] == "201 Created"
    # Another id, the same identifier: matched, nothing written.
    other = copy.deepcopy(bundle)
    other["entry"][1]["resource"]["id"] = "cond-other"
    other["entry"][1]["fullUrl"] = "urn:uuid:cond-other"
    before = _counts()
    second = _post(client, other)["entry"][1]["response"]
    assert (second["status"], second["location"]) == ("200 OK", first["location"])
    assert _counts()[:4] == before[:4]
    bundle["entry"][1]["request"]["ifNoneExist"] = "code=1234"
    body = _post(client, bundle, 422)
    assert "identifier=[system|]value" in body["issue"][0]["diagnostics"]


def test_a_transaction_cannot_write_into_another_hospitals_chart(client, sign_in, chart):
    a, b = chart["a"], chart["b"]
    sign_in(client, a["clinician"])
    bundle = _tiny_bundle()
    del bundle["entry"][0]
    bundle["entry"][0]["resource"]["subject"]["reference"] = f"Patient/{b['patient'].pk}"
    before = _counts()
    body = _post(client, bundle, 422)
    assert "does not resolve to a Patient" in body["issue"][0]["diagnostics"]
    bundle["type"] = "batch"
    body = _post(client, bundle)
    assert body["entry"][0]["response"]["status"] == "422 Unprocessable Entity"
    assert _counts() == before
    # Its own chart, by the portal's id: written.
    bundle["entry"][0]["resource"]["subject"]["reference"] = f"Patient/{a['patient'].pk}"
    body = _post(client, bundle)
    assert body["entry"][0]["response"]["status"] == "201 Created"
