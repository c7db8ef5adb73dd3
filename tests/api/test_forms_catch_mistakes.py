"""The API meets the forms' rules (issue 16, item 7): an end before its start is a 400 that
names both fields, a select is never defaulted, and a correction needs its reason. Nothing
is written when refused; another hospital's record is a 404."""

import pytest

from ledger.models import Event
from portal.records.models import Condition, Encounter, MedicationRequest, RecordStatus
from portal.tenancy.scoping import unscoped

pytestmark = pytest.mark.django_db


def _written():
    with unscoped():
        return (Condition.objects.count(), Encounter.objects.count(),
                MedicationRequest.objects.count(), Event.objects.count())  # fmt: skip


@pytest.mark.parametrize(
    ("record_type", "body", "field", "words"),
    [
        ("condition", {"code": "195967001", "display": "Asthma", "clinical_status": "active",
                       "onset_date": "2022-05-10", "abatement_date": "2022-05-01"},
         "abatement_date", "abatement date (2022-05-01) is before the onset date (2022-05-10)"),
        ("encounter", {"class_code": "AMB", "type_display": "Check-up",
                       "period_start": "2024-02-02T10:00:00Z",
                       "period_end": "2024-02-01T10:00:00Z"},
         "period_end", "is before the period start"),
        ("medicationrequest", {"code": "197361", "display": "amlodipine 5 MG Oral Tablet",
                               "request_status": "active", "authored_on": "2024-01-02T09:00:00Z",
                               "valid_until": "2023-12-31T09:00:00Z"},
         "valid_until", "is before the start (authored on)"),
    ],
)  # fmt: skip
def test_an_end_before_its_start_is_a_400_and_writes_nothing(
    api, api_world, record_type, body, field, words
):
    a = api_world["a"]
    client = api(a["staff_token"])
    before = _written()
    response = client.post(f"/api/v1/patients/{a['patient'].pk}/records/{record_type}/", body)
    assert response.status_code == 400, response.content
    assert words in response.json()["detail"][field][0]
    assert _written() == before


def test_a_select_is_never_defaulted(api, api_world):
    a = api_world["a"]
    client = api(a["staff_token"])
    before = _written()
    allergy = client.post(
        f"/api/v1/patients/{a['patient'].pk}/records/allergyintolerance/",
        {"code": "300916003", "display": "Latex allergy", "recorded_date": "2024-01-01T10:00:00Z"},
    )
    assert allergy.status_code == 400
    assert allergy.json()["detail"]["criticality"] == ["Choose one from the list."]
    patient = client.post("/api/v1/patients/", {"mrn": "A-777", "given_name": "N",
                          "family_name": "M", "birth_date": "1990-01-01"})  # fmt: skip
    assert patient.status_code == 400
    assert patient.json()["detail"]["sex"] == ["Choose one from the list."]
    assert _written() == before


def test_an_api_correction_needs_its_reason(api, api_world):
    a, b = api_world["a"], api_world["b"]
    client = api(a["staff_token"])
    url = f"/api/v1/records/condition/{a['condition'].pk}/correct/"
    before = _written()
    for body in ({"display": "Type 1"}, {"display": "Type 1", "correction_reason": " "}):
        response = client.post(url, body)
        assert response.status_code == 400
        assert response.json()["detail"]["correction_reason"]
    assert _written() == before
    # Another hospital's token: 404, with or without a reason.
    assert api(b["staff_token"]).post(url, {"correction_reason": "x"}).status_code == 404
    assert _written() == before
    done = client.post(url, {"code": "46635009", "display": "Diabetes mellitus type 1",
                             "correction_reason": "Wrong type"})  # fmt: skip
    assert done.status_code == 201, done.content
    assert done.json()["data"]["correction_reason"] == "Wrong type"
    with unscoped():
        assert Condition.objects.get(pk=a["condition"].pk).status == RecordStatus.ENTERED_IN_ERROR


def test_a_consent_ending_before_it_starts_is_a_400(api, api_world):
    from consent.models import Consent

    a, b = api_world["a"], api_world["b"]
    client = api(a["patient_token"])
    body = {"registration": a["patient"].pk, "grantee_kind": "hospital",
            "grantee_hospital": b["hospital"].pk, "scope_all": True, "purpose": "TREAT",
            "period_start": "2099-01-10", "period_end": "2099-01-05"}  # fmt: skip
    before = Consent.objects.count(), Event.objects.count()
    response = client.post("/api/v1/me/consents/", body)
    assert response.status_code == 400
    message = response.json()["detail"]["period_end"][0]
    assert "(Until, 2099-01-05) is before the start date (From, 2099-01-10)" in message
    assert (Consent.objects.count(), Event.objects.count()) == before
