"""rotate_keys: re-wrapping under a new master key, new data keys, re-encryption."""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from portal.records import crypto
from portal.records.fields import encrypted_fields
from portal.records.keys_models import HospitalKey
from tests.records.test_crypto import (
    EncryptedSample,
    ensure_sample_table,
    fresh,
    make_sample,
    raw_column,
)

NEW_KEY = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(scope="module", autouse=True)
def _sample_table(django_db_setup, django_db_blocker):
    ensure_sample_table(django_db_blocker)


@pytest.fixture
def old_ring(settings) -> str:
    return settings.FIELD_ENCRYPTION_KEYS


@pytest.fixture
def samples(hospital_a, hospital_b):
    rows = []
    for hospital in (hospital_a, hospital_b):
        for i in range(3):
            rows.append(
                make_sample(
                    hospital,
                    name=f"Patient {hospital.slug} {i}",
                    born=dt.date(1970, 1, 1 + i),
                    value=Decimal(f"{i}.125"),
                )
            )
    rows.append(EncryptedSample.objects.create(hospital=hospital_b, name="Sparse"))
    return rows


def read_all(rows) -> list[tuple]:
    """Every row read from the database with a cold key cache."""
    crypto.clear_key_cache()
    out = []
    for row in rows:
        obj = fresh(row)
        out.append((obj.name, obj.note, obj.born, obj.value, obj.content))
    return out


def rotate(*args: str) -> str:
    out = io.StringIO()
    call_command("rotate_keys", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_rewrap_then_drop_the_old_master_key(samples, old_ring, hospital_a):
    before = read_all(samples)
    blobs = [raw_column(EncryptedSample, "name", s.pk) for s in samples]
    index = crypto.blind_index("Patient st-mary 0", hospital_id=hospital_a.pk, purpose="name")
    old_id = crypto.KeyRing.parse(old_ring).current_id
    assert set(HospitalKey.objects.values_list("master_key_id", flat=True)) == {old_id}

    with override_settings(FIELD_ENCRYPTION_KEYS=f"k2:{NEW_KEY},{old_ring}"):
        # Rows loaded before the rotation still read after it (the site keeps running).
        loaded_before = fresh(samples[0])
        output = rotate()
        assert "2 re-wrapped under 'k2'" in output
        assert loaded_before.name == before[0][0]
        assert read_all(samples) == before
        assert "0 re-wrapped under 'k2', 2 already under it" in rotate()  # idempotent

    keys = HospitalKey.objects.all()
    assert {k.master_key_id for k in keys} == {"k2"}
    assert all(k.rewrapped_at is not None for k in keys)
    # The values themselves were not touched.
    assert [raw_column(EncryptedSample, "name", s.pk) for s in samples] == blobs

    with override_settings(FIELD_ENCRYPTION_KEYS=f"k2:{NEW_KEY}"):
        assert read_all(samples) == before
        assert (
            crypto.blind_index("Patient st-mary 0", hospital_id=hospital_a.pk, purpose="name")
            == index
        )
    # And the old key alone no longer opens anything: the cache did not hide a failed rewrap.
    with override_settings(FIELD_ENCRYPTION_KEYS=old_ring), pytest.raises(ImproperlyConfigured):
        read_all(samples)


def test_new_data_keys_re_encrypts_every_column(samples, old_ring, hospital_a, hospital_b):
    before = read_all(samples)
    fields = encrypted_fields(EncryptedSample)
    raw_before = {
        (s.pk, f.name): raw_column(EncryptedSample, f.name, s.pk) for s in samples for f in fields
    }
    index = crypto.blind_index("Patient st-mary 0", hospital_id=hospital_a.pk, purpose="name")

    with override_settings(FIELD_ENCRYPTION_KEYS=f"k2:{NEW_KEY},{old_ring}"):
        output = rotate("--new-data-keys", "--batch-size", "2", "--settle-seconds", "0")
        assert "records.EncryptedSample: re-encrypted" in output

    current = HospitalKey.objects.filter(is_current=True).order_by("hospital_id")
    assert [(k.hospital_id, k.version) for k in current] == [
        (hospital_a.pk, 2),
        (hospital_b.pk, 2),
    ]
    assert set(HospitalKey.objects.values_list("master_key_id", flat=True)) == {"k2"}
    for (pk, name), old in raw_before.items():
        new = raw_column(EncryptedSample, name, pk)
        if old is None:
            assert new is None
            continue
        assert new != old
        assert crypto.blob_version(old) == 1 and crypto.blob_version(new) == 2

    with override_settings(FIELD_ENCRYPTION_KEYS=f"k2:{NEW_KEY}"):
        assert read_all(samples) == before
        assert (
            crypto.blind_index("Patient st-mary 0", hospital_id=hospital_a.pk, purpose="name")
            == index
        )
        # New writes use the new version; a second run re-encrypts under a third.
        fresh_row = make_sample(hospital_b)
        assert crypto.blob_version(raw_column(EncryptedSample, "note", fresh_row.pk)) == 2
        rotate("--new-data-keys", "--settle-seconds", "0")
        assert crypto.blob_version(raw_column(EncryptedSample, "note", fresh_row.pk)) == 3
        assert read_all([*samples, fresh_row])[:-1] == before


def test_instance_loaded_before_new_data_keys_saves_readably(samples, old_ring):
    stale = fresh(samples[1])
    with override_settings(FIELD_ENCRYPTION_KEYS=f"k2:{NEW_KEY},{old_ring}"):
        rotate("--new-data-keys", "--settle-seconds", "0")
        stale.save()  # writes back its version-1 blob: still readable
    with override_settings(FIELD_ENCRYPTION_KEYS=f"k2:{NEW_KEY}"):
        assert fresh(samples[1]).name == samples[1].name


def test_keys_under_a_missing_master_key_are_errors_not_crashes(samples, old_ring):
    other = base64.b64encode(os.urandom(32)).decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=f"k3:{other}"):
        err = io.StringIO()
        with pytest.raises(CommandError, match="2 problem"):
            call_command("rotate_keys", stdout=io.StringIO(), stderr=err)
        assert "not in FIELD_ENCRYPTION_KEYS" in err.getvalue()
        assert other not in err.getvalue()
    # Nothing changed; the old ring still reads everything.
    assert read_all(samples)[0][0] == samples[0].name


