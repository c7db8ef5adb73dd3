from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.records import services as records_services
from tests import factories
from tests.tamper import tamper  # noqa: F401 - the ledger tests' import


@pytest.fixture
def record_observations(hospital_a, hospital_b):
    """Ledgered records at both hospitals (each create records one outbox event)."""

    def make(n: int, hospital=None):
        hospital = hospital or hospital_a
        patient = records_services.patient_register(
            hospital=hospital, mrn=f"M{hospital.pk}-{timezone.now().timestamp()}",
            given_name="Ada", family_name="Lovelace", birth_date=dt.date(1980, 1, 2),
        )  # fmt: skip
        observations = [
            records_services.observation_create(
                actor=None,
                patient=patient,
                code="8867-4",
                display="Heart rate",
                value=Decimal("70") + i,
                unit="/min",
                effective_at=timezone.now() - dt.timedelta(minutes=i),
            )
            for i in range(n)
        ]
        return patient, observations

    return make


@pytest.fixture
def patient_with_login(hospital_a, hospital_b):
    user = factories.UserFactory()
    patient = records_services.patient_register(
        hospital=hospital_a, mrn="P-LOGIN", given_name="Grace", family_name="Hopper",
        birth_date=dt.date(1970, 12, 9), user=user,
    )  # fmt: skip
    return user, patient
