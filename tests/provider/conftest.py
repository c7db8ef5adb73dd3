import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.records import services
from portal.records.models import ClinicalNote, Condition, Document
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories


@pytest.fixture
def world(make_staff, hospital_a, hospital_b):
    """Two hospitals, each with a clinician and a patient with a few records."""
    out = {"a": {}, "b": {}}
    for key, hospital in (("a", hospital_a), ("b", hospital_b)):
        clinician = make_staff(hospital, Role.CLINICIAN)
        with unscoped():
            patient = services.patient_register(
                hospital=hospital, mrn=f"{key.upper()}-001", given_name="Pat",
                family_name=f"Ient{key.upper()}", birth_date=dt.date(1975, 3, 4), actor=clinician,
            )  # fmt: skip
            other = services.patient_register(
                hospital=hospital, mrn=f"{key.upper()}-002", given_name="Other",
                family_name=f"Person{key.upper()}", birth_date=dt.date(1980, 1, 1),
            )  # fmt: skip
            obs = services.observation_create(
                actor=clinician, patient=patient, code="8867-4", display="Heart rate",
                value=Decimal(70), unit="/min", effective_at=timezone.now() - dt.timedelta(hours=2),
            )  # fmt: skip
            cond = services.record_create(
                actor=clinician, patient=patient, model=Condition, code="44054006",
                display="Diabetes mellitus type 2", onset_date=dt.date(2020, 1, 1),
            )  # fmt: skip
            note = services.record_create(
                actor=clinician, patient=patient, model=ClinicalNote, title="Visit",
                text="Feels well.",
            )  # fmt: skip
            doc = services.record_create(
                actor=clinician, patient=patient, model=Document, title="Scan",
                content_type="text/plain", size=5, sha256="0" * 64, content=b"hello",
            )  # fmt: skip
        out[key] = {
            "hospital": hospital, "clinician": clinician, "patient": patient, "other": other,
            "observation": obs, "condition": cond, "note": note, "document": doc,
        }  # fmt: skip
    return out


@pytest.fixture
def nurse_a(make_staff, hospital_a):
    return make_staff(hospital_a, Role.NURSE)


@pytest.fixture
def admin_a(make_staff, hospital_a):
    return make_staff(hospital_a, Role.HOSPITAL_ADMIN)


@pytest.fixture
def auditor(db):
    user = factories.UserFactory(is_superuser=True, is_staff=True)
    factories.TOTPDeviceFactory(user=user)
    return user
