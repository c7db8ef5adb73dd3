"""Every Observation round trips (issue 17, item 1): whatever its value type, category and
components, it comes back through `$everything` and a read as it was given; bad ones are
refused with nothing written; another hospital's staff cannot read them."""

import copy
import json
from decimal import Decimal

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation as FhirObservation

from ledger.verification import ledger_verify
from portal.fhir import selectors
from portal.fhir.resources import observation_to_fhir
from portal.fhir.services import BundleImportError, fhir_bundle_import
from portal.records import access as records_access
from portal.records import observations
from portal.records.chart import chart_for, records_by_category
from portal.records.models import Observation
from portal.tenancy.scoping import hospital_scope, unscoped
from tests.fhir.observations import assert_same_observation, match_observations
from tests.fhir.test_import import SYNTHEA_FILES, _entry, _rows, _tiny_bundle

BASE = "/fhir/R4/"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM = "http://unitsofmeasure.org"


def _category(code: str) -> list:
    return [{"coding": [{"system": CATEGORY, "code": code, "display": code.title()}]}]


def _observation(rid: str, **body) -> dict:
    resource = {
        "status": "final",
        "category": _category("survey"),
        "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2",
                             "display": "Tobacco smoking status"}],
                 "text": "Tobacco smoking status"},
        "subject": {"reference": "urn:uuid:pat-1"},
        "effectiveDateTime": "2020-01-02T03:04:05-05:00",
        "issued": "2020-01-02T03:04:05.123-05:00",
    }  # fmt: skip
    resource.update(body)
    return _entry("Observation", rid, resource)


def _code(code: str, display: str) -> dict:
    return {"coding": [{"system": "http://loinc.org", "code": code, "display": display}],
            "text": display}  # fmt: skip


def _quantity(value, unit="mmol/L", **extra) -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit, **extra}


# One of each value type and of the other shapes an Observation comes in.
HAND_MADE = {
    "concept": {"valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct",
                "code": "266919005", "display": "Never smoker"}], "text": "Never smoker"}},
    "string": {"valueString": "Lives alone; walks daily"},
    "boolean": {"valueBoolean": False},
    "integer": {"valueInteger": 3, "category": _category("survey")},
    "range": {"valueRange": {"low": _quantity(2), "high": _quantity(5.5)}},
    "ratio": {"valueRatio": {"numerator": _quantity(1, "1"), "denominator": _quantity(128, "1")}},
    "period": {"valuePeriod": {"start": "2019-05-01", "end": "2019-06-01T10:00:00Z"}},
    "time": {"valueTime": "07:30:00"},
    "datetime": {"valueDateTime": "2018-03"},
    "absent": {"dataAbsentReason": {"coding": [{"system":
               "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "asked-declined",
               "display": "Asked But Declined"}]}},
    "precise": {"valueQuantity": _quantity(74.96478397, "kg"),
                "category": _category("vital-signs"), "code": _code("29463-7", "Body weight")},
    "comparator": {"valueQuantity": _quantity(5, comparator="<"),
                   "category": _category("laboratory"), "code": _code("2339-0", "Glucose")},
    "own-unit": {"valueQuantity": {"value": 36.6, "unit": "degrees C", "system": UCUM,
                                   "code": "Cel"},
                 "code": _code("8310-5", "Body temperature")},
    "no-category": {"valueString": "seen", "category": None},
    "two-categories": {"valueString": "x", "category": _category("exam") + _category("imaging")},
    "odd-category": {"valueString": "y", "category": [{"coding": [{"system": "urn:local",
                     "code": "nursing"}]}]},
    "period-effective": {"valueString": "z", "effectiveDateTime": None,
                         "effectivePeriod": {"start": "2020-01-01T08:00:00Z",
                                             "end": "2020-01-01T09:30:00Z"}},
    "instant-effective": {"valueBoolean": True, "effectiveDateTime": None,
                          "effectiveInstant": "2020-01-02T03:04:05.250+01:00"},
    "date-effective": {"valueString": "a day", "effectiveDateTime": "2019-12-31"},
    "no-effective": {"valueString": "undated", "effectiveDateTime": None},
    "amended": {"valueString": "changed", "status": "amended"},
    "panel": {"code": {"coding": [{"system": "http://loinc.org", "code": "85354-9",
              "display": "Blood pressure panel"}], "text": "Blood pressure panel"},
              "category": _category("vital-signs"), "component": [
                  {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6",
                   "display": "Systolic blood pressure"}]},
                   "valueQuantity": _quantity(121.5, "mm[Hg]")},
                  {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4",
                   "display": "Diastolic blood pressure"}]},
                   "valueQuantity": _quantity(79, "mm[Hg]")}]},
    "survey-panel": {"component": [
        {"code": {"text": "Feeling down"}, "valueCodeableConcept": {"text": "Several days"}},
        {"code": {"text": "Score"}, "valueInteger": 2},
        {"code": {"text": "Unanswered"}, "dataAbsentReason": {"text": "asked, declined"}}]},
}  # fmt: skip


