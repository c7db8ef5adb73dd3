"""Import of FHIR Bundles: Synthea round trip, idempotence, skipped types, bad bundles."""

import copy
import json
import time
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import partial

import pytest
from django.utils.dateparse import parse_datetime
from fhir.resources.R4B.bundle import Bundle

from ledger.models import Event
from portal.fhir import selectors
from portal.fhir.models import ImportIdentity, import_source_token
from portal.fhir.services import BundleImportError, fhir_bundle_import
from portal.records import access as records_access
from portal.records import observations
from portal.records.models import RECORD_MODELS, Observation, Patient
from portal.tenancy.scoping import hospital_scope, unscoped
from tests.fhir.conftest import SYNTHEA_DIR
from tests.fhir.observations import assert_same_observation

SYNTHEA_FILES = sorted(SYNTHEA_DIR.glob("*.json"))


def _rows() -> dict[str, int]:
    with unscoped():
        counts = {m.__name__: m.objects.count() for m in (Patient, *RECORD_MODELS)}
    counts["Event"] = Event.objects.count()
    counts["ImportIdentity"] = ImportIdentity._base_manager.count()
    return counts


def _instant(value: str) -> datetime:
    parsed = parse_datetime(value)
    assert parsed is not None, value
    return parsed


def _q(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN)


def _check_round_trip(source: dict, exported: dict, identities: dict, hospital) -> int:
    """Every imported resource of the source is in `exported` with the same codes, values
    and dates. Returns how many were checked. `identities` are keyed by the stored tokens."""
    token = partial(import_source_token, hospital_id=hospital.pk)
    by_id = {(e["resource"]["resourceType"], e["resource"]["id"]): e["resource"]
             for e in exported["entry"]}  # fmt: skip
    checked = 0
    for entry in source["entry"]:
        src = entry["resource"]
        rtype = src["resourceType"]
        for part, target_id in identities.get((rtype, token(value=src["id"])), []):
            prefix = "doc-" if rtype == "DocumentReference" else ""
            out = by_id.get((rtype, f"{prefix}{target_id}"))
            assert out is not None, f"{rtype}/{src['id']} ({part}) missing from $everything"
            checked += 1
            if rtype == "Patient":
                assert out["birthDate"] == src["birthDate"]
                assert out["gender"] == src["gender"]
                continue
            if rtype == "Observation":
                assert not part  # one Observation, one row, components and all
                assert_same_observation(src, out)
            elif rtype == "Encounter":
                assert out["class"]["code"] == src["class"]["code"]
                assert _instant(out["period"]["start"]) == _instant(src["period"]["start"])
                assert out["type"][0]["coding"][0]["code"] == src["type"][0]["coding"][0]["code"]
            elif rtype == "Condition":
                assert out["code"]["coding"][0]["code"] == src["code"]["coding"][0]["code"]
                assert out["onsetDateTime"] == src["onsetDateTime"][:10]
            elif rtype == "MedicationRequest":
                src_code = src["medicationCodeableConcept"]["coding"][0]["code"]
                assert out["medicationCodeableConcept"]["coding"][0]["code"] == src_code
                assert _instant(out["authoredOn"]) == _instant(src["authoredOn"])
                assert out["status"] == src["status"]
            elif rtype == "AllergyIntolerance":
                assert out["code"]["coding"][0]["code"] == src["code"]["coding"][0]["code"]
                assert _instant(out["recordedDate"]) == _instant(src["recordedDate"])
            elif rtype == "Immunization":
                src_code = src["vaccineCode"]["coding"][0]["code"]
                assert out["vaccineCode"]["coding"][0]["code"] == src_code
                assert _instant(out["occurrenceDateTime"]) == _instant(src["occurrenceDateTime"])
            elif rtype == "Procedure":
                assert out["code"]["coding"][0]["code"] == src["code"]["coding"][0]["code"]
                performed = src.get("performedDateTime") or src["performedPeriod"]["start"]
                assert _instant(out["performedDateTime"]) == _instant(performed)
    return checked


