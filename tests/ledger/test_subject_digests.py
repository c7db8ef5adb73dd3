"""Subject digests are commitments that reveal nothing: keyed per hospital (issue 15 item 2).

A leaf's digest commits to the row's canonical content. Unkeyed (leaf format 1), a dump of
the database and the log let anyone test guesses of a record's encrypted values against it,
since the record's other columns are in clear. Keyed (format 2), the guess cannot be tested
without a key that the dump holds only wrapped under a master key.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from ledger import anchoring, events, subjects
from ledger.models import Event
from ledger.verification import ledger_verify
from portal.records import crypto
from portal.records.canonical import LATER_FIELDS
from portal.records.fields import encrypted_fields
from portal.records.keys_models import SiteKey
from portal.records.models import Observation
from tests.ledger.conftest import tamper

# 40.0 .. 340.0 in steps of 0.1: every heart rate a chart would hold, 3,001 candidates.
CANDIDATES = [Decimal(400 + i) / 10 for i in range(3001)]
GUESSED = {"code": "8867-4", "display": "Heart rate", "unit": "/min"}  # known from the app


def _clear(value: Any) -> Any:
    """A clear column as SQL gives it, as canonical content holds it."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # SQLite: naive UTC
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _dump_rows() -> list[tuple[dict[str, Any], str, str]]:
    """What a dump gives the attacker: each observation's clear columns (canonical names),
    with the digest its ledger event committed to and that leaf's format."""
    hidden = {f.name for f in encrypted_fields(Observation)}
    clear = [
        f
        for f in Observation._meta.concrete_fields
        if f.name not in hidden and f.name not in {"id", "created_at", "code_index"}
    ]
    table = connection.ops.quote_name(Observation._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in clear)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {table}")
        rows = cursor.fetchall()
        out = []
        for row in rows:
            # As canonical content holds them: a field added later is left out while empty.
            content = {
                f.attname: _clear(v)
                for f, v in zip(clear, row, strict=True)
                if not (f.name in LATER_FIELDS and v is None)
            }
            content["row_uuid"] = str(uuid.UUID(str(content["row_uuid"])))
            cursor.execute(
                "SELECT digest, leaf FROM ledger_event WHERE subject_type = %s AND subject_id = %s",
                ["records.observation", content["row_uuid"]],
            )
            digest, leaf = cursor.fetchone()
            out.append((content, digest, json.loads(bytes(leaf))["v"]))
    return out


def _guess(content: dict[str, Any], digest: str) -> Decimal | None:
    """The old scheme's attack: try every candidate value with plain SHA-256."""
    for value in CANDIDATES:
        candidate = {**content, **GUESSED, "value": format(value.quantize(Decimal("0.001")), "f")}
        text = json.dumps(candidate, sort_keys=True, separators=(",", ":"), default=str)
        if hashlib.sha256(text.encode()).hexdigest() == digest:
            return value
    return None


