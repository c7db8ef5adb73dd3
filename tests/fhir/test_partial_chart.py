"""A partial chart says what it withholds in FHIR too (issue 16, item 1): a search on it
(a type search, Patient/$everything) carries an OperationOutcome entry (search.mode
"outcome", code "suppressed") that names the withheld categories in words; the Bundle
validates; a read of a withheld resource is the same 404 as a missing one."""

import json
from urllib.parse import urlencode

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from portal.fhir import resources
from tests.partial_chart import NOT_SHARED, partial_world

pytestmark = pytest.mark.django_db
BASE = "/fhir/R4/"


@pytest.fixture
def w(consent_world, make_staff):
    return partial_world(consent_world, make_staff)


def _bundle(client, url, method="get", data=None):
    if method == "post":
        response = client.post(
            url, urlencode(data or {}), content_type="application/x-www-form-urlencoded"
        )
    else:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    body = json.loads(response.content)
    Bundle.model_validate(body)  # the served Bundle, outcome entry included, validates
    return body


def _split(bundle):
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    outcomes = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    return matches, outcomes


def test_everything_on_a_partial_chart_says_what_was_withheld(client, sign_in, w):
    sign_in(client, w["clinician_b"])
    bundle = _bundle(client, f"{BASE}Patient/{w['patient'].pk}/$everything")
    matches, (outcome,) = _split(bundle)
    OperationOutcome.model_validate(outcome)
    (issue,) = outcome["issue"]
    assert issue["code"] == "suppressed" and issue["severity"] == "warning"
    assert issue["details"]["text"] == "Not shared with you: " + ", ".join(NOT_SHARED)
    assert bundle["total"] == len(matches)  # the outcome is not a match
    types = {e["resource"]["resourceType"] for e in matches}
    assert "AllergyIntolerance" not in types and "MedicationRequest" not in types


def test_a_search_of_a_withheld_type_warns_and_names_it(client, sign_in, w):
    sign_in(client, w["clinician_b"])
    for method, url, data in (
        ("get", f"{BASE}AllergyIntolerance?patient={w['patient'].pk}", None),
        ("post", f"{BASE}AllergyIntolerance/_search", {"patient": str(w["patient"].pk)}),
    ):
        bundle = _bundle(client, url, method, data)
        matches, (outcome,) = _split(bundle)
        assert matches == [] and bundle["total"] == 0
        (issue,) = outcome["issue"]
        assert issue["severity"] == "warning" and issue["code"] == "suppressed"
        assert "Allergies" in issue["details"]["text"]
        assert issue["details"]["text"].startswith("Not shared with you: ")


def test_a_search_of_a_shared_type_on_a_partial_chart_informs(client, sign_in, w):
    sign_in(client, w["clinician_b"])
    bundle = _bundle(client, f"{BASE}Observation?patient={w['patient'].pk}")
    matches, (outcome,) = _split(bundle)
    assert len(matches) == 2  # its own matches are complete
    assert outcome["issue"][0]["severity"] == "information"
    # Labs only: the Observation search leaves out the vital signs, a warning.
    sign_in(client, w["labs_only"])
    bundle = _bundle(client, f"{BASE}Observation?patient={w['patient'].pk}")
    matches, (outcome,) = _split(bundle)
    assert [e["resource"]["code"]["coding"][0]["code"] for e in matches] == ["4548-4"]
    assert outcome["issue"][0]["severity"] == "warning"
    assert "Vital signs" in outcome["issue"][0]["details"]["text"]


def test_a_complete_chart_has_no_outcome(client, sign_in, w):
    # `whole` is not granted the restricted note: that is no withheld category (nothing
    # tells the note exists).
    for user in (w["clinician_a"], w["whole"]):
        sign_in(client, user)
        for url in (
            f"{BASE}Patient/{w['patient'].pk}/$everything",
            f"{BASE}AllergyIntolerance?patient={w['patient'].pk}",
            f"{BASE}DocumentReference?patient={w['patient'].pk}",
        ):
            matches, outcomes = _split(_bundle(client, url))
            assert outcomes == [] and matches, url
    sign_in(client, w["whole"])
    body = client.get(f"{BASE}Patient/{w['patient'].pk}/$everything").content.decode()
    assert "Therapy" not in body and "suppressed" not in body


def test_a_withheld_resource_is_404_like_a_missing_one(client, sign_in, w):
    sign_in(client, w["clinician_b"])
    allergy = client.get(f"{BASE}AllergyIntolerance/{resources.fhir_id(w['allergy'])}")
    missing = client.get(f"{BASE}AllergyIntolerance/999999")
    assert allergy.status_code == missing.status_code == 404
    assert allergy.content == missing.content
    OperationOutcome.model_validate(json.loads(allergy.content))


def test_another_hospital_without_consent_gets_404(client, sign_in, w):
    sign_in(client, w["stranger"])
    for url in (
        f"{BASE}Patient/{w['patient'].pk}/$everything",
        f"{BASE}AllergyIntolerance?patient={w['patient'].pk}",
    ):
        response = client.get(url)
        assert response.status_code == 404
        assert json.loads(response.content)["resourceType"] == "OperationOutcome"
