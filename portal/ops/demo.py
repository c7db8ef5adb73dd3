"""The demo data set: documented log-ins for the local demo only."""

from __future__ import annotations

import hashlib
import hmac
import random
from base64 import b32encode
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from portal.accounts import services as accounts_services
from portal.accounts.models import TOTPDevice
from portal.records import services as records_services
from portal.records.catalog import MEASURES
from portal.records.models import (
    AllergyIntolerance,
    ClinicalNote,
    Condition,
    Encounter,
    MedicationRequest,
    Observation,
    Patient,
)
from portal.records.selectors import patient_by_mrn
from portal.tenancy import services as tenancy_services
from portal.tenancy.models import Hospital, Role

# For the demo only: every demo account has this password. Never use it for real accounts.
DEMO_PASSWORD = "Demo-Portal-2026"  # noqa: S105

HOSPITALS = [
    ("st-mary", "St Mary's Hospital", "stmary"),
    ("riverside", "Riverside General", "riverside"),
]
ROLE_USERNAMES = [
    (Role.CLINICIAN, "clinician"),
    (Role.NURSE, "nurse"),
    (Role.RECORDS_CLERK, "clerk"),
    (Role.HOSPITAL_ADMIN, "admin"),
]
GIVEN = ["Alex", "Sam", "Jordan", "Robin", "Maria", "Chen", "Aisha", "Tom", "Lena", "Omar"]
FAMILY = ["Morgan", "Okafor", "Nguyen", "Schmidt", "Garcia", "Kowalski", "Haddad", "Silva"]
VITALS = [
    ("8867-4", 72, 9),
    ("8480-6", 122, 12),
    ("8462-4", 79, 8),
    ("8310-5", 36.9, 0.4),
    ("2339-0", 98, 14),
]


@dataclass
class DemoLogin:
    username: str
    role: str
    hospitals: str
    totp_secret: str | None


def demo_totp_key(username: str) -> bytes:
    """Deterministic per deployment (keyed by SECRET_KEY) so re-seeding keeps the secrets."""
    return hmac.new(
        settings.SECRET_KEY.encode(), f"demo-totp:{username}".encode(), hashlib.sha1
    ).digest()


def _user(username: str, *, superuser: bool = False) -> AbstractBaseUser:
    User = get_user_model()
    user, created = User._default_manager.get_or_create(
        username=username, defaults={"is_superuser": superuser, "is_staff": superuser}
    )
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
    return user


STAFF_NAMES = {
    ("stmary", "clinician"): ("Ann", "Shaw"),
    ("stmary", "nurse"): ("Ben", "Ito"),
    ("riverside", "clinician"): ("Rui", "Costa"),
    ("riverside", "nurse"): ("Nia", "Bello"),
    ("stmary", "clerk"): ("Carla", "Reyes"),
    ("stmary", "admin"): ("Hugo", "Brandt"),
    ("riverside", "clerk"): ("Priya", "Nair"),
    ("riverside", "admin"): ("Owen", "Hart"),
    ("locum", "clinician"): ("Lou", "Park"),
    ("", "auditor"): ("Audrey", "Tan"),
}


def _name(user: AbstractBaseUser, prefix: str, suffix: str) -> None:
    """Staff show by name to patients (consent forms, "who accessed my records")."""
    first, last = STAFF_NAMES.get((prefix, suffix), ("", ""))
    if first and not user.first_name:
        user.first_name, user.last_name = first, last
        user.save(update_fields=["first_name", "last_name"])


def _totp(user: AbstractBaseUser) -> None:
    key = demo_totp_key(user.get_username())
    device = TOTPDevice.objects.filter(user=user, name="Demo authenticator").first()
    if device is None:
        accounts_services.totp_device_create(
            user=user, name="Demo authenticator", confirmed=True, secret=key
        )
    elif device.bin_key != key or not device.confirmed:  # re-seeded with another SECRET_KEY
        accounts_services.totp_device_secret_set(device=device, secret=key, actor=None)


def staff_logins() -> list[DemoLogin]:
    """The demo staff accounts and their TOTP secrets (derived, so nothing is stored twice)."""
    logins = [
        DemoLogin(f"{prefix}.{suffix}", role.label, name, _secret(f"{prefix}.{suffix}"))
        for _slug, name, prefix in HOSPITALS
        for role, suffix in ROLE_USERNAMES
    ]
    logins.append(DemoLogin("locum.clinician", "Clinician", "both", _secret("locum.clinician")))
    logins.append(DemoLogin("auditor", "Auditor (superuser)", "all", _secret("auditor")))
    return logins


def _secret(username: str) -> str:
    return b32encode(demo_totp_key(username)).decode()