def test_a_dump_and_the_log_reveal_no_encrypted_value(record_observations):
    _patient, observations = record_observations(20)
    anchoring.ledger_anchor_pending()
    truth = {str(o.row_uuid): Decimal(o.value) for o in observations}
    dumped = _dump_rows()
    assert len(dumped) == 20 and {v for _c, _d, v in dumped} == {subjects.KEYED_VERSION}

    # The attack is exact: against what the old scheme stored, it recovers every value.
    legacy = {
        str(o.row_uuid): subjects.legacy_digest_of(Observation._base_manager.get(pk=o.pk))
        for o in observations
    }
    recovered_legacy = {c["row_uuid"]: _guess(c, legacy[c["row_uuid"]]) for c, _d, _v in dumped}
    assert recovered_legacy == truth

    # Against what is stored now, it recovers nothing.
    recovered = [_guess(content, digest) for content, digest, _v in dumped]
    assert recovered == [None] * 20
    # Nor does the dump hold the key: the digest key is nowhere in it in clear.
    key = crypto.subject_digest_key(observations[0].hospital_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT wrapped_key FROM records_hospitalkey")
        assert all(key not in bytes(blob) for (blob,) in cursor.fetchall())


def test_verify_ledger_still_names_an_edited_row(record_observations):
    _patient, observations = record_observations(3)
    anchoring.ledger_anchor_pending()
    assert ledger_verify().findings == []
    target = observations[1]
    tamper(
        "UPDATE records_observation SET effective_at = %s WHERE id = %s",
        (timezone.now() - dt.timedelta(days=400), target.pk),
    )
    findings = [str(f) for f in ledger_verify().findings]
    assert findings == [
        f"subject records.observation {target.row_uuid}: row differs from its last anchored "
        "digest (edited behind the application's back)"
    ]


def test_two_hospitals_get_different_digests_for_identical_content(hospital_a, hospital_b):
    content = {"user": 7, "role": "clinician", "active": True}
    digests = {
        subjects.digest_content(content, hospital_id=h) for h in (hospital_a.pk, hospital_b.pk)
    }
    digests.add(subjects.digest_content(content, hospital_id=None))  # the site's key
    assert len(digests) == 3
    unkeyed = hashlib.sha256(
        json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert unkeyed not in digests
    # Stable: the same content at the same hospital digests the same (verify_ledger relies on
    # it), including after the key caches are dropped.
    before = subjects.digest_content(content, hospital_id=hospital_a.pk)
    crypto.clear_key_cache()
    assert subjects.digest_content(content, hospital_id=hospital_a.pk) == before


def _token_event(user) -> Event:
    from portal.api.services import token_issue

    token, _raw = token_issue(user=user, name="digest test", audience="staff", two_factor=True)
    return Event.objects.get(subject_type="api.apitoken", subject_id=str(token.pk))


@pytest.fixture
def encrypted_tables(django_db_setup, django_db_blocker):
    """rotate_keys --new-data-keys re-encrypts every model with encrypted columns, the
    records tests' sample model included (registered once they are collected)."""
    from tests.records.test_crypto import ensure_sample_table

    ensure_sample_table(django_db_blocker)


def test_digests_survive_master_and_data_key_rotation(
    encrypted_tables, record_observations, clinician_a
):
    old_ring = os.environ.get("FIELD_ENCRYPTION_KEYS") or _settings_ring()
    _patient, observations = record_observations(4)
    token_event = _token_event(clinician_a)  # an event of no hospital: the site's key
    assert token_event.hospital_id is None
    anchoring.ledger_anchor_pending()
    assert ledger_verify().findings == []
    site_wrapped = bytes(SiteKey.objects.get().wrapped_key)

    new_key = base64.b64encode(os.urandom(32)).decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=f"k2:{new_key},{old_ring}"):
        out = io.StringIO()
        call_command(
            "rotate_keys", "--new-data-keys", "--settle-seconds", "0",
            stdout=out, stderr=io.StringIO(),
        )  # fmt: skip
        assert "Site keys: 1 re-wrapped under 'k2'" in out.getvalue()
    assert bytes(SiteKey.objects.get().wrapped_key) != site_wrapped

    # The old master key leaves the ring; every digest, hospital or site, still matches.
    with override_settings(FIELD_ENCRYPTION_KEYS=f"k2:{new_key}"):
        crypto.clear_key_cache()
        assert ledger_verify().findings == []
        for obs in observations:
            row = Observation._base_manager.get(pk=obs.pk)
            event = Event.objects.get(subject_id=str(row.row_uuid))
            assert subjects.digest_of(row, hospital_id=row.hospital_id) == event.digest
        # New events after the rotation verify too.
        events.event_record(
            kind="chart.read", hospital=observations[0].hospital_id, subject=observations[0],
            actor=None, patient=observations[0].patient_id,
        )  # fmt: skip
        _token_event(clinician_a)
        anchoring.ledger_anchor_pending()
        assert ledger_verify().findings == []


def _settings_ring() -> str:
    from django.conf import settings

    return settings.FIELD_ENCRYPTION_KEYS


def test_legacy_unkeyed_leaves_stay_verifiable(record_observations):
    """Leaves of format 1 (written before digests were keyed) are re-digested unkeyed."""
    patient, _ = record_observations(0)
    legacy = subjects.legacy_digest_of(patient)
    event_id, now = uuid.uuid4(), timezone.now()
    fields = dict(
        event_id=event_id, kind="chart.read", hospital_id=patient.hospital_id,
        subject_type="records.patient", subject_id=str(patient.row_uuid),
        patient_id=patient.pk, actor_id=None, recorded_at=now, digest=legacy, attrs={},
    )  # fmt: skip
    Event.objects.create(
        **{k: v for k, v in fields.items() if k != "recorded_at"},
        recorded_at=now, leaf=events.canonical_leaf(**fields, version=1),
    )  # fmt: skip
    anchoring.ledger_anchor_pending()
    assert ledger_verify().findings == []
    tamper("UPDATE records_patient SET sex = %s WHERE id = %s", ("other", patient.pk))
    assert any(
        str(patient.row_uuid) in str(f) and "differs" in str(f) for f in ledger_verify().findings
    )


@pytest.mark.django_db(transaction=True)  # keys are cached once their rows are committed
def test_digests_cost_no_query_once_keys_are_cached(record_observations, django_assert_num_queries):
    _patient, observations = record_observations(1)
    obs = Observation._base_manager.get(pk=observations[0].pk)
    subjects.digest_of(obs, hospital_id=obs.hospital_id)
    subjects.digest_content({}, hospital_id=None)
    with django_assert_num_queries(0):
        subjects.digest_of(obs, hospital_id=obs.hospital_id)
        subjects.digest_content({"x": 1}, hospital_id=obs.hospital_id)
        subjects.digest_content({"x": 1}, hospital_id=None)


@pytest.mark.django_db(transaction=True)
def test_a_site_key_created_in_a_rolled_back_transaction_is_not_kept(hospital_a):
    crypto.clear_key_cache()
    with pytest.raises(RuntimeError), transaction.atomic():
        lost = crypto.subject_digest_key(None)
        raise RuntimeError("roll back")
    assert not SiteKey.objects.exists()
    kept = crypto.subject_digest_key(None)
    assert kept != lost and SiteKey.objects.count() == 1
    crypto.clear_key_cache()
    assert crypto.subject_digest_key(None) == kept  # read back from its (committed) row


def test_an_unkeyed_digest_is_never_the_fallback(monkeypatch):
    monkeypatch.setattr(subjects, "_digest_key", [])
    with pytest.raises(RuntimeError, match="no ledger digest key"):
        subjects.digest_content({}, hospital_id=None)
