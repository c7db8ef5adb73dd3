"""A dump of the database holds none of the demo PHI in clear text."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from portal.records.models import ClinicalNote, Observation, Patient
from portal.records.services import record_create
from portal.tenancy.scoping import unscoped


def _all_cells() -> list[bytes]:
    cells: list[bytes] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        cells.append(bytes(value))
                    elif value is not None:
                        cells.append(str(value).encode())
    return cells


@pytest.mark.django_db
def test_database_dump_holds_no_demo_phi_in_clear():
    call_command("seed_demo", "--patients", "4", "--records-per-patient", "3", stdout=StringIO())
    with unscoped():
        patients = list(Patient.objects.all())
        record_create(
            actor=None, patient=patients[0], model=ClinicalNote, title="Therapy session",
            text="Discussed the divorce and insomnia at length.",
        )  # fmt: skip
        values = [str(o.value) for o in Observation.objects.all()]
    secrets = {b"Discussed the divorce", b"Therapy session"}
    for p in patients:
        secrets |= {p.given_name.encode(), p.family_name.encode(), p.mrn.encode(),
                    p.birth_date.isoformat().encode()}  # fmt: skip
    # Every demo account's TOTP secret (seed_demo prints them; the dump must not hold them).
    from portal.ops.demo import demo_totp_key, staff_logins

    for login in staff_logins():
        key = demo_totp_key(login.username)
        secrets |= {key, key.hex().encode(), login.totp_secret.encode()}
    assert values  # the values exist and read back
    # Strings of 3 bytes could occur by chance inside random ciphertext; 4+ cannot, in practice.
    secrets = {s for s in secrets if len(s) >= 4}
    dump = b"\n".join(_all_cells())
    found = sorted(s.decode() for s in secrets if s in dump)
    assert found == []
