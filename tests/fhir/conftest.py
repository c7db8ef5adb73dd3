import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from portal.records import services
from portal.records.models import (
    AllergyIntolerance,
    ClinicalNote,
    Condition,
    Document,
    Encounter,
    Immunization,
    MedicationRequest,
    Procedure,
)
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped

ROOT = Path(__file__).resolve().parent.parent.parent
# Beside the repository, on every developer machine and on CI (see its README).
SYNTHEA_DIR = (ROOT / ".." / "shared" / "fixtures" / "fhir" / "synthea-r4").resolve()


@pytest.fixture
def chart(make_staff, hospital_a, hospital_b):
    """Two hospitals; at each a clinician and a patient with one record of every type."""
    out = {}
    for key, hospital in (("a", hospital_a), ("b", hospital_b)):
        clinician = make_staff(hospital, Role.CLINICIAN)
        when = timezone.now() - dt.timedelta(days=3)
        with unscoped():
            patient = services.patient_register(
                hospital=hospital, mrn=f"{key.upper()}-100", given_name="Ada",
                family_name=f"Lovelace{key.upper()}", birth_date=dt.date(1970, 12, 10),
                sex="female", phone="+44 20 7946 0000", actor=clinician,
            )  # fmt: skip
            make = dict(actor=clinician, patient=patient)
            enc = services.record_create(
                **make, model=Encounter, class_code="AMB", type_code="185349003",
                type_display="Encounter for check up", reason="Check-up",
                period_start=when, period_end=when + dt.timedelta(minutes=30),
            )  # fmt: skip
            records = {
                "encounter": enc,
                "observation": services.observation_create(
                    **make,
                    code="8867-4",
                    display="Heart rate",
                    value=Decimal("72.5"),
                    unit="/min",
                    effective_at=when,
                ),
                "condition": services.record_create(
                    **make,
                    model=Condition,
                    code="38341003",
                    display="Hypertension",
                    onset_date=dt.date(2019, 1, 2),
                ),
                "medicationrequest": services.record_create(
                    **make,
                    model=MedicationRequest,
                    code="316049",
                    display="Hydrochlorothiazide 25 MG",
                    dosage="1 tablet daily",
                    authored_on=when,
                ),
                "allergyintolerance": services.record_create(
                    **make,
                    model=AllergyIntolerance,
                    code="300913006",
                    display="Shellfish allergy",
                    criticality="low",
                    reaction="Hives",
                    recorded_date=when,
                ),
                "immunization": services.record_create(
                    **make,
                    model=Immunization,
                    vaccine_code="140",
                    display="Influenza",
                    occurrence=when,
                ),
                "procedure": services.record_create(
                    **make,
                    model=Procedure,
                    code="430193006",
                    display="Medication reconciliation",
                    performed_at=when,
                ),
                "clinicalnote": services.record_create(
                    **make,
                    model=ClinicalNote,
                    title="Visit",
                    text="Feels well.",
                ),
                "document": services.record_create(
                    **make,
                    model=Document,
                    title="Letter",
                    content_type="text/plain",
                    size=5,
                    sha256="0" * 64,
                    content=b"hello",
                ),
            }
        out[key] = {"hospital": hospital, "clinician": clinician, "patient": patient, **records}
    return out
