"""Mapping of patients, records and ledger events to FHIR R4, validated with fhir.resources."""

import base64
import json

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.provenance import Provenance

from ledger.anchoring import ledger_anchor_pending
from ledger.models import Event
from portal.fhir import resources, selectors
from portal.records import services
from portal.records.access import access_patient
from portal.tenancy.scoping import hospital_scope, unscoped

RECORD_KEYS = [
    "encounter", "observation", "condition", "medicationrequest", "allergyintolerance",
    "immunization", "procedure", "clinicalnote", "document",
]  # fmt: skip


def test_patient_validates_and_carries_the_mrn(chart):
    patient = chart["a"]["patient"]
    with unscoped():
        resource = resources.to_fhir(patient)
    Patient.model_validate(resource)
    (identifier,) = resource["identifier"]
    assert identifier["value"] == "A-100"
    assert identifier["type"]["coding"][0]["code"] == "MR"
    assert resource["birthDate"] == "1970-12-10"
    assert resource["name"][0] == {"use": "official", "family": "LovelaceA", "given": ["Ada"]}
    assert resource["gender"] == "female"


@pytest.mark.parametrize("key", RECORD_KEYS)
def test_every_record_type_validates(chart, key):
    record = chart["a"][key]
    with unscoped():
        resource = resources.to_fhir(record)
    resources.validate_resource(resource)
    assert resource["resourceType"] == resources.resource_type_of(record)
    subject = resource.get("subject") or resource.get("patient")
    assert subject == {"reference": f"Patient/{chart['a']['patient'].pk}"}


def test_observation_values(chart):
    with unscoped():
        resource = resources.to_fhir(chart["a"]["observation"])
    Observation.model_validate(resource)
    assert resource["code"]["coding"][0] == {
        "system": resources.LOINC, "code": "8867-4", "display": "Heart rate"
    }  # fmt: skip
    assert resource["valueQuantity"] == {
        "value": 72.5, "unit": "/min", "system": resources.UCUM, "code": "/min"
    }  # fmt: skip


def test_notes_and_documents_are_document_references_with_distinct_ids(chart):
    with unscoped():
        note = resources.to_fhir(chart["a"]["clinicalnote"])
        doc = resources.to_fhir(chart["a"]["document"])
    for resource in (note, doc):
        DocumentReference.model_validate(resource)
    assert note["id"].startswith("note-") and doc["id"].startswith("doc-")
    assert base64.b64decode(note["content"][0]["attachment"]["data"]) == b"Feels well."
    assert base64.b64decode(doc["content"][0]["attachment"]["data"]) == b"hello"
    assert doc["content"][0]["attachment"]["contentType"] == "text/plain"


def test_entered_in_error_versions_say_so(chart):
    a = chart["a"]
    with unscoped():
        services.record_correct(
            actor=a["clinician"], record=a["condition"], display="HTN", correction_reason="Wording"
        )
        a["condition"].refresh_from_db()
        old = resources.to_fhir(a["condition"])
    resources.validate_resource(old)
    assert old["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    assert "clinicalStatus" not in old


def test_everything_bundle_holds_every_record(chart):
    a = chart["a"]
    with hospital_scope(a["hospital"]):
        patient = access_patient(a["clinician"], a["patient"].pk)
        bundle = selectors.fhir_patient_everything(chart=patient)
    Bundle.model_validate(bundle)
    types = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert types == sorted(
        ["Patient", "Encounter", "Observation", "Condition", "MedicationRequest",
         "AllergyIntolerance", "Immunization", "Procedure", "DocumentReference",
         "DocumentReference"]
    )  # fmt: skip


def test_everything_leaves_out_a_restricted_note_the_caller_was_not_granted(
    chart, make_staff, hospital_a
):
    from portal.records.models import ClinicalNote

    a = chart["a"]
    colleague = make_staff(hospital_a)
    with unscoped():
        secret = services.record_create(
            actor=a["clinician"], patient=a["patient"], model=ClinicalNote, title="Private",
            text="psychotherapy", restricted=True,
        )  # fmt: skip
    with hospital_scope(hospital_a):
        mine = selectors.fhir_patient_everything(
            chart=access_patient(a["clinician"], a["patient"].pk)
        )
        theirs = selectors.fhir_patient_everything(chart=access_patient(colleague, a["patient"].pk))
    ids = lambda b: {e["resource"]["id"] for e in b["entry"]}  # noqa: E731
    assert f"note-{secret.pk}" in ids(mine)
    assert f"note-{secret.pk}" not in ids(theirs)


def test_audit_event_from_an_access_event(client, sign_in, chart):
    a = chart["a"]
    sign_in(client, a["clinician"])
    assert client.get(f"/provider/records/observation/{a['observation'].pk}/").status_code == 200
    event = Event.objects.filter(kind="record.read").latest("id")
    resource = selectors.fhir_audit_event(event=event)
    AuditEvent.model_validate(resource)
    assert resource["agent"][0]["who"]["identifier"]["value"] == str(a["clinician"].pk)
    assert resource["agent"][0]["requestor"] is True
    # Read at St Mary's, from St Mary's: the source (the reader's side) and the custodian
    # (the chart's hospital) both name it.
    mary = {"reference": "Organization/st-mary", "display": "St Mary's Hospital"}
    assert resource["source"] == {"site": "St Mary's Hospital", "observer": mary}
    custodian = resource["agent"][1]
    assert custodian["type"]["coding"][0]["code"] == "CST"
    assert custodian["who"] == mary and custodian["requestor"] is False
    assert resource["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert {e["what"]["reference"] for e in resource["entity"]} == {
        f"Patient/{a['patient'].pk}", f"Observation/{a['observation'].pk}"
    }  # fmt: skip


def test_provenance_carries_the_ledger_receipt(chart):
    a = chart["a"]
    with unscoped():
        pending = selectors.fhir_record_provenance(record=a["observation"])
    Provenance.model_validate(pending)
    assert "signature" not in pending  # not anchored yet: no receipt to carry
    ledger_anchor_pending()
    with unscoped():
        resource = selectors.fhir_record_provenance(record=a["observation"])
    Provenance.model_validate(resource)
    assert resource["target"] == [{"reference": f"Observation/{a['observation'].pk}"}]
    receipt = json.loads(base64.b64decode(resource["signature"][0]["data"]))
    event = Event.objects.get(event_id=resource["id"])
    assert event.kind == "observation.created"
    assert receipt["entry"]["event_id"] == str(event.event_id)
    assert receipt["checkpoint"] and receipt["inclusion_proof"] is not None


def test_validate_resource_reports_what_is_wrong():
    with pytest.raises(resources.FhirValidationError, match="unknown resourceType"):
        resources.validate_resource({"resourceType": "Nonsense"})
    with pytest.raises(resources.FhirValidationError, match="birthDate"):
        resources.validate_resource({"resourceType": "Patient", "birthDate": "yesterday"})
