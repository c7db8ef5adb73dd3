"""A dump of the database holds none of the demo PHI in clear text.

`database_dump()` is a real dump of the test database (pg_dump on PostgreSQL, the SQLite
library's own dump on SQLite): the security tests dump what the pages wrote with it. It sees
committed rows only, so tests that use it run with `transactional_db`.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from portal.ops.demo import ALLERGIES, PROBLEMS
from portal.records.models import ClinicalNote, Observation, Patient
from portal.records.services import record_create
from portal.tenancy.scoping import unscoped


def database_dump() -> str:
    """The test database's data as its own dump tool writes it (text)."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            pytest.skip("pg_dump is not installed")
        env = dict(os.environ)
        if db.get("PASSWORD"):
            env["PGPASSWORD"] = str(db["PASSWORD"])
        args = [pg_dump, "--data-only", "--no-owner", "--dbname", db["NAME"]]
        for flag, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER")):
            if db.get(key):
                args += [flag, str(db[key])]
        done = subprocess.run(args, env=env, capture_output=True, check=True, timeout=120)
        return done.stdout.decode("utf-8")
    with sqlite3.connect(db["NAME"]) as raw:
        return "\n".join(raw.iterdump())


def table_rows(dump: str, table: str) -> list[str]:
    """The lines of `dump` that hold rows of `table` (COPY data or INSERT statements)."""
    if connection.vendor == "postgresql":
        match = re.search(
            rf"^COPY public\.{re.escape(table)} \(.*?\) FROM stdin;\n(.*?)^\\\.$",
            dump,
            flags=re.MULTILINE | re.DOTALL,
        )
        return match.group(1).splitlines() if match else []
    return [line for line in dump.splitlines() if line.startswith(f'INSERT INTO "{table}" ')]


def cell_in(lines: list[str], value: str) -> bool:
    """Whether some cell of these dump lines is exactly `value` in clear."""
    if connection.vendor == "postgresql":  # COPY text format: cells between tabs
        return any(value in line.split("\t") for line in lines)
    quoted = "'" + value.replace("'", "''") + "'"
    return any(re.search(rf"[(,]{re.escape(quoted)}[,)]", line) for line in lines)


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
    # The demo's clinical concepts: their displays, and their codes (as telling).
    for code, display, rx, drug in PROBLEMS:
        secrets |= {code.encode(), display.encode(), rx.encode(), drug.encode()}
    for code, display, _criticality in ALLERGIES:
        secrets |= {code.encode(), display.encode()}
    assert values  # the values exist and read back
    # Strings of 3 bytes could occur by chance inside random ciphertext; 4+ cannot, in practice.
    secrets = {s for s in secrets if len(s) >= 4}
    cells = _all_cells()
    dump = b"\n".join(cells)
    # A code of digits only (an RxNorm or SNOMED code) is looked for as a whole token: as a
    # run of digits it also turns up by chance inside hex digests, base64 and big numbers.
    found = sorted(
        s.decode()
        for s in secrets
        if (re.search(rb"(?<![0-9A-Za-z+/])" + re.escape(s) + rb"(?![0-9A-Za-z+/])", dump)
            if s.isdigit() else s in dump)
    )  # fmt: skip
    assert found == []
    # Short coded values, as whole cells (a criticality, an encounter class, a status).
    short = {b"high", b"low", b"unable-to-assess", b"AMB", b"Check-up", b"185349003"}
    assert sorted(v.decode() for v in short & set(cells)) == []
