"""The ledger over HTTP, and its cross-tenant / cross-patient cases."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import anchoring, keys
from ledger.models import Checkpoint, Event
from portal.tenancy.models import Role
from tests import factories

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anchored(record_observations, patient_with_login, hospital_b):
    user, patient = patient_with_login
    _, _other_obs = record_observations(3, hospital=hospital_b)
    anchoring.ledger_anchor_pending()
    own_event = Event.objects.get(subject_type="records.patient", subject_id=str(patient.row_uuid))
    foreign_event = Event.objects.filter(hospital=hospital_b).first()
    return user, own_event, foreign_event


def test_public_key_and_checkpoint_are_public(client, anchored):
    key = client.get("/ledger/key")
    assert key.status_code == 200
    assert key.content.decode().strip() == keys.log_signer().vkey()
    cp = client.get("/ledger/checkpoint")
    assert cp.status_code == 200
    assert cp.content.decode() == Checkpoint.objects.order_by("-size").first().note


def test_patient_downloads_a_receipt_the_standalone_verifier_accepts(
    client, sign_in, anchored, tmp_path
):
    user, own_event, _ = anchored
    sign_in(client, user)
    response = client.get(f"/ledger/events/{own_event.event_id}/receipt?download=1")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    receipt_path = tmp_path / "receipt.json"
    receipt_path.write_bytes(response.content)
    key_path = tmp_path / "key.txt"
    key_path.write_text(client.get("/ledger/key").content.decode())
    env = {"PATH": "/usr/bin:/bin"}  # no Django settings: the verifier needs none
    ok = subprocess.run(
        [sys.executable, "-m", "ledger.verifier", str(receipt_path), "--key", str(key_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: entry")
    tampered = json.loads(response.content)
    tampered["entry"]["index"] += 1
    receipt_path.write_text(json.dumps(tampered))
    bad = subprocess.run(
        [sys.executable, "-m", "ledger.verifier", str(receipt_path), "--key", str(key_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "INVALID" in bad.stderr


def test_receipts_of_other_patients_and_hospitals_are_404(
    client, sign_in, anchored, make_patient_user, hospital_a, clinician_a
):
    _user, own_event, foreign_event = anchored
    other_user, _ = make_patient_user(hospital_a)
    sign_in(client, other_user)
    assert client.get(f"/ledger/events/{own_event.event_id}/receipt").status_code == 404
    sign_in(client, clinician_a)  # staff of hospital A: not the actor, not an admin
    assert client.get(f"/ledger/events/{foreign_event.event_id}/receipt").status_code == 404
    assert client.get(f"/ledger/events/{own_event.event_id}/receipt").status_code == 404
    assert client.get("/ledger/events/not-a-uuid/receipt").status_code == 404
    assert (
        client.get("/ledger/events/00000000-0000-4000-8000-000000000000/receipt").status_code == 404
    )


def test_hospital_admin_sees_receipts_of_their_hospital_only(
    client, sign_in, anchored, make_staff, hospital_a
):
    _, own_event, foreign_event = anchored
    admin_a = make_staff(hospital_a, Role.HOSPITAL_ADMIN)
    sign_in(client, admin_a)
    assert client.get(f"/ledger/events/{own_event.event_id}/receipt").status_code == 200
    assert client.get(f"/ledger/events/{foreign_event.event_id}/receipt").status_code == 404


def test_auditor_sees_every_receipt(client, sign_in, anchored):
    _, own_event, foreign_event = anchored
    auditor = factories.UserFactory(is_superuser=True, is_staff=True)
    factories.TOTPDeviceFactory(user=auditor)
    sign_in(client, auditor)
    for event in (own_event, foreign_event):
        assert client.get(f"/ledger/events/{event.event_id}/receipt").status_code == 200


def test_anonymous_users_get_no_receipts_or_proofs(client, anchored):
    _, own_event, _ = anchored
    assert client.get(f"/ledger/events/{own_event.event_id}/receipt").status_code == 401
    assert client.get("/ledger/consistency?old=1&new=2").status_code == 401


def test_consistency_proof_between_two_checkpoints(client, sign_in, anchored, record_observations):
    user, _, _ = anchored
    old_size = Checkpoint.objects.order_by("-size").first().size
    record_observations(4)
    anchoring.ledger_anchor_pending()
    new_size = Checkpoint.objects.order_by("-size").first().size
    sign_in(client, user)
    response = client.get(f"/ledger/consistency?old={old_size}&new={new_size}")
    assert response.status_code == 200
    from ledger import verifier
    from ledger.keys import log_verifier

    result = verifier.verify_consistency_file(response.json(), log_verifier(), None, None)
    assert (result.old.size, result.new.size) == (old_size, new_size)
    assert client.get("/ledger/consistency?old=x&new=2").status_code == 400
    assert client.get(f"/ledger/consistency?old={new_size}&new={old_size}").status_code == 404
    assert client.get("/ledger/consistency?old=1&new=99999").status_code == 404


def test_pending_event_receipt_is_a_clear_conflict(client, sign_in, patient_with_login):
    user, patient = patient_with_login
    event = Event.objects.get(subject_type="records.patient", subject_id=str(patient.row_uuid))
    sign_in(client, user)
    response = client.get(f"/ledger/events/{event.event_id}/receipt")
    assert response.status_code == 409
    assert "not anchored yet" in response.json()["error"]