def test_every_synthea_bundle_imports_and_round_trips(hospital_a, clinician_a):
    started = time.monotonic()
    assert SYNTHEA_FILES, f"no Synthea fixtures in {SYNTHEA_DIR} (see its README)"
    files = SYNTHEA_FILES  # all 24: about 10 s on SQLite
    total_checked = 0
    for path in files:
        source = json.loads(path.read_text())
        report = fhir_bundle_import(hospital=hospital_a, bundle=source, actor=clinician_a)
        # Nothing silently dropped: every entry is created, skipped by type, or skipped with
        # a reason.
        supported = sum(
            1 for e in source["entry"] if e["resource"]["resourceType"] not in report.skipped
        )
        handled = sum(report.created.values()) + sum(report.skipped_reasons.values())
        assert handled == supported, report.summary()
        assert sum(report.skipped.values()) + supported == len(source["entry"])
        assert report.skipped["Claim"] >= 1 and "Observation" in report.created
        assert len(report.patients) == 1
        identities: dict = {}
        with unscoped():
            for i in ImportIdentity.objects.filter(hospital=hospital_a):
                identities.setdefault((i.resource_type, i.source_token), []).append(
                    (i.part_token, i.target_id)
                )
        with hospital_scope(hospital_a):
            opened = records_access.access_patient(clinician_a, report.patients[0])
            exported = selectors.fhir_patient_everything(chart=opened)
        Bundle.model_validate(exported)
        checked = _check_round_trip(source, exported, identities, hospital_a)
        assert checked == sum(report.created.values()), path.name
        total_checked += checked
    assert total_checked > 100
    print(f"imported {len(files)} bundles, {total_checked} rows, {time.monotonic() - started:.1f}s")


def test_reimport_creates_no_duplicates(hospital_a, clinician_a):
    source = json.loads(SYNTHEA_FILES[0].read_text())
    events = Event.objects.count()
    first = fhir_bundle_import(hospital=hospital_a, bundle=source, actor=clinician_a)
    # Every row is ledgered: one event per patient registered and per record created.
    written = Event.objects.filter(id__gt=0).order_by("id")[events:]
    kinds = [e.kind for e in written if e.kind != "grant.added"]
    # ...and per permission row the registration writes (the hospital-wide grant).
    assert len(written) - len(kinds) == 2
    assert len(kinds) == sum(first.created.values())
    assert kinds.count("patient.registered") == 1
    assert all(k == "patient.registered" or k.endswith(".created") for k in kinds)
    before = _rows()
    again = fhir_bundle_import(hospital=hospital_a, bundle=source, actor=clinician_a)
    assert _rows() == before
    assert not again.created
    imported = {(i.resource_type, i.source_token) for i in ImportIdentity._base_manager.all()}
    assert sum(again.unchanged.values()) == len(imported)
    assert again.skipped == first.skipped and again.skipped_reasons == first.skipped_reasons
    assert again.patients == first.patients


def test_a_panel_stays_one_observation_with_its_components(hospital_a, clinician_a):
    bundle = _tiny_bundle()
    bundle["entry"].append(
        _entry(
            "Observation",
            "bp",
            {
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "vital-signs",
                            }
                        ]
                    }
                ],
                "code": {"coding": [{"system": "http://loinc.org", "code": "55284-4"}]},
                "subject": {"reference": "urn:uuid:pat-1"},
                "effectiveDateTime": "2020-01-02T03:04:05+00:00",
                "component": [
                    {
                        "code": {
                            "coding": [
                                {
                                    "system": "http://loinc.org",
                                    "code": "8480-6",
                                    "display": "Systolic",
                                }
                            ]
                        },
                        "valueQuantity": {
                            "value": 120.12345,
                            "unit": "mm[Hg]",
                            "system": "http://unitsofmeasure.org",
                            "code": "mm[Hg]",
                        },
                    },
                    {
                        "code": {
                            "coding": [
                                {
                                    "system": "http://loinc.org",
                                    "code": "8462-4",
                                    "display": "Diastolic",
                                }
                            ]
                        },
                        "valueQuantity": {
                            "value": 80,
                            "unit": "mm[Hg]",
                            "system": "http://unitsofmeasure.org",
                            "code": "mm[Hg]",
                        },
                    },
                ],
            },
        )
    )
    report = fhir_bundle_import(hospital=hospital_a, bundle=bundle, actor=clinician_a)
    assert report.created["Observation"] == 1
    with unscoped():
        (panel,) = Observation.objects.all()
    assert panel.code == "55284-4" and panel.value is None
    assert [c["valueQuantity"]["value"] for c in observations.components(panel)] == [120.12345, 80]
    # The trend charts still draw its two values, at the column's precision.
    numbers = [(code, value) for code, _, _, value in observations.component_numbers(panel)]
    assert numbers == [("8480-6", Decimal("120.123")), ("8462-4", Decimal("80"))]


