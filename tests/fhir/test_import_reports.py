"""Issue 17: DiagnosticReport, CarePlan, Goal and ImagingStudy are imported, encrypted,
ledgered and served: the round trip of every Synthea bundle per resource (codes, statuses,
times, result references to the right Observations, activities, targets, series), the
report's attached text, references that name nothing the portal holds, re-import."""

from __future__ import annotations

import base64
import copy
import json
from datetime import datetime
from functools import partial

import pytest
from django.db import connection
from django.utils.dateparse import parse_datetime
from fhir.resources.R4B.bundle import Bundle

from ledger.models import Event
from portal.fhir import selectors
from portal.fhir.models import ImportIdentity, import_source_token
from portal.fhir.resources import validate_resource
from portal.fhir.services import fhir_bundle_import
from portal.records import access as records_access
from portal.records.models import CarePlan, DiagnosticReport, Goal, ImagingStudy
from portal.tenancy.scoping import hospital_scope, unscoped
from tests.fhir.conftest import SYNTHEA_DIR

SYNTHEA_FILES = sorted(SYNTHEA_DIR.glob("*.json"))
NEW_TYPES = ("DiagnosticReport", "CarePlan", "Goal", "ImagingStudy")


def _instant(value: str) -> datetime:
    parsed = parse_datetime(value)
    assert parsed is not None, value
    return parsed


def _targets(hospital, rtype: str, reference: str) -> list[int]:
    """The portal ids the import mapping names for a bundle-internal reference."""
    source_id = reference.removeprefix("urn:uuid:").split("/")[-1]
    token = import_source_token(hospital_id=hospital.pk, value=source_id)
    with unscoped():
        return sorted(
            ImportIdentity.objects.filter(
                hospital=hospital, resource_type=rtype, source_token=token
            ).values_list("target_id", flat=True)
        )


def _expected_links(hospital, refs: list[dict], rtype: str) -> list[dict]:
    out = []
    for ref in refs:
        ids = _targets(hospital, rtype, ref["reference"])
        if ids:
            out += [{"reference": f"{rtype}/{pk}", **({"display": ref["display"]}
                     if ref.get("display") else {})} for pk in ids]  # fmt: skip
        elif ref.get("display"):
            out.append({"display": ref["display"]})
    return out


def _check(hospital, src: dict, out: dict) -> None:
    """One source resource against what the portal serves for it."""
    rtype = src["resourceType"]
    validate_resource(out)
    if rtype == "DiagnosticReport":
        assert out["status"] == src["status"]
        assert out["code"] == src["code"]
        assert out["category"] == src["category"]
        assert _instant(out["effectiveDateTime"]) == _instant(src["effectiveDateTime"])
        assert _instant(out["issued"]) == _instant(src["issued"])
        assert out.get("result", []) == _expected_links(hospital, src.get("result", []),
                                                        "Observation")  # fmt: skip
        assert out.get("presentedForm") == src.get("presentedForm")
        assert out["encounter"]["reference"].startswith("Encounter/")
    elif rtype == "CarePlan":
        assert (out["status"], out["intent"]) == (src["status"], src["intent"])
        assert out["category"] == src["category"]
        assert _instant(out["period"]["start"]) == _instant(src["period"]["start"])
        if "end" in src["period"]:
            assert _instant(out["period"]["end"]) == _instant(src["period"]["end"])
        for got, sent in zip(out["activity"], src["activity"], strict=True):
            assert got["detail"]["code"] == sent["detail"]["code"]
            assert got["detail"]["status"] == sent["detail"]["status"]
            if "location" in sent["detail"]:
                assert got["detail"]["location"] == {
                    "display": sent["detail"]["location"]["display"]
                }
        assert out.get("addresses", []) == _expected_links(
            hospital, src.get("addresses", []), "Condition"
        )
        assert out.get("goal", []) == _expected_links(hospital, src.get("goal", []), "Goal")
    elif rtype == "Goal":
        assert out["lifecycleStatus"] == src["lifecycleStatus"]
        assert out.get("achievementStatus") == src.get("achievementStatus")
        assert out["description"] == src["description"]
        assert out.get("target") == src.get("target")
        assert out.get("addresses", []) == _expected_links(
            hospital, src.get("addresses", []), "Condition"
        )
    elif rtype == "ImagingStudy":
        assert out["status"] == src["status"]
        assert _instant(out["started"]) == _instant(src["started"])
        assert out["identifier"] == src["identifier"]
        assert out["numberOfSeries"] == src["numberOfSeries"]
        assert out["numberOfInstances"] == src["numberOfInstances"]
        assert out["series"] == src["series"]  # uid, bodySite, modality, instances, numbers


