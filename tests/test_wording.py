"""The portal's one vocabulary (portal.wording): codes in storage, words on pages."""

from decimal import Decimal

import pytest

from portal import wording


def test_record_types_and_event_kinds_read_as_words():
    assert wording.record_type_label("clinicalnote") == "Clinical note"
    assert wording.record_type_label("ClinicalNote") == "Clinical note"
    assert wording.event_kind_label("chart.read") == "Opened a chart"
    assert wording.event_kind_label("observation.corrected") == "Measurement corrected"
    assert wording.purpose_label("HSYSADMIN") == "Hospital administration"


def test_values_lose_trailing_zeros_and_units_read_as_written():
    assert wording.quantity_label(Decimal("97.000"), "%") == "97 %"
    assert wording.quantity_label(Decimal("36.60"), "Cel") == "36.6 °C"
    assert wording.quantity_label(Decimal("120"), "mm[Hg]") == "120 mmHg"
    assert wording.number_label(Decimal("1E+2")) == "100"
    assert wording.yes_no(True) == "Yes" and wording.yes_no(False) == "No"


@pytest.mark.parametrize(
    "kind, content, words",
    [
        ("CodeableConcept", {"coding": [{"code": "266919005", "display": "Never smoker"}]},
         "Never smoker"),
        ("CodeableConcept", {"text": "Former smoker", "coding": [{"code": "x"}]}, "Former smoker"),
        ("Quantity", {"value": 120.0, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                      "code": "mm[Hg]"}, "120 mmHg"),
        ("Quantity", {"value": 5, "comparator": "<", "unit": "mmol/L"}, "<5 mmol/L"),
        ("Quantity", {"value": 3, "unit": "{score}"}, "3"),  # as UNIT_LABELS says it
        ("Boolean", False, "No"),
        ("boolean", True, "Yes"),
        ("Integer", 3, "3"),
        ("String", "Lives alone", "Lives alone"),
        ("Range", {"low": {"value": 2, "unit": "mmol/L"}}, "at least 2 mmol/L"),
        ("Ratio", {"numerator": {"value": 1, "code": "1", "system": "http://unitsofmeasure.org"},
                   "denominator": {"value": 128, "code": "1",
                                   "system": "http://unitsofmeasure.org"}}, "1 / 128"),
        ("Period", {"start": "2019-05-01"}, "1 May 2019"),
        ("DateTime", "2018-03", "2018-03"),
    ],
)  # fmt: skip
def test_a_fhir_value_is_said_in_words(kind, content, words):
    assert wording.fhir_value_label(kind, content) == words


def test_a_missing_value_says_why():
    reason = {"coding": [{"code": "asked-declined", "display": "Asked But Declined"}]}
    assert wording.no_value_label(reason) == "no value (Asked But Declined)"
    assert wording.no_value_label(None) == "no value"