def _hand_made_bundle() -> dict:
    bundle = _tiny_bundle()
    for rid, body in HAND_MADE.items():
        entry = _observation(f"obs-{rid}", **body)
        resource = entry["resource"]
        for key in [k for k, v in resource.items() if v is None]:
            del resource[key]
        bundle["entry"].append(entry)
    return bundle


def _sources(bundle: dict) -> list[dict]:
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]


def _served(hospital, user, patient_id) -> list[dict]:
    with hospital_scope(hospital):
        opened = records_access.access_patient(user, patient_id)
        exported = selectors.fhir_patient_everything(chart=opened)
    Bundle.model_validate(exported)
    return [e["resource"] for e in exported["entry"]
            if e["resource"]["resourceType"] == "Observation"]  # fmt: skip


def test_every_synthea_observation_comes_back_as_given(hospital_a, clinician_a):
    """Every bundle: each source Observation is matched by code, time and value (and
    components) to exactly one served, and says the same; none is served twice."""
    assert SYNTHEA_FILES
    kinds: set[str] = set()
    for path in SYNTHEA_FILES:
        source = json.loads(path.read_text())
        report = fhir_bundle_import(hospital=hospital_a, bundle=source, actor=clinician_a)
        assert not [r for r in report.skipped_reasons if r[0] == "Observation"], path.name
        given = _sources(source)
        pairs = match_observations(given, _served(hospital_a, clinician_a, report.patients[0]))
        for src, out in pairs:
            assert_same_observation(src, out)
            kinds.update(k for k in src if k.startswith("value") or k == "component")
    # The fixtures hold the kinds that used to be lost.
    assert {"valueCodeableConcept", "valueString", "component"} <= kinds


def test_each_value_type_round_trips_and_validates(client, sign_in, hospital_a, clinician_a):
    bundle = _hand_made_bundle()
    report = fhir_bundle_import(hospital=hospital_a, bundle=bundle, actor=clinician_a)
    assert report.created["Observation"] == len(HAND_MADE) and not report.skipped_reasons
    served = _served(hospital_a, clinician_a, report.patients[0])
    for src, out in match_observations(_sources(bundle), served):
        FhirObservation.model_validate(out)
        assert_same_observation(src, out)
        # The read answers the same resource.
        sign_in(client, clinician_a)
        got = client.get(f"{BASE}Observation/{out['id']}")
        assert got.status_code == 200
        assert_same_observation(src, got.json())


def test_what_the_columns_hold_is_what_the_charts_draw(hospital_a, clinician_a):
    report = fhir_bundle_import(hospital=hospital_a, bundle=_hand_made_bundle(), actor=clinician_a)
    with unscoped():
        rows = list(Observation.objects.filter(patient_id=report.patients[0]))
    (panel,) = [o for o in rows if o.code == "85354-9"]
    assert panel.value is None and panel.category == "vital-signs"
    (precise,) = [o for o in rows if o.value == Decimal("74.965")]
    assert precise.unit == "kg"  # and the verbatim 74.96478397 comes back (test above)
    with hospital_scope(hospital_a):
        opened = records_access.access_patient(clinician_a, report.patients[0])
        page = chart_for(chart=opened)
        vitals = records_by_category(charts=[opened], category="vitals")
        others = records_by_category(charts=[opened], category="observations")
    # The imported panel's components are drawn under their own codes, as the form's rows.
    for series in (page.series, vitals.series):
        assert series["8480-6"]["points"][-1][1] == Decimal("121.500")
        assert series["8462-4"]["points"][-1][1] == Decimal("79")
        assert series["8480-6"]["unit"] == "mm[Hg]"
    # Only numbers are drawn: no series for a text, a concept or a survey's integer, nor
    # for "< 5" (no number).
    assert set(page.series) == {"8480-6", "8462-4", "29463-7", "8310-5"}
    assert page.series["29463-7"]["points"][0][1] == Decimal("74.965")
    labels = {record.value_label for _, kind, record in page.timeline if kind == "observation"}
    assert "Never smoker" in labels and "No" in labels and "3" in labels
    assert "Systolic blood pressure 121.5 mmHg; Diastolic blood pressure 79 mmHg" in labels
    assert "no value (Asked But Declined)" in labels
    assert "<5 mmol/L" in labels and "2 mmol/L to 5.5 mmol/L" in labels
    # The other observations are a category of their own.
    assert {o.category for o in others.records} == {"survey", "exam", ""}