def test_every_synthea_report_plan_goal_and_study_round_trips(hospital_a, clinician_a):
    assert SYNTHEA_FILES, f"no Synthea fixtures in {SYNTHEA_DIR} (see its README)"
    checked = dict.fromkeys(NEW_TYPES, 0)
    for path in SYNTHEA_FILES:
        source = json.loads(path.read_text())
        report = fhir_bundle_import(hospital=hospital_a, bundle=source, actor=clinician_a)
        for rtype in NEW_TYPES:
            assert rtype not in report.skipped, report.summary()
            assert not any(t == rtype for t, _ in report.skipped_reasons), report.summary()
        with hospital_scope(hospital_a):
            opened = records_access.access_patient(clinician_a, report.patients[0])
            exported = selectors.fhir_patient_everything(chart=opened)
        Bundle.model_validate(exported)
        served = {(e["resource"]["resourceType"], e["resource"]["id"]): e["resource"]
                  for e in exported["entry"]}  # fmt: skip
        for entry in source["entry"]:
            src = entry["resource"]
            if src["resourceType"] not in NEW_TYPES:
                continue
            (target,) = _targets(hospital_a, src["resourceType"], src["id"])
            out = served[(src["resourceType"], str(target))]
            _check(hospital_a, src, out)
            checked[src["resourceType"]] += 1
    # Every one of the fixtures' (80 reports, 27 plans, 15 goals, 4 studies).
    assert checked == {"DiagnosticReport": 80, "CarePlan": 27, "Goal": 15, "ImagingStudy": 4}


def test_results_point_at_the_observations_the_mapping_names(hospital_a, clinician_a):
    source = json.loads(SYNTHEA_FILES[0].read_text())
    fhir_bundle_import(hospital=hospital_a, bundle=source, actor=clinician_a)
    with unscoped():
        reports = list(DiagnosticReport.objects.filter(hospital=hospital_a))
    assert reports
    linked = 0
    for row in reports:
        for link in row.results:
            if "observation" in link:
                with unscoped():
                    from portal.records.models import Observation

                    obs = Observation.objects.get(pk=link["observation"])
                assert obs.patient_id == row.patient_id
                linked += 1
    assert linked > 0


def _bundle_with_everything() -> dict:
    """A bundle as newer Synthea writes it: a note report with base64 text/plain."""
    note = "Patient is doing well.\nBlood pressure controlled."
    return {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            _entry("Patient", "p1", {
                "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "value": "RPT-1"}],  # noqa: E501
                "name": [{"use": "official", "family": "Report", "given": ["Rita"]}],
                "gender": "female", "birthDate": "1960-02-03",
            }),
            _entry("Encounter", "e1", {
                "status": "finished", "class": {"code": "AMB"},
                "subject": {"reference": "urn:uuid:p1"},
                "period": {"start": "2020-01-01T10:00:00+00:00",
                           "end": "2020-01-01T10:30:00+00:00"},
            }),
            _entry("Condition", "c1", {
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes"}]},  # noqa: E501
                "subject": {"reference": "urn:uuid:p1"}, "onsetDateTime": "2015-01-01T00:00:00Z",
            }),
            _entry("Observation", "o1", {
                "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],  # noqa: E501
                "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4", "display": "Hemoglobin A1c"}]},  # noqa: E501
                "subject": {"reference": "urn:uuid:p1"}, "encounter": {"reference": "urn:uuid:e1"},
                "effectiveDateTime": "2020-01-01T10:05:00+00:00",
                "valueQuantity": {"value": 6.4, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},  # noqa: E501
            }),
            _entry("DiagnosticReport", "r1", {
                "status": "final",
                "category": [{"coding": [{"system": "http://loinc.org", "code": "34117-2", "display": "History and physical note"}]}],  # noqa: E501
                "code": {"coding": [{"system": "http://loinc.org", "code": "34117-2", "display": "History and physical note"}]},  # noqa: E501
                "subject": {"reference": "urn:uuid:p1"}, "encounter": {"reference": "urn:uuid:e1"},
                "effectiveDateTime": "2020-01-01T10:00:00+00:00", "issued": "2020-01-01T10:00:00.123+00:00",  # noqa: E501
                "result": [{"reference": "urn:uuid:o1", "display": "Hemoglobin A1c"},
                           {"reference": "urn:uuid:not-here", "display": "Glucose"},
                           {"reference": "urn:uuid:gone"}],
                "presentedForm": [{"contentType": "text/plain; charset=utf-8",
                                   "data": base64.b64encode(note.encode()).decode()}],
                "conclusion": "Stable.",
            }),
            _entry("Goal", "g1", {
                "lifecycleStatus": "active",
                "achievementStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/goal-achievement", "code": "in-progress"}]},  # noqa: E501
                "description": {"text": "Hemoglobin A1c total in Blood < 7.0"},
                "subject": {"reference": "urn:uuid:p1"},
                "target": [{"measure": {"coding": [{"system": "http://loinc.org",
                                                    "code": "4548-4"}]},
                            "detailQuantity": {"value": 7.0, "comparator": "<", "unit": "%"},
                            "dueDate": "2021-01-01"}],
                "addresses": [{"reference": "urn:uuid:c1"}],
            }),
            _entry("CarePlan", "cp1", {
                "status": "active", "intent": "order",
                "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "698360004", "display": "Diabetes self management plan"}], "text": "Diabetes self management plan"}],  # noqa: E501
                "subject": {"reference": "urn:uuid:p1"}, "encounter": {"reference": "urn:uuid:e1"},
                "period": {"start": "2020-01-01T10:00:00+00:00"},
                "addresses": [{"reference": "urn:uuid:c1"}],
                "goal": [{"reference": "urn:uuid:g1"}],
                "activity": [{"detail": {
                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "160670007", "display": "Diabetic diet"}], "text": "Diabetic diet"},  # noqa: E501
                    "status": "in-progress",
                    "location": {"reference": "urn:uuid:loc-1", "display": "CLINIC A"},
                }}],
            }),
            _entry("ImagingStudy", "i1", {
                "status": "available", "subject": {"reference": "urn:uuid:p1"},
                "started": "2020-01-01T10:10:00+00:00", "numberOfSeries": 1, "numberOfInstances": 1,
                "series": [{"uid": "1.2.3", "number": 1,
                            "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "DX", "display": "Digital Radiography"},  # noqa: E501
                            "bodySite": {"system": "http://snomed.info/sct", "code": "51299004", "display": "Clavicle"},  # noqa: E501
                            "instance": [{"uid": "1.2.3.4", "number": 1, "sopClass": {"system": "urn:ietf:rfc:3986", "code": "1.2.840.10008.5.1.4.1.1.1.1"}}]}],  # noqa: E501
            }),
            _entry("Claim", "cl1", {"status": "active"}),
        ],
    }  # fmt: skip


