"""FHIR Consent: a patient's consents read and searched through /fhir/R4/, by whoever may
open the chart (its own hospital's staff, the grantee), validated with fhir.resources."""

import pytest

from consent import services
from portal.fhir.resources import validate_resource

pytestmark = pytest.mark.django_db


@pytest.fixture
def granted(consent_world):
    w = consent_world
    consent = services.consent_grant(
        patient=w["patient"], actor=w["account"], grantee_kind="practitioner",
        grantee_user=w["clinician_b"], scope_all=False, categories=["labs", "vitals"],
        restricted_notes=[w["secret"]],
    )  # fmt: skip
    return w, consent


def test_grantee_and_home_staff_read_consents(client, sign_in, granted):
    w, consent = granted
    for user in (w["clinician_a"], w["clinician_b"]):
        sign_in(client, user)
        bundle = client.get(f"/fhir/R4/Consent?patient={w['patient'].pk}").json()
        (entry,) = bundle["entry"]
        resource = entry["resource"]
        validate_resource(resource)
        assert resource["id"] == str(consent.row_uuid) and resource["status"] == "active"
        provision = resource["provision"]
        assert provision["actor"][0]["reference"]["reference"] == (
            f"Practitioner/{w['clinician_b'].pk}"
        )
        assert {c["coding"][0]["code"] for c in provision["code"]} == {"labs", "vitals"}
        assert (
            provision["data"][0]["reference"]["reference"]
            == f"DocumentReference/note-{w['secret'].pk}"
        )
        read = client.get(f"/fhir/R4/Consent/{consent.row_uuid}")
        assert read.status_code == 200 and read.json()["id"] == str(consent.row_uuid)
    everything = client.get(f"/fhir/R4/Patient/{w['patient'].pk}/$everything").json()
    assert "Consent" in {e["resource"]["resourceType"] for e in everything["entry"]}


def test_consents_are_404_to_everyone_else(client, sign_in, granted, make_staff):
    w, consent = granted
    from portal.tenancy.models import Role

    stranger = make_staff(w["b"], Role.CLINICIAN)
    sign_in(client, stranger)
    assert client.get(f"/fhir/R4/Consent?patient={w['patient'].pk}").status_code == 404
    assert client.get(f"/fhir/R4/Consent/{consent.row_uuid}").status_code == 404
    assert client.get("/fhir/R4/Consent/not-a-uuid").status_code == 404
    services.consent_revoke(consent=consent, actor=w["account"])
    sign_in(client, w["clinician_b"])
    assert client.get(f"/fhir/R4/Consent/{consent.row_uuid}").status_code == 404
    sign_in(client, w["clinician_a"])
    assert client.get(f"/fhir/R4/Consent/{consent.row_uuid}").json()["status"] == "inactive"
