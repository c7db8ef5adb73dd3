"""A correction's reason is digested with its version, never shown in a leaf, and fields added
by issue 16 (the reason, a medication's end) change no earlier row's digest."""

import datetime as dt

import pytest

from ledger import anchoring
from ledger.models import Event
from ledger.verification import ledger_verify
from portal.records import services
from portal.records.canonical import canonical
from portal.records.models import Condition, MedicationRequest
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests.ledger.conftest import tamper

pytestmark = pytest.mark.django_db


def test_the_reason_is_digested_not_shown_and_old_rows_digest_as_before(
    make_staff, hospital_a, hospital_b
):
    clinician = make_staff(hospital_a, Role.CLINICIAN)
    make_staff(hospital_b, Role.CLINICIAN)
    with unscoped():
        patient = services.patient_register(
            hospital=hospital_a, mrn="R-1", given_name="Ann", family_name="Lee",
            birth_date=dt.date(1970, 1, 1), actor=clinician,
        )  # fmt: skip
        cond = services.record_create(
            actor=clinician, patient=patient, model=Condition, code="195967001",
            display="Asthma", onset_date=dt.date(2020, 1, 1),
        )  # fmt: skip
        med = services.record_create(
            actor=clinician, patient=patient, model=MedicationRequest, code="197361",
            display="amlodipine 5 MG Oral Tablet",
            authored_on=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        )  # fmt: skip
    # A row without the new fields digests without them (as every row written before did).
    assert "correction_reason" not in canonical(cond) and "valid_until" not in canonical(med)
    with unscoped():
        new = services.record_correct(
            actor=clinician, record=cond, display="Asthma, allergic",
            correction_reason="Spirometry result: allergic asthma (secret-word)",
        )  # fmt: skip
    assert canonical(new)["correction_reason"].startswith("Spirometry")
    anchoring.ledger_anchor_pending()
    assert ledger_verify().findings == []
    with unscoped():
        leaves = [bytes(e.leaf) for e in Event.objects.all() if e.leaf]
        attrs = [repr(e.attrs) for e in Event.objects.all()]
    assert leaves and not any(b"secret-word" in leaf for leaf in leaves)
    assert not any("secret-word" in a for a in attrs)
    # Removing the reason behind the application's back is named by verify_ledger.
    tamper("UPDATE records_condition SET correction_reason = NULL WHERE id = %s", (new.pk,))
    findings = [str(f) for f in ledger_verify().findings]
    assert any(str(new.row_uuid) in f for f in findings)