def _entry(rtype: str, rid: str, body: dict) -> dict:
    return {
        "fullUrl": f"urn:uuid:{rid}",
        "resource": {"resourceType": rtype, "id": rid, **body},
        "request": {"method": "POST", "url": rtype},
    }


@pytest.fixture
def imported(hospital_a, clinician_a):
    report = fhir_bundle_import(
        hospital=hospital_a, bundle=_bundle_with_everything(), actor=clinician_a
    )
    return report


def test_report_text_results_and_unresolved_references(imported, hospital_a, clinician_a):
    assert imported.created["DiagnosticReport"] == 1
    assert imported.skipped["Claim"] == 1  # not clinical: skipped by type, as before
    # Two results name nothing imported: one kept as its display text, one dropped; said so.
    summary = imported.summary()
    assert "kept as its display text" in summary and "dropped (no display text)" in summary
    with unscoped():
        row = DiagnosticReport.objects.get(hospital=hospital_a)
    assert row.text == "Patient is doing well.\nBlood pressure controlled."
    (obs_id,) = _targets(hospital_a, "Observation", "o1")
    with hospital_scope(hospital_a):
        opened = records_access.access_patient(clinician_a, imported.patients[0])
        served = selectors.fhir_records_for_patient(chart=opened, resource_type="DiagnosticReport")
    (out,) = served
    validate_resource(out)
    assert out["result"] == [
        {"reference": f"Observation/{obs_id}", "display": "Hemoglobin A1c"},
        {"display": "Glucose"},
    ]
    assert base64.b64decode(out["presentedForm"][0]["data"]).decode().startswith("Patient is")
    assert out["conclusion"] == "Stable."


def test_plan_goal_and_study_link_to_what_they_name(imported, hospital_a, clinician_a):
    (cond_id,) = _targets(hospital_a, "Condition", "c1")
    (goal_id,) = _targets(hospital_a, "Goal", "g1")
    with hospital_scope(hospital_a):
        opened = records_access.access_patient(clinician_a, imported.patients[0])
        bundle = selectors.fhir_patient_everything(chart=opened)
    Bundle.model_validate(bundle)
    by_type = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    plan = by_type["CarePlan"]
    assert plan["addresses"] == [{"reference": f"Condition/{cond_id}"}]
    assert plan["goal"] == [{"reference": f"Goal/{goal_id}"}]
    # The location is a resource the portal does not hold: its display text only.
    assert plan["activity"][0]["detail"]["location"] == {"display": "CLINIC A"}
    goal = by_type["Goal"]
    assert goal["addresses"] == [{"reference": f"Condition/{cond_id}"}]
    assert goal["target"][0]["detailQuantity"]["comparator"] == "<"
    assert by_type["ImagingStudy"]["series"][0]["bodySite"]["display"] == "Clavicle"


