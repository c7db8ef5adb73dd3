"""A FHIR import meets the records' period rule (issue 16, item 7): an end before its start
refuses the whole bundle with a message naming both fields; nothing is written."""

import json

import pytest

from ledger.models import Event
from portal.records.models import Encounter, MedicationRequest, Patient
from portal.tenancy.scoping import unscoped
from tests.fhir.test_import import _entry, _tiny_bundle

BASE = "/fhir/R4/"


def _with(entry):
    bundle = _tiny_bundle()
    bundle["entry"].append(entry)
    return bundle


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        (_entry("Encounter", "enc-1", {
            "status": "finished", "class": {"code": "AMB"},
            "subject": {"reference": "urn:uuid:pat-1"},
            "period": {"start": "2020-02-02T10:00:00Z", "end": "2020-02-01T10:00:00Z"}}),
         "is before the period start"),
        (_entry("MedicationRequest", "med-1", {
            "status": "active", "intent": "order", "subject": {"reference": "urn:uuid:pat-1"},
            "medicationCodeableConcept": {"coding": [{
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361"}]},
            "authoredOn": "2020-02-02T10:00:00Z",
            "dispenseRequest": {"validityPeriod": {"end": "2020-01-01T10:00:00Z"}}}),
         "is before the start (authored on)"),
        (_entry("Condition", "cond-9", {
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "6142004"}]},
            "subject": {"reference": "urn:uuid:pat-1"},
            "onsetDateTime": "2020-02-02", "abatementDateTime": "2020-01-01"}),
         "is before the onset date"),
    ],
)  # fmt: skip
def test_an_end_before_its_start_refuses_the_bundle(client, sign_in, chart, entry, words):
    sign_in(client, chart["a"]["clinician"])
    with unscoped():
        before = (Patient.objects.count(), Encounter.objects.count(),
                  MedicationRequest.objects.count(), Event.objects.count())  # fmt: skip
    response = client.post(BASE, json.dumps(_with(entry)), content_type="application/fhir+json")
    assert response.status_code == 422
    assert words in response.json()["issue"][0]["diagnostics"]
    with unscoped():
        after = (Patient.objects.count(), Encounter.objects.count(),
                 MedicationRequest.objects.count(), Event.objects.count())  # fmt: skip
    assert after == before


def test_a_medication_end_round_trips(client, sign_in, chart):
    sign_in(client, chart["a"]["clinician"])
    entry = _entry("MedicationRequest", "med-2", {
        "status": "active", "intent": "order", "subject": {"reference": "urn:uuid:pat-1"},
        "medicationCodeableConcept": {"coding": [{
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361"}]},
        "authoredOn": "2020-02-02T10:00:00Z",
        "dispenseRequest": {"validityPeriod": {"end": "2020-08-02T10:00:00Z"}}})  # fmt: skip
    response = client.post(BASE, json.dumps(_with(entry)), content_type="application/fhir+json")
    assert response.status_code == 200, response.content[:500]
    with unscoped():
        med = MedicationRequest.objects.latest("id")
    found = client.get(f"{BASE}MedicationRequest/{med.pk}").json()
    assert found["dispenseRequest"]["validityPeriod"]["end"].startswith("2020-08-02T10:00:00")
