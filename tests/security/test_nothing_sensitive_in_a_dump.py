"""Issue 13, item 6: nothing sensitive in clear in a database dump.

A clinician writes conditions, medications, allergies (a criticality, free text typed into
the display and reaction) and encounters (with types) through the provider forms, and more
of them through a FHIR import; then the database is dumped (pg_dump on PostgreSQL). Neither
the free text nor the displays, codes, criticalities, encounter classes and types, units or
clinical statuses appear in it in clear, and the pages still show every one of them.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from portal.records import services
from portal.records.models import Encounter, Observation, Patient
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests.records.test_dump import cell_in, database_dump, table_rows

# Free text typed into display and reaction fields: unique strings, found only if in clear.
MARK = "Zyqwort"
FORMS = {
    "condition": {
        "code": "ZQ-COND-77", "display": f"{MARK} HIV infection, typed in",
        "clinical_status": "remission", "onset_date": "2019-04-01",
    },
    "medicationrequest": {
        "code": "ZQ-MED-77", "display": f"{MARK} Truvada 200 MG as typed",
        "dosage": "one daily", "request_status": "active", "authored_on": "2024-01-02T09:00",
    },
    "allergyintolerance": {
        "code": "ZQ-ALG-77", "display": f"{MARK} peanut allergy, typed in",
        "criticality": "high", "reaction": f"{MARK} anaphylaxis in 2019",
        "recorded_date": "2023-05-05T10:00",
    },
    "encounter": {
        "class_code": "EMER", "type_display": f"{MARK} psychiatric emergency visit",
        "reason": "crisis", "period_start": "2024-02-02T10:00",
    },
}  # fmt: skip


def _coding(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def _entry(rtype: str, rid: str, body: dict) -> dict:
    return {
        "fullUrl": f"urn:uuid:{rid}",
        "resource": {"resourceType": rtype, "id": rid, **body},
        "request": {"method": "POST", "url": rtype},
    }


SNOMED, RXNORM, LOINC = (
    "http://snomed.info/sct",
    "http://www.nlm.nih.gov/research/umls/rxnorm",
    ("http://loinc.org"),
)
IMPORTED = {
    "condition": ("ZQ-SCT-4711", f"{MARK} Major depressive disorder (imported)"),
    "medication": ("ZQ-RX-4711", f"{MARK} Sertraline 50 MG (imported)"),
    "allergy": ("ZQ-SCT-4712", f"{MARK} Latex allergy (imported)"),
    "encounter": ("ZQ-SCT-4713", f"{MARK} Detoxification admission (imported)"),
    "observation": ("ZQ-LN-4711", f"{MARK} HIV 1 RNA viral load (imported)", "copies/mL"),
}


# Senders' resource ids are often their own identifiers (an MRN, an accession number): the
# importer keeps them only as keyed tokens (fhir.models.import_source_token).
SOURCE_IDS = {"patient": "ZQPAT-338177", "condition": "ZQACC-552190"}


def _bundle(patient_mrn: str) -> dict:
    subject = {"reference": f"urn:uuid:{SOURCE_IDS['patient']}"}
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _entry("Patient", SOURCE_IDS["patient"], {
                "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "value": patient_mrn}],  # noqa: E501
                "name": [{"use": "official", "family": "Imported", "given": ["Iris"]}],
                "gender": "female", "birthDate": "1984-02-03",
            }),
            _entry("Encounter", "enc-1", {
                "status": "finished", "subject": subject,
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},  # noqa: E501
                "type": [_coding(SNOMED, *IMPORTED["encounter"])],
                "period": {"start": "2023-03-01T08:00:00Z", "end": "2023-03-09T08:00:00Z"},
            }),
            _entry("Condition", SOURCE_IDS["condition"], {
                "code": _coding(SNOMED, *IMPORTED["condition"]), "subject": subject,
                "clinicalStatus": _coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "relapse", "Relapse"),  # noqa: E501
                "onsetDateTime": "2015-01-01T00:00:00Z",
            }),
            _entry("MedicationRequest", "med-1", {
                "status": "active", "intent": "order", "subject": subject,
                "medicationCodeableConcept": _coding(RXNORM, *IMPORTED["medication"]),
                "authoredOn": "2023-03-02T09:00:00Z",
            }),
            _entry("AllergyIntolerance", "alg-1", {
                "patient": subject, "criticality": "unable-to-assess",
                "code": _coding(SNOMED, *IMPORTED["allergy"]),
                "recordedDate": "2022-01-01T00:00:00Z",
            }),
            _entry("Observation", "obs-1", {
                "status": "final", "subject": subject,
                "category": [_coding("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")],  # noqa: E501
                "code": _coding(LOINC, *IMPORTED["observation"][:2]),
                "effectiveDateTime": "2023-03-03T09:00:00Z",
                "valueQuantity": {"value": 41000, "unit": IMPORTED["observation"][2]},
            }),
        ],
    }  # fmt: skip


@pytest.fixture
def written(transactional_db, client, sign_in, make_staff, hospital_a, hospital_b):
    """What a clinician wrote over HTTP (forms and a FHIR import), committed."""
    clinician = make_staff(hospital_a, Role.CLINICIAN)
    with unscoped():
        patient = services.patient_register(
            hospital=hospital_a, mrn="DUMP-001", given_name="Dana", family_name="Dumpling",
            birth_date=dt.date(1979, 5, 6), actor=clinician,
        )  # fmt: skip
    sign_in(client, clinician)
    for record_type, data in FORMS.items():
        url = f"/provider/patients/{patient.pk}/records/{record_type}/new/"
        response = client.post(url, data)
        assert response.status_code == 302, response.content.decode()[:2000]
    response = client.post(
        "/fhir/R4/", json.dumps(_bundle("DUMP-002")), content_type="application/fhir+json"
    )
    assert response.status_code == 200, response.content.decode()[:2000]
    with unscoped():
        imported = Patient._base_manager.exclude(pk=patient.pk).filter(hospital=hospital_a).get()
    return {"client": client, "patient": patient, "imported": imported}


def test_a_dump_holds_no_clinical_text_code_or_criticality_in_clear(written):
    dump = database_dump()
    assert "DUMP-001" not in dump  # (MRNs were encrypted before: the dump is a real one)

    # Free text and displays, wherever they might have gone.
    assert MARK not in dump
    texts = [d["display"] for d in FORMS.values() if "display" in d]
    texts += [FORMS["encounter"]["type_display"], FORMS["allergyintolerance"]["reaction"]]
    texts += [v[1] for v in IMPORTED.values()]
    assert [t for t in texts if t in dump] == []
    # Codes are as telling as displays.
    codes = [d["code"] for d in FORMS.values() if "code" in d] + [v[0] for v in IMPORTED.values()]
    assert [c for c in codes if c in dump] == []
    # So are the senders' own ids of what was imported.
    assert [i for i in SOURCE_IDS.values() if i in dump] == []

    # Short coded values, as whole cells of their tables.
    clear = {
        "records_allergyintolerance": ["high", "unable-to-assess"],
        "records_encounter": ["EMER", "IMP", "AMB"],
        "records_condition": ["remission", "relapse"],
        "records_observation": ["copies/mL"],
    }
    found = {
        table: [value for value in values if cell_in(table_rows(dump, table), value)]
        for table, values in clear.items()
    }
    assert found == {table: [] for table in clear}
    # The tables are in the dump (so the checks above looked at their rows).
    assert all(table_rows(dump, table) for table in clear)


def test_the_pages_still_show_every_value(written):
    client, patient, imported = written["client"], written["patient"], written["imported"]
    chart = client.get(f"/provider/patients/{patient.pk}/").content.decode()
    for record_type in ("condition", "medicationrequest", "allergyintolerance"):
        assert FORMS[record_type]["display"] in chart
    allergy = FORMS["allergyintolerance"]["display"]
    assert f'{allergy}</a> <span class="muted">high</span>' in chart  # with its criticality
    with unscoped():
        encounter = Encounter.objects.get(patient=patient)
    page = client.get(f"/provider/records/encounter/{encounter.pk}/").content.decode()
    assert FORMS["encounter"]["type_display"] in page and "EMER" in page

    other = client.get(f"/provider/patients/{imported.pk}/").content.decode()
    for key in ("condition", "medication", "allergy"):
        assert IMPORTED[key][1] in other
    assert IMPORTED["observation"][1] in other and "copies/mL" in other  # the trend chart
    assert f'data-code="{IMPORTED["observation"][0]}"' in other

    def fhir(path: str) -> dict:
        response = client.get(f"/fhir/R4/{path}")
        assert response.status_code == 200
        return response.json()

    conditions = fhir(f"Condition?patient={imported.pk}")["entry"]
    (condition,) = [e["resource"] for e in conditions]
    assert condition["code"]["coding"][0]["code"] == IMPORTED["condition"][0]
    assert condition["clinicalStatus"]["coding"][0]["code"] == "relapse"
    (allergy,) = [e["resource"] for e in fhir(f"AllergyIntolerance?patient={imported.pk}")["entry"]]
    assert allergy["criticality"] == "unable-to-assess"
    (enc,) = [e["resource"] for e in fhir(f"Encounter?patient={imported.pk}")["entry"]]
    assert enc["class"]["code"] == "IMP"
    assert enc["type"][0]["coding"][0]["code"] == IMPORTED["encounter"][0]
    # FHIR's code search still finds the observation by its (encrypted) code.
    code = IMPORTED["observation"][0]
    found = fhir(f"Observation?patient={imported.pk}&code={code}")
    assert [e["resource"]["code"]["coding"][0]["code"] for e in found["entry"]] == [code]
    assert fhir(f"Observation?patient={imported.pk}&code=8867-4").get("entry", []) == []
    with unscoped():
        assert Observation.objects.get(patient=imported).unit == "copies/mL"
