"""The portal's one vocabulary (portal.wording): codes in storage, words on pages."""

from decimal import Decimal

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
