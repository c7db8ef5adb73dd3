"""fhir 0002 turns the clear source ids and parts of existing import rows into keyed tokens,
so a bundle imported before it is still recognised (re-import creates nothing) and no
sender's id is left in clear."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection

from portal.fhir.models import import_source_token

pytestmark = pytest.mark.django_db(transaction=True)


def test_existing_rows_become_tokens(hospital_a, hospital_b):
    call_command("migrate", "fhir", "0001", verbosity=0)
    try:
        with connection.cursor() as cursor:
            for hospital, source, part in (
                (hospital_a, "MRN-0042", ""),
                (hospital_a, "bp-panel-7", "8480-6"),
                (hospital_b, "MRN-0042", ""),
            ):
                cursor.execute(
                    "INSERT INTO fhir_importidentity (hospital_id, resource_type, source_id, "
                    "part, target_model, target_id, imported_at) "
                    "VALUES (%s, 'Observation', %s, %s, 'records.observation', 1, %s)",
                    [hospital.pk, source, part, "2026-01-01 00:00:00+00:00"],
                )
    finally:
        call_command("migrate", "fhir", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT hospital_id, source_token, part_token FROM fhir_importidentity ORDER BY id"
        )
        rows = cursor.fetchall()

    def token(hospital, value, purpose="source"):
        return import_source_token(hospital_id=hospital.pk, value=value, purpose=purpose)

    assert rows == [
        (hospital_a.pk, token(hospital_a, "MRN-0042"), ""),
        (hospital_a.pk, token(hospital_a, "bp-panel-7"), token(hospital_a, "8480-6", "part")),
        (hospital_b.pk, token(hospital_b, "MRN-0042"), ""),
    ]
    # Keyed per hospital: the same id at two hospitals gives unrelated tokens.
    assert rows[0][1] != rows[2][1]