def test_unmodelled_types_are_reported_and_every_observation_imported(hospital_a, clinician_a):
    bundle = _tiny_bundle()
    bundle["entry"] += [
        _entry("Observation", "survey", {
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}]}],  # noqa: E501
            "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]},
            "subject": {"reference": "urn:uuid:pat-1"},
            "effectiveDateTime": "2020-01-02T03:04:05+00:00",
            "valueCodeableConcept": {"text": "Never smoker"},
        }),
        _entry("Organization", "org", {"name": "Somewhere"}),
        _entry("Claim", "claim", {
            "status": "active", "use": "claim", "created": "2020-01-02",
            "type": {"text": "x"}, "patient": {"reference": "urn:uuid:pat-1"},
            "provider": {"display": "p"}, "priority": {"text": "normal"},
            "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "c"}}],
        }),
    ]  # fmt: skip
    report = fhir_bundle_import(hospital=hospital_a, bundle=bundle, actor=clinician_a)
    assert report.skipped == {"Organization": 1, "Claim": 1}
    assert not report.skipped_reasons
    assert report.created == {"Patient": 1, "Condition": 1, "Observation": 1}
    assert "Claim 1" in report.summary()


def _entry(rtype: str, rid: str, body: dict) -> dict:
    return {
        "fullUrl": f"urn:uuid:{rid}",
        "resource": {"resourceType": rtype, "id": rid, **body},
        "request": {"method": "POST", "url": rtype},
    }


def _tiny_bundle() -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _entry("Patient", "pat-1", {
                "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "value": "SYN-1"}],  # noqa: E501
                "name": [{"use": "official", "family": "Doe", "given": ["Jane"]}],
                "gender": "female", "birthDate": "1990-02-03",
            }),
            _entry("Condition", "cond-1", {
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003", "display": "Hypertension"}]},  # noqa: E501
                "subject": {"reference": "urn:uuid:pat-1"}, "onsetDateTime": "2010-01-01T00:00:00Z",
            }),
        ],
    }  # fmt: skip


def test_the_mrn_identifier_is_chosen_else_the_id(hospital_a, clinician_a):
    bundle = _tiny_bundle()
    report = fhir_bundle_import(hospital=hospital_a, bundle=bundle, actor=clinician_a)
    with unscoped():
        assert Patient.objects.get(pk=report.patients[0]).mrn == "SYN-1"
    other = _tiny_bundle()
    other["entry"][0]["resource"]["id"] = "pat-2"
    other["entry"][0]["fullUrl"] = "urn:uuid:pat-2"
    del other["entry"][0]["resource"]["identifier"]
    other["entry"][1]["resource"]["subject"]["reference"] = "Patient/pat-2"  # relative
    other["entry"][1]["resource"]["id"] = "cond-2"
    report = fhir_bundle_import(hospital=hospital_a, bundle=other, actor=clinician_a)
    with unscoped():
        assert Patient.objects.get(pk=report.patients[0]).mrn == "pat-2"
    assert report.created == {"Patient": 1, "Condition": 1}


def _broken_reference():
    bundle = _tiny_bundle()
    bundle["entry"][1]["resource"]["subject"]["reference"] = "urn:uuid:nobody"
    return bundle


def _invalid_resource():
    bundle = _tiny_bundle()
    bundle["entry"][0]["resource"]["birthDate"] = "the third of February"
    return bundle


def _valid_then_bad():
    bundle = _tiny_bundle()
    bad = copy.deepcopy(bundle["entry"][1])
    bad["resource"]["id"] = "cond-bad"
    bad["resource"]["encounter"] = {"reference": "urn:uuid:no-such-encounter"}
    bundle["entry"].append(bad)
    return bundle


def _anonymous():
    bundle = _tiny_bundle()
    del bundle["entry"][1]["fullUrl"], bundle["entry"][1]["resource"]["id"]
    return bundle


def _twice():
    bundle = _tiny_bundle()
    bundle["entry"].append(copy.deepcopy(bundle["entry"][1]))
    return bundle


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        ("not json", "not a JSON object"),
        ({"resourceType": "Patient"}, "expected 'Bundle'"),
        ({"resourceType": "Bundle", "type": "searchset"}, "Bundle.type"),
        (_broken_reference(), "does not resolve to a Patient"),
        (_invalid_resource(), "birthDate"),
        (_valid_then_bad(), "encounter reference"),
        (_twice(), "repeats entry 1"),
        (_anonymous(), "neither an id nor a fullUrl"),
    ],
)
def test_bad_bundles_write_nothing(hospital_a, clinician_a, bundle, message):
    before = _rows()
    with pytest.raises(BundleImportError, match=message) as caught:
        fhir_bundle_import(hospital=hospital_a, bundle=bundle, actor=clinician_a)
    assert caught.value.errors
    assert _rows() == before
