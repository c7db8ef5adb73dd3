"""Two hospitals, staff and patients at each, and real API tokens for them."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.api.services import token_issue
from portal.records import services
from portal.records.models import ClinicalNote, Condition, Document
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories


class Api:
    """A test client speaking JSON with a bearer token."""

    def __init__(self, client, token: str | None, hospital: str | None = None):
        self.client, self.token, self.hospital = client, token, hospital

    def _headers(self, extra):
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.hospital:
            headers["X-Hospital"] = self.hospital
        return {**headers, **(extra or {})}

    def get(self, url, params=None, headers=None):
        return self.client.get(url, params or {}, headers=self._headers(headers))

    def post(self, url, body=None, headers=None):
        return self.client.post(
            url, body if body is not None else {}, content_type="application/json",
            headers=self._headers(headers),
        )  # fmt: skip


@pytest.fixture
def api_world(make_staff, hospital_a, hospital_b):
    out = {}
    now = timezone.now()
    for key, hospital in (("a", hospital_a), ("b", hospital_b)):
        clinician = make_staff(hospital, Role.CLINICIAN)
        account = factories.UserFactory()
        with unscoped():
            patient = services.patient_register(
                hospital=hospital, mrn=f"{key.upper()}-100", given_name="Pat",
                family_name=f"Jones{key.upper()}", birth_date=dt.date(1970, 2, 3), user=account,
                actor=clinician,
            )  # fmt: skip
            restricted = services.patient_register(
                hospital=hospital, mrn=f"{key.upper()}-900", given_name="Vip",
                family_name=f"Person{key.upper()}", birth_date=dt.date(1960, 1, 1),
                actor=clinician,
            )  # fmt: skip
            services.patient_set_restricted(patient=restricted, restricted=True, actor=clinician)
            obs = services.observation_create(
                actor=clinician, patient=patient, code="8867-4", display="Heart rate",
                value=Decimal(71), unit="/min", effective_at=now - dt.timedelta(hours=3),
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
            vip_obs = services.observation_create(
                actor=clinician, patient=restricted, code="8867-4", display="Heart rate",
                value=Decimal(80), unit="/min", effective_at=now - dt.timedelta(hours=1),
            )  # fmt: skip
        out[key] = {
            "hospital": hospital, "clinician": clinician, "account": account,
            "patient": patient, "restricted": restricted, "observation": obs,
            "condition": cond, "note": note, "document": doc, "vip_observation": vip_obs,
            "staff_token": token_issue(
                user=clinician, name="ci", audience="staff", two_factor=True
            )[1],
            "patient_token": token_issue(
                user=account, name="app", audience="patient", two_factor=False
            )[1],
        }  # fmt: skip
    return out


@pytest.fixture
def api(client):
    def make(token=None, hospital=None):
        return Api(client, token, hospital)

    return make
