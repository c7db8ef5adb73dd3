"""records 0003 encrypts the clear clinical columns of existing rows (and back again).

A round trip on a populated database: records written and ledgered by today's code, the
migration undone (the values go back into clear columns, as the code before it stored them),
then applied again (in batches). Every value reads back, every record digests as it did, and
verify_ledger finds nothing. (The test database itself was migrated forward while empty.)
"""

from __future__ import annotations

import datetime as dt
import importlib
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from ledger import subjects
from ledger.anchoring import ledger_anchor_pending
from ledger.verification import ledger_verify
from portal.records import services
from portal.records.models import (
    AllergyIntolerance,
    Condition,
    Document,
    Encounter,
    Immunization,
    MedicationRequest,
    Observation,
    Procedure,
)
from portal.tenancy.scoping import unscoped

pytestmark = pytest.mark.django_db(transaction=True)

MIGRATION = importlib.import_module("portal.records.migrations.0003_encrypt_codes_and_displays")


def _write_records(hospital) -> list:
    now = timezone.now() - dt.timedelta(hours=1)
    patient = services.patient_register(
        hospital=hospital, mrn=f"MIG-{hospital.pk}", given_name="Mia", family_name="Grant",
        birth_date=dt.date(1970, 1, 1),
    )  # fmt: skip
    make = {"actor": None, "patient": patient}
    observations = [
        ("8867-4", "Heart rate", 71, "/min"),
        ("8867-4", "Heart rate", 75, "/min"),
        ("2339-0", "Glucose [Mass/volume] in Blood", 98, "mg/dL"),
    ]
    rows = []
    for i, (code, display, value, unit) in enumerate(observations):
        fields = {"code": code, "display": display, "value": Decimal(value), "unit": unit}
        when = now - dt.timedelta(minutes=i)
        rows.append(services.observation_create(**make, **fields, effective_at=when))
    rows += [
        services.record_create(**make, model=Condition, code="86406008",
                               display="Human immunodeficiency virus infection",
                               clinical_status="remission"),
        services.record_create(**make, model=Condition, code="44054006",
                               display="Diabetes mellitus type 2"),
        services.record_create(**make, model=MedicationRequest, code="860975",
                               display="Metformin 500 MG", authored_on=now),
        services.record_create(**make, model=AllergyIntolerance, code="91936005",
                               display="Allergy to penicillin", criticality="high",
                               reaction="hives", recorded_date=now),
        services.record_create(**make, model=AllergyIntolerance, code="300913006",
                               display="Shellfish allergy", recorded_date=now),
        services.record_create(**make, model=Immunization, vaccine_code="140",
                               display="Influenza", occurrence=now),
        services.record_create(**make, model=Procedure, code="80146002",
                               display="Appendectomy", performed_at=now),
        services.record_create(**make, model=Encounter, class_code="EMER",
                               type_code="185349003", type_display="Check-up",
                               period_start=now),
        services.record_create(**make, model=Encounter, period_start=now),  # no type: ""
        services.record_create(**make, model=Document, title="Letter",
                               content_type="text/plain", size=5,
                               sha256="2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
                               content=b"hello"),
    ]  # fmt: skip
    return rows


def _clear_values(row) -> dict[str, object]:
    names = MIGRATION.FIELDS[row._meta.model_name]
    return {name: getattr(row, name) for name in names}


def _raw(model, columns: list[str], pk: int) -> tuple:
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(qn(c) for c in columns)} FROM {qn(model._meta.db_table)} "
            "WHERE id = %s",
            [pk],
        )
        return cursor.fetchone()


def test_round_trip_keeps_every_value_and_digest(hospital_a, hospital_b, monkeypatch):
    monkeypatch.setattr(MIGRATION, "BATCH", 2)  # several batches per table
    with unscoped():
        rows = _write_records(hospital_a) + _write_records(hospital_b)
    ledger_anchor_pending()
    assert ledger_verify().findings == []
    digests = {(type(r), r.pk): subjects.digest_of(r, hospital_id=r.hospital_id) for r in rows}
    values = {(type(r), r.pk): _clear_values(r) for r in rows}
    tokens = {r.pk: r.code_index for r in rows if isinstance(r, Observation)}

    call_command("migrate", "records", "0002", verbosity=0)
    try:
        # Backwards: the clear columns hold the values, as the code before 0003 wrote them.
        for (model, pk), expected in values.items():
            assert dict(zip(expected, _raw(model, list(expected), pk), strict=True)) == expected
    finally:
        call_command("migrate", "records", verbosity=0)

    with unscoped():
        for (model, pk), expected in values.items():
            row = model._base_manager.get(pk=pk)
            assert _clear_values(row) == expected
            assert subjects.digest_of(row, hospital_id=row.hospital_id) == digests[model, pk]
            for name, value in zip(expected, _raw(model, list(expected), pk), strict=True):
                assert isinstance(value, bytes | memoryview), (model, name)  # a blob
                if expected[name]:
                    assert str(expected[name]).encode() not in bytes(value)
            if model is Observation:
                assert row.code_index == tokens[pk]
    assert ledger_verify().findings == []