PROBLEMS = [
    (
        "44054006",
        "Diabetes mellitus type 2",
        "860975",
        "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet",
    ),
    ("38341003", "Hypertensive disorder", "197361", "amlodipine 5 MG Oral Tablet"),
    ("195967001", "Asthma", "745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
    ("55822004", "Hyperlipidemia", "314231", "simvastatin 10 MG Oral Tablet"),
]
ALLERGIES = [
    ("91936005", "Allergy to penicillin", "high"),
    ("300913006", "Shellfish allergy", "low"),
]


def _chart_basics(patient: Patient, rng: random.Random, now) -> None:
    """A problem with its medication, and sometimes an allergy: a chart worth looking at."""
    code, display, rx, drug = rng.choice(PROBLEMS)
    onset = (now - timedelta(days=rng.randrange(200, 3000))).date()
    records_services.record_create(
        actor=None, patient=patient, model=Condition, code=code, display=display, onset_date=onset
    )
    records_services.record_create(
        actor=None, patient=patient, model=MedicationRequest, code=rx, display=drug,
        dosage="one tablet daily", authored_on=now - timedelta(days=30),
    )  # fmt: skip
    if rng.random() < 0.5:
        a_code, a_display, criticality = rng.choice(ALLERGIES)
        records_services.record_create(
            actor=None, patient=patient, model=AllergyIntolerance, code=a_code,
            display=a_display, criticality=criticality, reaction="rash",
            recorded_date=now - timedelta(days=400),
        )  # fmt: skip


def seed(*, patients: int, records_per_patient: int, progress=None) -> None:
    with transaction.atomic():
        hospitals: list[Hospital] = []
        for slug, name, prefix in HOSPITALS:
            hospital = tenancy_services.hospital_ensure(slug=slug, name=name)
            hospitals.append(hospital)
            emergency = tenancy_services.department_ensure(
                hospital=hospital, slug="emergency", name="Emergency department"
            )
            tenancy_services.department_ensure(
                hospital=hospital, slug="cardiology", name="Cardiology"
            )
            for role, suffix in ROLE_USERNAMES:
                user = _user(f"{prefix}.{suffix}")
                _name(user, prefix, suffix)
                tenancy_services.membership_ensure(
                    user=user, hospital=hospital, role=role,
                    department=emergency if role == Role.CLINICIAN else None,
                )  # fmt: skip
                _totp(user)
        locum = _user("locum.clinician")
        for hospital in hospitals:
            tenancy_services.membership_ensure(user=locum, hospital=hospital, role=Role.CLINICIAN)
        _name(locum, "locum", "clinician")
        _totp(locum)
        auditor = _user("auditor", superuser=True)
        _name(auditor, "", "auditor")
        _totp(auditor)

    for i in range(1, patients + 1):
        # One transaction per patient keeps a re-run after an interruption consistent.
        with transaction.atomic():
            rng = random.Random(i)  # noqa: S311 - demo data, deterministic on purpose
            user = _user(f"patient{i}")
            homes = hospitals if i == 1 else [hospitals[(i - 1) % len(hospitals)]]
            given, family = rng.choice(GIVEN), rng.choice(FAMILY)
            birth = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 30000))
            for hospital in homes:
                mrn = f"{hospital.slug[:2].upper()}{100000 + i}"
                patient = patient_by_mrn(hospital=hospital, mrn=mrn)
                if patient is None:
                    patient = records_services.patient_register(
                        hospital=hospital,
                        mrn=mrn,
                        given_name=given,
                        family_name=family,
                        birth_date=birth,
                        user=user,
                    )
                now = timezone.now().replace(second=0, microsecond=0)
                if not Condition._base_manager.filter(patient=patient).exists():
                    _chart_basics(patient, rng, now)
                if not Encounter._base_manager.filter(patient=patient).exists():
                    records_services.record_create(
                        actor=None, patient=patient, model=Encounter, class_code="AMB",
                        type_code="185349003", type_display="Check-up",
                        reason="Annual review", period_start=now - timedelta(days=30),
                        period_end=now - timedelta(days=30) + timedelta(minutes=20),
                    )  # fmt: skip
                    records_services.record_create(
                        actor=None, patient=patient, model=ClinicalNote,
                        title="Annual review", text="Reviewed medication; no changes.",
                    )  # fmt: skip
                have = Observation._base_manager.filter(patient=patient).count()
                for n in range(have, records_per_patient):
                    code, mean, sd = VITALS[n % len(VITALS)]
                    measure = MEASURES[code]
                    value = Decimal(str(round(rng.gauss(mean, sd), 1)))
                    records_services.observation_create(
                        actor=None, patient=patient, code=code, display=measure.display,
                        value=value, unit=measure.unit, category=measure.category,
                        effective_at=now - timedelta(days=7 * (n // len(VITALS)), hours=1),
                    )  # fmt: skip
        if progress is not None:
            progress.advance()
    _sharing(hospitals, patients)


def _sharing(hospitals: list[Hospital], patients: int) -> None:
    """Something to look at in the consent pages: patient3 (St Mary's) shares vital signs
    and labs with Riverside's clinician; Riverside's patient2 has a request from St Mary's."""
    from consent import services as consent_services
    from consent.models import AccessRequest, Consent

    st_mary, riverside = hospitals
    if patients >= 3:
        sharer = patient_by_mrn(hospital=st_mary, mrn="ST100003")
        grantee = get_user_model()._default_manager.get(username="riverside.clinician")
        if sharer is not None and not Consent.objects.filter(patient=sharer).exists():
            consent_services.consent_grant(
                patient=sharer, actor=sharer.user, grantee_kind="practitioner",
                grantee_user=grantee, scope_all=False, categories=["vitals", "labs"],
            )  # fmt: skip
    if patients >= 2:
        asked = patient_by_mrn(hospital=riverside, mrn="RI100002")
        requester = get_user_model()._default_manager.get(username="stmary.clinician")
        if asked is not None and not AccessRequest.objects.filter(addressee=asked).exists():
            consent_services.access_request_create(
                requester=requester, requester_hospital=st_mary, patient_hospital=riverside,
                mrn=asked.mrn, birth_date=asked.birth_date,
            )  # fmt: skip