def test_reimport_creates_nothing_and_the_ledger_verifies(hospital_a, clinician_a):
    bundle = _hand_made_bundle()
    fhir_bundle_import(hospital=hospital_a, bundle=bundle, actor=clinician_a)
    before = _rows()
    again = fhir_bundle_import(hospital=hospital_a, bundle=bundle, actor=clinician_a)
    assert _rows() == before and not again.created
    assert again.unchanged["Observation"] == len(HAND_MADE)
    assert [str(f) for f in ledger_verify().findings] == []


@pytest.mark.parametrize(
    "body, words",
    [
        ({"valueQuantity": {"value": "ten", "unit": "kg"}}, "not valid FHIR"),
        ({"valueBoolean": "yes"}, "valueBoolean 'yes' is not a JSON boolean"),
        ({"valueInteger": 2.5}, "not valid FHIR"),
        ({"valueInteger": True}, "is not a JSON integer"),
        ({"valueQuantity": {"value": "5", "unit": "kg"}},
         "valueQuantity.value '5' is not a JSON number"),
        ({"valueRange": {"low": {"value": "1"}}}, "valueRange.low.value '1' is not a JSON number"),
        ({"component": [{"code": {"text": "x"}, "valueBoolean": "no"}]},
         "component 0: valueBoolean"),
        ({"valueString": "a", "valueInteger": 2}, "not valid FHIR"),
        ({"effectiveDateTime": None, "valueString": "a",
          "effectivePeriod": {"start": "2020-01-02T00:00:00Z", "end": "2020-01-01T00:00:00Z"}},
         "before"),
        ({"valueString": "a", "effectiveDateTime": "2020-02-30"}, "not valid FHIR"),
    ],
)  # fmt: skip
def test_a_bad_observation_is_refused_and_nothing_written(hospital_a, clinician_a, body, words):
    bundle = _tiny_bundle()
    entry = _observation("bad", **body)
    for key in [k for k, v in entry["resource"].items() if v is None]:
        del entry["resource"][key]
    bundle["entry"].append(entry)
    bundle["entry"].append(_observation("good", valueString="fine"))
    before = _rows()
    with pytest.raises(BundleImportError) as caught:
        fhir_bundle_import(hospital=hospital_a, bundle=bundle, actor=clinician_a)
    assert _rows() == before
    assert any("Observation/bad" in e and words in e for e in caught.value.errors), caught.value


def test_another_hospitals_staff_cannot_read_them(
    client, sign_in, hospital_a, clinician_a, clinician_b
):
    report = fhir_bundle_import(hospital=hospital_a, bundle=_hand_made_bundle(), actor=clinician_a)
    with unscoped():
        ids = list(
            Observation.objects.filter(patient_id=report.patients[0]).values_list("pk", flat=True)
        )
    sign_in(client, clinician_b)
    for pk in ids[:5]:
        assert client.get(f"{BASE}Observation/{pk}").status_code == 404
    found = client.get(f"{BASE}Observation?patient={report.patients[0]}")
    assert found.status_code == 404 or not [
        e for e in found.json().get("entry", []) if e.get("search", {}).get("mode") == "match"
    ]


def test_rows_imported_per_component_before_still_read(hospital_a, clinician_a):
    """Before issue 17 a blood pressure panel was imported as one row per component (value,
    unit, no FHIR details): those rows are served and drawn as they were."""
    report = fhir_bundle_import(hospital=hospital_a, bundle=_tiny_bundle(), actor=clinician_a)
    from portal.records import services
    from portal.records.models import Patient

    with unscoped():
        patient = Patient.objects.get(pk=report.patients[0])
        row = services.observation_create(
            actor=clinician_a, patient=patient, code="8480-6", display="Systolic blood pressure",
            value=Decimal("118"), unit="mm[Hg]",
            effective_at=copy.copy(patient.created_at), category="vital-signs",
        )  # fmt: skip
        row = Observation.objects.get(pk=row.pk)
    served = observation_to_fhir(row)
    FhirObservation.model_validate(served)
    assert served["valueQuantity"] == {"value": 118, "unit": "mm[Hg]", "system": UCUM,
                                       "code": "mm[Hg]"}  # fmt: skip
    assert served["category"][0]["coding"][0]["code"] == "vital-signs"
    assert served["code"]["coding"] == [{"system": "http://loinc.org", "code": "8480-6",
                                         "display": "Systolic blood pressure"}]  # fmt: skip
    assert observations.value_label(row) == "118 mmHg"
    with hospital_scope(hospital_a):
        page = chart_for(chart=records_access.access_patient(clinician_a, patient.pk))
    assert page.series["8480-6"]["points"] == [(row.effective_at, Decimal("118.000"))]
