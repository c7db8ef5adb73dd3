"""Issue 17: reports, imaging, care plans and goals through the REST API: listed and read
with their words (`display`), withheld on a partial chart, 404 to another hospital."""

import pytest

from tests.partial_chart import partial_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def w(consent_world, make_staff):
    return partial_world(consent_world, make_staff)


def test_staff_list_and_read_them(client, sign_in, w, django_assert_max_num_queries):
    sign_in(client, w["clinician_a"])
    p = w["patient"].pk
    with django_assert_max_num_queries(30):
        listed = client.get(f"/api/v1/patients/{p}/records/diagnosticreport/")
    assert listed.status_code == 200
    (row,) = listed.json()["results"]
    assert row["display"] == "Lipid panel"
    assert row["data"]["results"] == [{"observation": w["lab"].pk, "display": "Hemoglobin A1c"}]
    read = client.get(f"/api/v1/records/careplan/{w['careplan'].pk}/")
    assert read.status_code == 200 and read.json()["display"] == "Diabetes self management plan"
    # No form: they come from FHIR imports.
    assert client.post(f"/api/v1/patients/{p}/records/careplan/", {},
                       content_type="application/json").status_code == 404  # fmt: skip


def test_a_partial_chart_withholds_them(client, sign_in, w):
    sign_in(client, w["clinician_b"])  # vital signs and laboratory results only
    p = w["patient"].pk
    listed = client.get(f"/api/v1/patients/{p}/records/diagnosticreport/").json()
    assert listed["results"] == []
    assert [c["category"] for c in listed["withheld"]] == ["reports"]
    assert client.get(f"/api/v1/records/diagnosticreport/{w['report'].pk}/").status_code == 404
    chart = client.get(f"/api/v1/patients/{p}/chart/").json()
    assert {"reports", "careplans"} <= {c["category"] for c in chart["withheld"]}


def test_another_hospital_gets_404(client, sign_in, w):
    sign_in(client, w["stranger"])
    assert client.get(f"/api/v1/records/careplan/{w['careplan'].pk}/").status_code == 404
    p = w["patient"].pk
    assert client.get(f"/api/v1/patients/{p}/records/careplan/").status_code == 404


def test_the_patient_reads_them_as_their_own(client, sign_in, w):
    sign_in(client, w["account"])
    mine = client.get("/api/v1/me/records/?category=careplans")
    assert mine.status_code == 200
    assert [r["type"] for r in mine.json()["results"]] == ["careplan"]
