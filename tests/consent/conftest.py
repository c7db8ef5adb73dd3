import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.records import services
from portal.records.models import ClinicalNote, Observation
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories


@pytest.fixture
def consent_world(make_staff, hospital_a, hospital_b):
    """A patient with a portal account at St Mary's (vitals, labs, a problem, a note and a
    restricted note), a second patient there, a clinician and an admin at each hospital."""
    clinician_a = make_staff(hospital_a, Role.CLINICIAN, first_name="Ann", last_name="Shaw")
    clinician_b = make_staff(hospital_b, Role.CLINICIAN, first_name="Rui", last_name="Costa")
    admin_a = make_staff(hospital_a, Role.HOSPITAL_ADMIN, email="admin-a@example.org")
    admin_b = make_staff(hospital_b, Role.HOSPITAL_ADMIN, email="admin-b@example.org")
    account = factories.UserFactory(email="pat@example.org")
    other_account = factories.UserFactory()
    now = timezone.now()
    with unscoped():
        patient = services.patient_register(
            hospital=hospital_a, mrn="SM-100", given_name="Pat", family_name="Jones",
            birth_date=dt.date(1970, 2, 3), user=account, actor=clinician_a,
        )  # fmt: skip
        other = services.patient_register(
            hospital=hospital_a, mrn="SM-200", given_name="Olga", family_name="Other",
            birth_date=dt.date(1960, 1, 1), user=other_account, actor=clinician_a,
        )  # fmt: skip
        vital = services.observation_create(
            actor=clinician_a, patient=patient, code="8867-4", display="Heart rate",
            value=Decimal(71), unit="/min", effective_at=now - dt.timedelta(hours=3),
        )  # fmt: skip
        lab = services.observation_create(
            actor=clinician_a, patient=patient, code="4548-4", display="Hemoglobin A1c",
            value=Decimal("6.1"), unit="%", effective_at=now - dt.timedelta(hours=2),
            category=Observation.Category.LABORATORY,
        )  # fmt: skip
        note = services.record_create(
            actor=clinician_a, patient=patient, model=ClinicalNote, title="Visit", text="Well."
        )
        secret = services.record_create(
            actor=clinician_a, patient=patient, model=ClinicalNote, title="Therapy",
            text="Psychotherapy session.", restricted=True,
        )  # fmt: skip
        other_vital = services.observation_create(
            actor=clinician_a, patient=other, code="8867-4", display="Heart rate",
            value=Decimal(90), unit="/min", effective_at=now - dt.timedelta(hours=1),
        )  # fmt: skip
    return {
        "a": hospital_a, "b": hospital_b, "clinician_a": clinician_a, "clinician_b": clinician_b,
        "admin_a": admin_a, "admin_b": admin_b, "account": account, "patient": patient,
        "other_account": other_account, "other": other, "vital": vital, "lab": lab,
        "note": note, "secret": secret, "other_vital": other_vital,
    }  # fmt: skip
