"""A partial chart says what it withholds in the REST API too (issue 16, item 1): the chart
answer and a record list of a withheld category carry `withheld` ({category, label}); an
empty list means complete."""

import pytest

from tests.partial_chart import NOT_SHARED, partial_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def w(consent_world, make_staff):
    return partial_world(consent_world, make_staff)


def _get(client, sign_in, user, url):
    sign_in(client, user)
    response = client.get(url)
    assert response.status_code == 200, response.content
    return response.json()


def test_the_chart_answer_names_what_is_withheld(client, sign_in, w):
    chart = _get(client, sign_in, w["clinician_b"], f"/api/v1/patients/{w['patient'].pk}/chart/")
    assert [c["label"] for c in chart["withheld"]] == NOT_SHARED
    assert {c["category"] for c in chart["withheld"]} >= {"allergies", "medications", "notes"}
    assert chart["allergies"] == [] and chart["medications"] == [] and chart["problems"] == []
    assert {s["code"] for s in chart["series"]} == {"8867-4", "4548-4"}


def test_a_complete_chart_withholds_nothing(client, sign_in, w):
    for user in (w["clinician_a"], w["whole"]):
        url = f"/api/v1/patients/{w['patient'].pk}/chart/"
        chart = _get(client, sign_in, user, url)
        assert chart["withheld"] == []
        assert [a["display"] for a in chart["allergies"]] == ["Allergy to penicillin"]


def test_an_unshared_restricted_note_is_not_revealed(client, sign_in, w):
    # `whole` sees every category, not the restricted note: nothing says it exists.
    url = f"/api/v1/patients/{w['patient'].pk}/records/clinicalnote/"
    notes = _get(client, sign_in, w["whole"], url)
    assert notes["withheld"] == [] and [n["display"] for n in notes["results"]] == ["Visit"]
    assert "Therapy" not in str(notes) and "restricted" not in str(notes["withheld"])


def test_a_record_list_of_a_withheld_category_says_so(client, sign_in, w):
    base = f"/api/v1/patients/{w['patient'].pk}/records"
    allergies = _get(client, sign_in, w["clinician_b"], f"{base}/allergyintolerance/")
    assert allergies["results"] == []
    assert allergies["withheld"] == [{"category": "allergies", "label": "Allergies"}]
    observations = _get(client, sign_in, w["clinician_b"], f"{base}/observation/")
    assert observations["withheld"] == [] and len(observations["results"]) == 2
    # Labs only: the observation list leaves out the vital signs, and says so.
    observations = _get(client, sign_in, w["labs_only"], f"{base}/observation/")
    assert [w["category"] for w in observations["withheld"]] == ["vitals", "observations"]
    assert [r["display"] for r in observations["results"]] == ["Hemoglobin A1c"]


def test_a_withheld_record_is_404_like_a_missing_one(client, sign_in, w):
    sign_in(client, w["clinician_b"])
    response = client.get(f"/api/v1/records/allergyintolerance/{w['allergy'].pk}/")
    missing = client.get("/api/v1/records/allergyintolerance/999999/")
    assert response.status_code == missing.status_code == 404
    assert response.json() == missing.json() == {"error": "Not found.", "detail": {}}


def test_another_hospital_without_consent_gets_404(client, sign_in, w):
    sign_in(client, w["stranger"])
    for suffix in ("chart/", "records/allergyintolerance/"):
        response = client.get(f"/api/v1/patients/{w['patient'].pk}/{suffix}")
        assert response.status_code == 404
        assert "withheld" not in response.json()
