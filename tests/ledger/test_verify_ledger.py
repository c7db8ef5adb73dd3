"""Every tamper class is detected and named by verify_ledger; an intact log has no finding."""

import json
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from ledger import anchoring, events, keys, note
from ledger.models import Entry, Event
from ledger.verification import ledger_verify
from portal.ops.progress import Progress
from tests.ledger.conftest import tamper


@pytest.fixture
def anchored_log(record_observations, hospital_b):
    patient, observations = record_observations(20)
    record_observations(5, hospital=hospital_b)
    anchoring.ledger_anchor_pending(batch_size=8)  # several checkpoints
    return patient, observations


def _findings():
    return [str(f) for f in ledger_verify().findings]


def _run(*args):
    out = StringIO()
    try:
        call_command("verify_ledger", *args, stdout=out, stderr=StringIO())
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue()


def test_intact_log_has_zero_findings(anchored_log):
    report = ledger_verify()
    assert report.findings == []
    assert report.entries == Event.objects.count()
    assert report.subjects > 0
    code, out = _run()
    assert code == 0 and "intact" in out
    code, out = _run("--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["findings"] == []


def test_entry_bytes_changed(anchored_log):
    q = connection.ops.quote_name("index")
    tamper(f"UPDATE ledger_entry SET leaf = %s WHERE {q} = 7", (b'{"forged":true}',))
    findings = _findings()
    assert any(f.startswith("entry 7:") and "leaf bytes" in f for f in findings), findings
    assert any(f.startswith("checkpoint") for f in findings)


def test_entry_bytes_and_hashes_rewritten_consistently_still_caught(anchored_log):
    """An attacker who recomputes the leaf hash and the whole chain is caught by the signed
    checkpoints and by the outbox copy of the leaf."""
    import hashlib

    entries = list(Entry.objects.order_by("index"))
    forged = bytes(entries[3].leaf).replace(b'"kind":"', b'"kind":"x')
    q = connection.ops.quote_name("index")
    prev = bytes(entries[2].chain_hash)
    for entry in entries[3:]:
        leaf = forged if entry.index == 3 else bytes(entry.leaf)
        lh = hashlib.sha256(b"\x00" + leaf).digest()
        prev = hashlib.sha256(prev + lh).digest()
        tamper(
            f"UPDATE ledger_entry SET leaf = %s, leaf_hash = %s, chain_hash = %s WHERE {q} = %s",
            (leaf, lh, prev, entry.index),
        )
    findings = _findings()
    assert "entry 3: leaf bytes differ from its recorded event" in findings
    assert any("signed root does not match" in f for f in findings)


def test_entry_deleted(anchored_log):
    q = connection.ops.quote_name("index")
    tamper(f"DELETE FROM ledger_entry WHERE {q} = 11")
    findings = _findings()
    assert "log entries 11..11: missing (deleted from the log)" in findings
    assert any("event" in f and "entry is missing" in f for f in findings)


def test_entry_inserted(anchored_log):
    """A forged entry appended with a valid chain hash: no outbox event, no checkpoint."""
    import hashlib

    forged_id = uuid.UUID("00000000-0000-4000-8000-000000000001")
    FORGED_ID_DB = Event._meta.get_field("event_id").get_db_prep_value(forged_id, connection)
    last = Entry.objects.order_by("-index").first()
    genuine_event = Event.objects.order_by("id").first()
    leaf = bytes(genuine_event.leaf).replace(b'"kind":"', b'"kind":"forged-')
    lh = hashlib.sha256(b"\x00" + leaf).digest()
    chain = hashlib.sha256(bytes(last.chain_hash) + lh).digest()
    q = connection.ops.quote_name("index")
    tamper(
        "INSERT INTO ledger_event (event_id, kind, hospital_id, subject_type, subject_id, "
        "recorded_at, digest, attrs, leaf, status) SELECT %s, kind, hospital_id, subject_type, "
        "subject_id, recorded_at, digest, attrs, %s, 1 FROM ledger_event WHERE id = %s",
        (FORGED_ID_DB, b"other", genuine_event.pk),
    )
    forged_event = Event.objects.get(event_id=forged_id)
    tamper(
        f"INSERT INTO ledger_entry ({q}, event_id, leaf, leaf_hash, chain_hash, created_at) "
        "VALUES (%s, %s, %s, %s, %s, CURRENT_TIMESTAMP)",
        (last.index + 1, forged_event.pk, leaf, lh, chain),
    )
    findings = _findings()
    n = last.index + 1
    assert f"entry {n}: leaf bytes differ from its recorded event" in findings
    assert any(f.startswith(f"log entries {n}..{n}") and "not covered" in f for f in findings)


def test_two_entries_swapped(anchored_log):
    a, b = Entry.objects.get(index=4), Entry.objects.get(index=9)
    q = connection.ops.quote_name("index")
    for entry, other in ((a, b), (b, a)):
        tamper(
            f"UPDATE ledger_entry SET leaf = %s, leaf_hash = %s WHERE {q} = %s",
            (bytes(other.leaf), bytes(other.leaf_hash), entry.index),
        )
    findings = _findings()
    assert any(f.startswith("entry 4:") and "chain" in f for f in findings), findings
    assert any(f.startswith("entry 9:") and "chain" in f for f in findings), findings


def test_log_truncated(anchored_log):
    total = Entry.objects.count()
    q = connection.ops.quote_name("index")
    tamper(f"DELETE FROM ledger_entry WHERE {q} >= %s", (total - 6,))
    findings = _findings()
    assert any(f"log truncated: only {total - 6} entries remain" in f for f in findings), findings


def test_subject_row_edited_behind_the_applications_back(anchored_log):
    _, observations = anchored_log
    target = observations[2]
    tamper("UPDATE records_observation SET category = 'laboratory' WHERE id = %s", (target.pk,))
    findings = _findings()
    assert findings == [
        f"subject records.observation {target.row_uuid}: row differs from its last anchored digest "
        "(edited behind the application's back)"
    ]


@pytest.mark.parametrize(
    "sql",
    [
        # Clear text written into an encrypted column (the unit was clear text once).
        "UPDATE records_observation SET unit = 'kg' WHERE id = %s",
        # The code's search token (not digested: derived from the code, and checked).
        "UPDATE records_observation SET code_index = 'a' WHERE id = %s",
        "UPDATE records_observation SET code_index = '' WHERE id = %s",
    ],
)
def test_encrypted_column_or_its_token_edited_is_named(anchored_log, sql):
    _, observations = anchored_log
    target = observations[2]
    tamper(sql, (target.pk,))
    assert _findings() == [
        f"subject records.observation {target.row_uuid}: row cannot be read back "
        "(an encrypted value was altered, moved or its key is missing)"
    ]


def test_encrypted_value_swapped_between_rows_is_named(anchored_log):
    """Copying another row's ciphertext (to change a value without the key) is caught: the
    associated data binds it to its row, so it no longer decrypts."""
    _, observations = anchored_log
    target, donor = observations[2], observations[3]
    tamper(
        "UPDATE records_observation SET value = (SELECT value FROM records_observation "
        "WHERE id = %s) WHERE id = %s",
        (donor.pk, target.pk),
    )
    assert _findings() == [
        f"subject records.observation {target.row_uuid}: row cannot be read back "
        "(an encrypted value was altered, moved or its key is missing)"
    ]


def test_subject_row_deleted_behind_the_applications_back(anchored_log):
    _, observations = anchored_log
    tamper("DELETE FROM records_observation WHERE id = %s", (observations[0].pk,))
    assert any("row is gone" in f for f in _findings())


def test_checkpoint_signature_forged(anchored_log):
    from ledger.models import Checkpoint

    cp = Checkpoint.objects.order_by("size")[1]
    impostor = note.Signer.generate(keys.log_signer().name)
    forged = note.sign_checkpoint(
        note.parse_checkpoint_body(cp.note.split("\n\n")[0] + "\n"), impostor
    )
    tamper("UPDATE ledger_checkpoint SET note = %s WHERE id = %s", (forged, cp.pk))
    findings = _findings()
    assert any(
        f.startswith(f"checkpoint #{cp.pk} (size {cp.size}): bad signature") for f in findings
    )


def test_all_findings_are_reported_not_just_the_first(anchored_log):
    _, observations = anchored_log
    q = connection.ops.quote_name("index")
    tamper(f"UPDATE ledger_entry SET leaf = %s WHERE {q} = 2", (b"x",))
    tamper(
        "UPDATE records_observation SET category = 'laboratory' WHERE id = %s",
        (observations[5].pk,),
    )
    code, out = _run()
    assert code == 1
    assert "entry 2:" in out and f"records.observation {observations[5].row_uuid}" in out
    code, out = _run("--json")
    kinds = {f["kind"] for f in json.loads(out)["findings"]}
    assert code == 1 and {"entry", "subject"} <= kinds


def test_progress_bar_draws_on_a_terminal():
    class Tty(StringIO):
        def isatty(self):
            return True

    stream = Tty()
    with Progress("Checking the log", 10, stream=stream) as progress:
        for _ in range(10):
            progress.advance()
    assert "Checking the log [" in stream.getvalue() and "10/10" in stream.getvalue()
    quiet = StringIO()
    with Progress("x", 3, stream=quiet) as progress:
        progress.advance(3)
    assert quiet.getvalue() == ""  # piped output stays clean


def test_account_events_belong_to_no_hospital(anchored_log):
    """An account's own event (no hospital: an auditor's sign-in device, say) is logged and
    verified like any other; its leaf says so with "hospital": null."""
    from django.db import transaction

    with transaction.atomic():
        event = events.event_record(
            kind="account.device.reset", hospital=None, subject=("account", 1),
            digest="0" * 64, actor=None,
        )  # fmt: skip
    anchoring.ledger_anchor_pending()
    assert json.loads(bytes(Entry.objects.get(event=event).leaf))["hospital"] is None
    assert _findings() == []


def test_leaf_without_a_readers_hospital_is_the_format_from_before():
    """A leaf names the reader's hospital ("actor_hospital") only when set: an event without
    it is serialized to exactly the bytes every earlier leaf has, so old receipts and
    entries stay valid."""
    import datetime as dt

    fields = dict(
        event_id=uuid.UUID("12345678-1234-5678-1234-567812345678"), kind="chart.read",
        hospital_id=3, subject_type="records.patient", subject_id="ab", patient_id=9,
        actor_id=4, recorded_at=dt.datetime(2025, 1, 2, 3, 4, 5, 6789, tzinfo=dt.UTC),
        digest="0" * 64, attrs={"via": "staff"},
    )  # fmt: skip
    before = (
        b'{"actor":4,"attrs":{"via":"staff"},"digest":"' + b"0" * 64 + b'","event":'
        b'"12345678-1234-5678-1234-567812345678","hospital":3,"kind":"chart.read",'
        b'"patient":9,"subject":"records.patient:ab","time":"2025-01-02T03:04:05.006789Z",'
        b'"v":1}'
    )
    assert events.canonical_leaf(**fields, version=1) == before
    assert events.canonical_leaf(**fields, actor_hospital_id=None, version=1) == before
    both = json.loads(events.canonical_leaf(**fields, actor_hospital_id=7, version=1))
    assert both == {**json.loads(before), "actor_hospital": 7}
    # New leaves are format 2 (keyed digests), otherwise the same bytes.
    assert events.canonical_leaf(**fields) == before.replace(b'"v":1}', b'"v":2}')


def test_reads_naming_both_hospitals_verify_beside_older_ones(anchored_log, hospital_b, tmp_path):
    """A log holding leaves with and without "actor_hospital" verifies whole, and receipts
    of both verify with the standalone verifier (as a patient would run it)."""
    import subprocess
    import sys

    from django.db import transaction

    from ledger.keys import log_signer
    from ledger.proofs import receipt_for_event

    patient, _ = anchored_log
    with transaction.atomic():
        older = events.event_record(
            kind="chart.read", hospital=hospital_b, subject=patient, actor=None, patient=patient
        )
        newer = events.event_record(
            kind="chart.read", hospital=patient.hospital_id, subject=patient, actor=None,
            patient=patient, actor_hospital=hospital_b,
        )  # fmt: skip
    assert newer.actor_hospital_id == hospital_b.pk and older.actor_hospital_id is None
    assert Event.objects.get(pk=newer.pk).actor_hospital_id == hospital_b.pk
    anchoring.ledger_anchor_pending()
    assert _findings() == []
    key = tmp_path / "key.txt"
    key.write_text(log_signer().vkey())
    for event, expected in ((older, None), (newer, hospital_b.pk)):
        leaf = bytes(Entry.objects.get(event=event).leaf)
        assert leaf == bytes(event.leaf)
        assert json.loads(leaf).get("actor_hospital") == expected
        path = tmp_path / f"{event.event_id}.json"
        path.write_text(json.dumps(receipt_for_event(event=event)))
        done = subprocess.run(
            [sys.executable, "-m", "ledger.verifier", str(path), "--key", str(key)],
            capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
        assert done.returncode == 0 and done.stdout.startswith("OK: entry"), done.stderr
