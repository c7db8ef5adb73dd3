"""Imported observations of every kind on the pages (issue 17, item 1): the provider chart's
timeline and record page, the patient's records tabs and the REST API say their values in
words ("Never smoker", a blood pressure panel's two values), the trend charts still draw an
imported blood pressure panel, and another hospital's staff see none of it."""

import copy

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.fhir.services import fhir_bundle_import
from portal.records.models import Observation
from portal.tenancy.scoping import unscoped
from tests.fhir.test_import_observations import _hand_made_bundle

pytestmark = pytest.mark.django_db


def _import(hospital, actor, bundle=None) -> int:
    report = fhir_bundle_import(
        hospital=hospital, bundle=bundle or _hand_made_bundle(), actor=actor
    )
    return report.patients[0]


def _rows(patient_id) -> dict[str, Observation]:
    with unscoped():
        return {o.value_label: o for o in Observation.objects.filter(patient_id=patient_id)}


def _more(bundle: dict, copies: int) -> dict:
    """The bundle with `copies` more of each of its observations (ids of their own)."""
    out = copy.deepcopy(bundle)
    observations = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    for n in range(copies):
        for entry in observations:
            extra = copy.deepcopy(entry)
            extra["resource"]["id"] += f"-{n}"
            extra["fullUrl"] += f"-{n}"
            out["entry"].append(extra)
    return out


def test_the_chart_says_every_value_in_words_and_draws_the_panel(
    client, sign_in, hospital_a, clinician_a
):
    patient_id = _import(hospital_a, clinician_a)
    sign_in(client, clinician_a)
    page = client.get(f"/provider/patients/{patient_id}/").content.decode()
    assert "Never smoker" in page and "Lives alone; walks daily" in page
    assert "Systolic blood pressure 121.5 mmHg; Diastolic blood pressure 79 mmHg" in page
    assert "no value (Asked But Declined)" in page
    assert 'data-code="85354-9"' in page  # the blood pressure trend, from the panel
    assert '{"' not in page  # no stored JSON on the page


def test_the_chart_runs_the_same_queries_whatever_the_observations(
    client, sign_in, hospital_a, clinician_a
):
    bundle = _hand_made_bundle()
    patient_id = _import(hospital_a, clinician_a, bundle)
    sign_in(client, clinician_a)
    url = f"/provider/patients/{patient_id}/"
    client.get(url)  # warms the process's caches

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx.captured_queries)

    few = count()
    _import(hospital_a, clinician_a, _more(bundle, 3))
    assert count() == few


def test_a_record_page_says_the_value_and_offers_no_numeric_correction(
    client, sign_in, hospital_a, clinician_a
):
    rows = _rows(_import(hospital_a, clinician_a))
    sign_in(client, clinician_a)
    concept = rows["Never smoker"]
    page = client.get(reverse("provider:record", args=["observation", concept.pk]))
    text = page.content.decode()
    assert "Never smoker" in text and "Correct this value" not in text and '{"' not in text
    correct = reverse("provider:observation_correct", args=[concept.pk])
    assert client.get(correct).status_code == 404


def test_the_patient_sees_other_observations_in_their_own_tab(
    client, sign_in, make_patient_user, hospital_a, hospital_b
):
    user, (registration,) = make_patient_user(hospital_a)
    bundle = _hand_made_bundle()
    with unscoped():
        mrn = registration.mrn
    bundle["entry"][0]["resource"]["identifier"][0]["value"] = mrn
    fhir_bundle_import(hospital=hospital_a, bundle=bundle, actor=None)  # the operator's
    sign_in(client, user)
    others = client.get("/patient/records/?category=observations").content.decode()
    assert "Never smoker" in others and "Lives alone; walks daily" in others
    assert "121.5" not in others  # the panel is a vital sign
    vitals = client.get("/patient/records/?category=vitals").content.decode()
    assert "Systolic blood pressure 121.5 mmHg; Diastolic blood pressure 79 mmHg" in vitals
    assert 'data-code="85354-9"' in vitals


def test_the_api_gives_the_value_structured_and_in_words(
    client, sign_in, hospital_a, clinician_a, clinician_b
):
    patient_id = _import(hospital_a, clinician_a)
    sign_in(client, clinician_a)
    url = f"/api/v1/patients/{patient_id}/records/observation/"
    answer = client.get(url)
    assert answer.status_code == 200
    by_text = {r["data"]["value_text"]: r["data"] for r in answer.json()["results"]}
    concept = by_text["Never smoker"]
    assert concept["value_fhir"]["type"] == "CodeableConcept"
    assert concept["value_fhir"]["value"]["text"] == "Never smoker"
    assert concept["value"] is None and concept["category"] == "survey"
    panel = by_text["Systolic blood pressure 121.5 mmHg; Diastolic blood pressure 79 mmHg"]
    assert [c["valueQuantity"]["value"] for c in panel["components"]] == [121.5, 79]
    # Another hospital's staff: as if the chart did not exist.
    sign_in(client, clinician_b)
    assert client.get(url).status_code == 404
    assert client.get(f"/provider/patients/{patient_id}/").status_code == 404