def test_bad_batch_size():
    with pytest.raises(CommandError, match="batch-size"):
        call_command("rotate_keys", "--batch-size", "0")


def test_new_data_keys_cover_the_records_clinical_columns(hospital_a, old_ring):
    """Codes, displays, units, statuses, criticalities and encounter types (records 0003)
    are re-encrypted like every other encrypted column, padding and search tokens intact."""
    from django.utils import timezone

    from portal.records import services
    from portal.records.models import AllergyIntolerance, Condition, Encounter, Observation

    now = timezone.now()
    patient = services.patient_register(
        hospital=hospital_a, mrn="ROT-1", given_name="Rita", family_name="Otate",
        birth_date=dt.date(1960, 2, 2),
    )  # fmt: skip
    rows = [
        services.observation_create(
            actor=None, patient=patient, code="2339-0", display="Glucose", value=Decimal(99),
            unit="mg/dL", effective_at=now,
        ),
        services.record_create(
            actor=None, patient=patient, model=Condition, code="86406008", display="HIV",
            clinical_status="remission",
        ),
        services.record_create(
            actor=None, patient=patient, model=AllergyIntolerance, code="91936005",
            display="Penicillin", criticality="high", recorded_date=now,
        ),
        services.record_create(
            actor=None, patient=patient, model=Encounter, class_code="EMER", type_code="T1",
            type_display="Emergency visit", period_start=now,
        ),
    ]  # fmt: skip
    columns = {
        Observation: ["code", "display", "unit"],
        Condition: ["code", "display", "clinical_status"],
        AllergyIntolerance: ["code", "display", "criticality"],
        Encounter: ["class_code", "type_code", "type_display"],
    }
    for model, names in columns.items():
        assert set(names) <= {f.name for f in encrypted_fields(model)}
    before = {(type(r), r.pk): {n: getattr(r, n) for n in columns[type(r)]} for r in rows}
    token = rows[0].code_index

    with override_settings(FIELD_ENCRYPTION_KEYS=f"k2:{NEW_KEY},{old_ring}"):
        output = rotate("--new-data-keys", "--settle-seconds", "0")
    for label in ("Observation", "Condition", "AllergyIntolerance", "Encounter"):
        assert f"records.{label}: re-encrypted" in output
    with override_settings(FIELD_ENCRYPTION_KEYS=f"k2:{NEW_KEY}"):
        crypto.clear_key_cache()
        for (model, pk), values in before.items():
            row = model._base_manager.get(pk=pk)
            for name, value in values.items():
                assert crypto.blob_version(raw_column(model, name, pk)) == 2
                assert getattr(row, name) == value
        assert Observation._base_manager.get(pk=rows[0].pk).code_index == token
