"""Two hospitals, each with a hospital admin, a clinician, patients, consents, break-glass
and access events; and an auditor (superuser with a second factor)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction

from consent import services as consent_services
from consent.models import Consent
from ledger.events import event_record
from portal.records import services as records_services
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories


@pytest.fixture
def auditor(db):
    user = factories.UserFactory(is_superuser=True, is_staff=True, username="auditor-x")
    factories.TOTPDeviceFactory(user=user)
    return user


def _read(
    *, patient, actor, kind="chart.read", purpose="TREAT", break_glass=False, role=None,
    from_hospital=None,
):  # fmt: skip
    """A read as the portal records it: under the chart's hospital, naming the one the reader
    acted in (`from_hospital`, else the chart's)."""
    with transaction.atomic():
        return event_record(
            kind=kind, hospital=patient.hospital_id, subject=patient, actor=actor,
            patient=patient, actor_hospital=from_hospital or patient.hospital_id,
            attrs={
                "purpose": purpose, "break_glass": break_glass,
                "via": "breakglass" if break_glass else "staff", "role": role or "clinician",
            },
        )  # fmt: skip


@pytest.fixture
def world(make_staff, hospital_a, hospital_b):
    staff = {}
    for key, hospital in (("a", hospital_a), ("b", hospital_b)):
        staff[f"admin_{key}"] = make_staff(hospital, Role.HOSPITAL_ADMIN, username=f"admin-{key}")
        staff[f"clinician_{key}"] = make_staff(
            hospital, Role.CLINICIAN, username=f"clin-{key}", first_name="Doc",
            last_name=f"Tor{key.upper()}",
        )  # fmt: skip
    account_a = factories.UserFactory(username="pat-a")
    with unscoped():
        patient_a = records_services.patient_register(
            hospital=hospital_a, mrn="AAA-11111", given_name="Jeremiah", family_name="Smithfield",
            birth_date=dt.date(1970, 2, 3), user=account_a, actor=staff["clinician_a"],
        )  # fmt: skip
        patient_b = records_services.patient_register(
            hospital=hospital_b, mrn="BBB-22222", given_name="Wilhelmina", family_name="Brontesque",
            birth_date=dt.date(1980, 4, 5), actor=staff["clinician_b"],
        )  # fmt: skip
        consent = consent_services.consent_grant(
            patient=patient_a, actor=account_a, grantee_kind=Consent.GranteeKind.HOSPITAL,
            grantee_hospital=hospital_b,
        )  # fmt: skip
        glass_b = consent_services.break_glass_open(
            user=staff["clinician_b"], user_hospital=hospital_b, patient=patient_b,
            reason="Unconscious in the emergency department, allergies unknown",
        )  # fmt: skip
    _read(patient=patient_a, actor=staff["clinician_a"])
    _read(patient=patient_a, actor=staff["clinician_a"], kind="record.read", purpose="CAREMGT")
    _read(patient=patient_b, actor=staff["clinician_b"], purpose="ETREAT", break_glass=True)
    return {
        "a": hospital_a, "b": hospital_b, **staff, "patient_a": patient_a,
        "patient_b": patient_b, "consent": consent, "glass_b": glass_b, "account_a": account_a,
    }  # fmt: skip