def test_everything_is_encrypted_at_rest_and_ledgered(imported, hospital_a):
    with connection.cursor() as cursor:
        for table, column in (("records_diagnosticreport", "presented_form"),
                              ("records_diagnosticreport", "code"),
                              ("records_careplan", "activities"), ("records_goal", "description"),
                              ("records_imagingstudy", "series")):  # fmt: skip
            cursor.execute(f"SELECT {column} FROM {table}")
            (blob,) = cursor.fetchone()
            raw = bytes(blob)
            for secret in (b"Hemoglobin", b"Patient is doing", b"Diabetic", b"Clavicle",
                           b"34117-2", base64.b64encode(b"Patient is doing")[:12]):  # fmt: skip
                assert secret not in raw, (table, column)
    with unscoped():
        for model in (DiagnosticReport, CarePlan, Goal, ImagingStudy):
            row = model.objects.get(hospital=hospital_a)
            kind = f"{model._meta.model_name}.created"
            assert Event.objects.filter(kind=kind, subject_id=str(row.row_uuid)).count() == 1


def test_reimport_creates_nothing_twice(imported, hospital_a, clinician_a):
    with unscoped():
        before = {m: m.objects.count() for m in (DiagnosticReport, CarePlan, Goal, ImagingStudy)}
    events = Event.objects.count()
    again = fhir_bundle_import(
        hospital=hospital_a, bundle=_bundle_with_everything(), actor=clinician_a
    )
    assert not again.created
    assert all(again.unchanged[t] == 1 for t in NEW_TYPES)
    with unscoped():
        assert {m: m.objects.count() for m in before} == before
    assert Event.objects.count() == events


def test_a_report_naming_another_patients_observation_keeps_only_its_text(
    imported, hospital_a, clinician_a
):
    """A later bundle of a second patient whose report names the first one's observation:
    the import mapping finds the row, but not on this chart; the link is not made."""
    bundle = copy.deepcopy(_bundle_with_everything())
    keep = []
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "Patient":
            res["id"] = "p2"
            entry["fullUrl"] = "urn:uuid:p2"
            res["identifier"][0]["value"] = "RPT-2"
        elif res["resourceType"] == "DiagnosticReport":
            res["id"] = "r2"
            entry["fullUrl"] = "urn:uuid:r2"
            res["subject"] = {"reference": "urn:uuid:p2"}
            res.pop("encounter")
            res["result"] = [{"reference": "Observation/o1", "display": "Hemoglobin A1c"}]
        else:
            continue
        keep.append(entry)
    bundle["entry"] = keep
    report = fhir_bundle_import(hospital=hospital_a, bundle=bundle, actor=clinician_a)
    assert report.created["DiagnosticReport"] == 1
    with unscoped():
        row = DiagnosticReport.objects.get(patient_id=report.patients[0])
    assert row.results == [{"display": "Hemoglobin A1c"}]


def test_a_bad_reference_is_reported_never_a_500(hospital_a, clinician_a):
    bundle = _bundle_with_everything()
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "CarePlan":
            entry["resource"]["addresses"] = [{"reference": "Condition/nowhere"},
                                              {"identifier": {"value": "x"}}]  # fmt: skip
            entry["resource"]["goal"] = [{"reference": "urn:uuid:c1", "display": "a condition"}]
    report = fhir_bundle_import(hospital=hospital_a, bundle=bundle, actor=clinician_a)
    assert report.created["CarePlan"] == 1
    with unscoped():
        plan = CarePlan.objects.get(hospital=hospital_a)
    assert plan.addresses == []
    assert plan.goals == [{"display": "a condition"}]  # a Condition is not a Goal


def test_tokens_bind_sources_to_the_hospital(hospital_a, hospital_b):
    token = partial(import_source_token, value="r1")
    assert token(hospital_id=hospital_a.pk) != token(hospital_id=hospital_b.pk)


def test_the_ledger_verifies_the_imported_rows(imported, hospital_a):
    """Every imported row digests as its creation event said (nested JSON canonical, sorted
    keys): verify_ledger finds nothing, once the events are anchored; a report altered behind
    the application's back is named."""
    from ledger import anchoring
    from ledger.verification import ledger_verify

    anchoring.ledger_anchor_pending(batch_size=1000)
    report = ledger_verify()
    assert report.findings == [], report.findings
    with unscoped():
        row = DiagnosticReport.objects.get(hospital=hospital_a)
        row.conclusion = "Altered."
        row.save()  # a write behind the services' back: no event
    assert any("diagnosticreport" in str(f).lower() for f in ledger_verify().findings)
