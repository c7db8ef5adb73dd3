"""Writes of patients and clinical records."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from ledger.services import event_record
from portal.records.models import Observation, Patient
from portal.tenancy.models import Hospital


@transaction.atomic
def patient_register(
    *,
    hospital: Hospital,
    mrn: str,
    given_name: str,
    family_name: str,
    birth_date: date,
    user: AbstractBaseUser | None = None,
    actor: AbstractBaseUser | None = None,
) -> Patient:
    patient = Patient._base_manager.create(
        hospital=hospital,
        mrn=mrn,
        given_name=given_name,
        family_name=family_name,
        birth_date=birth_date,
        user=user,
    )
    event_record(
        kind="patient.registered", hospital=hospital, subject=patient, actor=actor, patient=patient
    )
    return patient


@transaction.atomic
def observation_create(
    *,
    actor: AbstractBaseUser | None,
    patient: Patient,
    code: str,
    display: str,
    value: Decimal,
    unit: str,
    effective_at: datetime,
) -> Observation:
    observation = Observation._base_manager.create(
        hospital_id=patient.hospital_id,
        patient=patient,
        code=code,
        display=display,
        value=value,
        unit=unit,
        effective_at=effective_at,
        recorded_by=actor,
    )
    event_record(
        kind="observation.created",
        hospital=patient.hospital_id,
        subject=observation,
        actor=actor,
        patient=patient,
        attrs={"code": code},
    )
    return observation
