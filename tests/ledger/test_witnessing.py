"""Witnesses on loopback: the portal publishes its checkpoints to real `python -m ledger.witness`
processes (their own SQLite files and keys), stores their cosignatures, serves the cosigned
checkpoint and cosigned receipts; a witness down delays only publication; a cut tail and a
fork are refused by the witnesses and named by verify_ledger with their cosigned checkpoint.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from ledger import anchoring, cosignature, merkle, note, policy, publication
from ledger.keys import log_origin, log_signer
from ledger.models import (
    AppendOnlyError,
    Checkpoint,
    Cosignature,
    Entry,
    Event,
    LogHead,
    WitnessState,
)
from ledger.proofs import merkle_nodes_fetch, receipt_for_event
from ledger.verification import ledger_verify
from tests.conftest import ROOT, wait_until
from tests.ledger.conftest import tamper


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WitnessProcess:
    """One `python -m ledger.witness serve` on loopback, with its own key and SQLite file."""

    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.dir = directory / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        signer = cosignature.CosignatureSigner.generate(f"witness.test/{name}")
        self.key_file = self.dir / "witness.key"
        self.key_file.write_text(signer.to_string() + "\n")
        self.key_file.chmod(0o600)
        self.vkey = signer.vkey()
        self.proc: subprocess.Popen | None = None

    def start(self, *, log: str | None = None) -> WitnessProcess:
        out = open(self.dir / "witness.log", "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "ledger.witness", "serve",
                "--db", str(self.dir / "witness.sqlite3"), "--key", str(self.key_file),
                "--log", log or f"{log_origin()}={log_signer().vkey()}",
                "--listen", f"127.0.0.1:{self.port}",
            ],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        out.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"witness {self.name} did not start: {self.output()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def output(self) -> str:
        path = self.dir / "witness.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def spec(self) -> str:
        return f"{self.name}={self.url}={self.vkey}"


@pytest.fixture
def witnesses(tmp_path, settings):
    """Two witnesses (not started yet) and the portal configured to use them, 2 of 2."""
    made = [WitnessProcess(tmp_path, "w1"), WitnessProcess(tmp_path, "w2")]
    settings.LEDGER_WITNESSES = ",".join(w.spec() for w in made)
    settings.LEDGER_WITNESS_QUORUM = "2"
    settings.LEDGER_WITNESS_TIMEOUT = 2.0
    yield made
    for w in made:
        w.stop()


def _env(witness_list, quorum: str = "2") -> dict[str, str]:
    return {
        "LEDGER_WITNESSES": ",".join(w.spec() for w in witness_list),
        "LEDGER_WITNESS_QUORUM": quorum,
        "LEDGER_WITNESS_TIMEOUT": "2",
    }


def _policy(witness_list, quorum: str = "2") -> policy.Policy:
    text = f"log {log_signer().vkey()}\n" + publication.witnesses_policy_text(
        ",".join(w.spec() for w in witness_list), quorum
    )
    return policy.parse_policy(text)


def _cosign_all() -> dict[str, str]:
    """Publish in-process (what the `ledger.cosign` tasks do), each witness once."""
    out = {}
    for state in publication.witness_states_sync():
        try:
            out[state.name] = publication.witness_cosign(witness_id=state.pk)
        except publication.WitnessUnavailable as exc:
            out[state.name] = f"unavailable: {exc}"
    return out


# --- checkpoints ---------------------------------------------------------------------------


def test_checkpoints_have_no_time_line_and_older_ones_with_it_still_verify(record_observations):
    record_observations(3)
    anchoring.ledger_anchor_pending()
    checkpoint = Checkpoint.objects.order_by("-size").first()
    text, _ = note.split_note(checkpoint.note)
    assert text.count("\n") == 3  # origin, size, root: exactly
    # A checkpoint signed before this change, with its `time` extension line, still opens.
    old = note.Checkpoint(
        origin=log_origin(), size=checkpoint.size, root=bytes(checkpoint.root_hash),
        extensions=["time 2026-12-01T10:00:00.000000Z"],
    )  # fmt: skip
    opened = note.open_checkpoint(note.sign_checkpoint(old, log_signer()), log_signer().verifier())
    assert opened.size == checkpoint.size and opened.extensions == [
        "time 2026-12-01T10:00:00.000000Z"
    ]


def test_without_witnesses_the_log_is_published_without_them(record_observations, client, sign_in):
    from tests import factories

    record_observations(2)
    anchoring.ledger_anchor_pending()
    assert not publication.witness_setup().configured
    assert publication.witnesses_due() == []
    response = client.get("/ledger/checkpoint")
    assert response.status_code == 200 and response["X-Ledger-Witnessed"] == "no"
    assert response.content.decode() == Checkpoint.objects.order_by("-size").first().note
    report = ledger_verify(subjects_pass=False)
    assert report.ok and report.warnings == []
    admin = factories.UserFactory(is_superuser=True, is_staff=True)
    factories.TOTPDeviceFactory(user=admin)
    sign_in(client, admin)
    page = client.get("/admin/ledger/health/").content.decode()
    assert "the log is published without witnesses" in page


def test_a_bad_witness_configuration_is_named_not_a_crash(record_observations, settings):
    settings.LEDGER_WITNESSES = "w1=http://127.0.0.1:9=not-a-key"
    setup = publication.witness_setup()
    assert not setup.configured and setup.error
    record_observations(1)
    anchoring.ledger_anchor_pending()  # anchoring goes on
    report = ledger_verify(subjects_pass=False)
    assert report.ok and any("not usable" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("spec", "quorum"),
    [("w1=http://x", ""), ("w1=http://x=k", "3"), ("w1=http://x=k", "many")],
)
def test_witness_settings_are_checked(spec, quorum):
    with pytest.raises(publication.WitnessConfigError):
        publication.witnesses_policy_text(spec, quorum)


# --- cosigning -------------------------------------------------------------------------------


def test_witnesses_cosign_and_receipts_carry_their_cosignatures(
    witnesses, record_observations, client
):
    for w in witnesses:
        w.start()
    record_observations(5)
    anchoring.ledger_anchor_pending()
    assert _cosign_all() == {"w1": "cosigned", "w2": "cosigned"}
    assert _cosign_all() == {"w1": "current", "w2": "current"}  # idempotent
    latest = Checkpoint.objects.order_by("-size").first()
    assert publication.checkpoint_witnessed() == latest
    # The public checkpoint: the log's note with both cosignatures; the policy accepts it,
    # and a reader who knows only the log's key still verifies it.
    response = client.get("/ledger/checkpoint")
    assert response["X-Ledger-Witnessed"] == "yes"
    served = response.content.decode()
    assert served.startswith(latest.note) and served.count("\n— ") == 3
    result = _policy(witnesses).require(served)
    assert set(result.cosignatures) == {"w1", "w2"}
    assert note.open_checkpoint(served, log_signer().verifier()).size == latest.size
    # A receipt: from the smallest witnessed checkpoint holding the entry, cosigned.
    event = Event.objects.filter(status=Event.ANCHORED).order_by("id").first()
    receipt = receipt_for_event(event=event)
    assert _policy(witnesses).require(receipt["checkpoint"]).satisfied
    # More entries, cosigned again: the first event's receipt stays on the smaller checkpoint.
    record_observations(3)
    anchoring.ledger_anchor_pending()
    assert _cosign_all() == {"w1": "cosigned", "w2": "cosigned"}
    again = receipt_for_event(event=event)
    assert note.open_checkpoint(again["checkpoint"], log_signer().verifier()).size == latest.size


def test_the_standalone_verifier_checks_a_cosigned_receipt(
    witnesses, record_observations, tmp_path, client, sign_in
):
    from tests import factories

    for w in witnesses:
        w.start()
    record_observations(3)
    anchoring.ledger_anchor_pending()
    _cosign_all()
    event = Event.objects.order_by("id").first()
    auditor = factories.UserFactory(is_superuser=True, is_staff=True)
    factories.TOTPDeviceFactory(user=auditor)
    sign_in(client, auditor)
    url = f"/ledger/events/{event.event_id}/receipt"
    (tmp_path / "receipt.json").write_bytes(client.get(url).content)
    proof = client.get(url + "?format=tlog-proof&download=1")
    assert proof["Content-Disposition"].endswith('.tlog-proof"')
    (tmp_path / "receipt.tlog-proof").write_bytes(proof.content)
    policy_file = tmp_path / "policy.txt"
    policy_file.write_text(
        f"log {log_signer().vkey()}\n"
        + publication.witnesses_policy_text(",".join(w.spec() for w in witnesses), "2")
    )

    def verify(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ledger.verifier", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    for name in ("receipt.json", "receipt.tlog-proof"):
        run = verify(str(tmp_path / name), "--policy", str(policy_file))
        assert run.returncode == 0, run.stderr
        assert "w1" in run.stdout and "w2" in run.stdout, run.stdout
        # With only the log's key it still verifies (the cosignatures are extra lines).
        run = verify(str(tmp_path / name), "--key", log_signer().vkey())
        assert run.returncode == 0, run.stderr
    # A witness the receipt lacks: the quorum is not met.
    other = cosignature.CosignatureSigner.generate("witness.test/other").vkey()
    run = verify(
        str(tmp_path / "receipt.json"), "--key", log_signer().vkey(),
        "--witness", witnesses[0].vkey, "--witness", other,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout


def test_a_stale_size_is_resynchronised_by_the_409(witnesses, record_observations):
    for w in witnesses:
        w.start()
    record_observations(4)
    anchoring.ledger_anchor_pending()
    _cosign_all()
    # The portal forgets what the witnesses hold (a restored database, say): they say 409.
    WitnessState.objects.update(size=0)
    record_observations(2)
    anchoring.ledger_anchor_pending()
    assert _cosign_all() == {"w1": "cosigned", "w2": "cosigned"}
    assert publication.checkpoint_witnessed() == Checkpoint.objects.order_by("-size").first()


def test_witnesses_cosign_the_checkpoint_publish_chose_while_newer_ones_are_cut(
    witnesses, record_observations
):
    """Under a stream of checkpoints each witness's task once sent the latest of its own
    moment: the two cosigned different checkpoints and the 2-of-2 quorum was never met."""
    for w in witnesses:
        w.start()
    record_observations(2)
    anchoring.ledger_anchor_pending()
    chosen = publication.checkpoint_to_publish()
    first, second = publication.witness_states_sync()
    assert publication.witness_cosign(witness_id=first.pk, checkpoint_id=chosen) == "cosigned"
    record_observations(2)
    anchoring.ledger_anchor_pending()  # a newer checkpoint before the second task runs
    newest = publication.checkpoint_to_publish()
    assert newest != chosen
    assert publication.witness_cosign(witness_id=second.pk, checkpoint_id=chosen) == "cosigned"
    witnessed = publication.checkpoint_witnessed()
    assert witnessed is not None and witnessed.pk == chosen
    # The next round sends both the newest one; with no checkpoint named, the latest.
    assert publication.witness_cosign(witness_id=first.pk, checkpoint_id=newest) == "cosigned"
    assert publication.witness_cosign(witness_id=second.pk) == "cosigned"
    assert publication.checkpoint_witnessed().pk == newest


def test_no_round_starts_while_a_witness_has_not_answered_the_last(witnesses, record_observations):
    """Rounds cut faster than the publisher ran them piled up in its queue, and witnesses
    sent rounds one at a time fell out of step (each cosigned checkpoints the other did not):
    a round is sent to every witness at once, and the next waits for their answers."""
    for w in witnesses:
        w.start()
    record_observations(2)
    anchoring.ledger_anchor_pending()
    chosen, due = publication.publication_round_start()
    assert len(due) == 2
    record_observations(2)
    anchoring.ledger_anchor_pending()
    assert publication.publication_round_start() == (publication.checkpoint_to_publish(), [])
    first, second = due
    assert publication.witness_cosign(witness_id=first, checkpoint_id=chosen) == "cosigned"
    newest, again = publication.publication_round_start()
    assert newest != chosen and again == []  # the other's task is still out
    assert publication.witness_cosign(witness_id=second, checkpoint_id=chosen) == "cosigned"
    assert publication.checkpoint_witnessed().pk == chosen
    assert sorted(publication.publication_round_start()[1]) == sorted(due)
    # Tasks that never answer (lost) hold the round back only until their leases pass.
    record_observations(1)
    anchoring.ledger_anchor_pending()
    assert publication.publication_round_start()[1] == []
    WitnessState.objects.update(next_attempt_at=timezone.now())
    assert sorted(publication.publication_round_start()[1]) == sorted(due)


def _anchored_size() -> int:
    return LogHead.objects.get(pk=1).size


@pytest.mark.worker
def test_a_witness_down_delays_only_publication(tmp_path, settings, start_worker, hospital_a):
    w1, w2 = WitnessProcess(tmp_path, "w1"), WitnessProcess(tmp_path, "w2")
    settings.LEDGER_WITNESSES = ",".join(w.spec() for w in (w1, w2))
    settings.LEDGER_WITNESS_QUORUM = "2"
    try:
        w1.start()  # w2 is down
        worker = start_worker(extra_env=_env((w1, w2)))
        from tests import factories

        patient = factories.PatientFactory(hospital=hospital_a)
        from ledger import events

        for _ in range(5):
            events.event_record(
                kind="chart.read", hospital=patient.hospital_id, subject=patient, actor=None,
                patient=patient,
            )  # fmt: skip
        total = Event.objects.count()
        # Anchoring does not wait for the witness that is down.
        wait_until(lambda: Entry.objects.count() == total, timeout=60, message=worker.output)
        wait_until(
            lambda: WitnessState.objects.filter(name="w1", size=total).exists(),
            timeout=60, message=worker.output,
        )  # fmt: skip
        wait_until(
            lambda: WitnessState.objects.filter(name="w2", attempts__gte=1).exists(),
            timeout=60, message=worker.output,
        )  # fmt: skip
        assert publication.checkpoint_witnessed() is None  # 1 of 2: not witnessed
        down = WitnessState.objects.get(name="w2")
        assert down.last_error and not down.stopped and down.next_attempt_at is not None
        # w2 comes back: the retries catch up, the latest checkpoint is witnessed.
        w2.start()
        wait_until(
            lambda: (cp := publication.checkpoint_witnessed()) is not None and cp.size == total,
            timeout=90, message=worker.output,
        )  # fmt: skip
        assert WitnessState.objects.get(name="w2").last_error == ""
    finally:
        w1.stop()
        w2.stop()


# --- a cut tail and a fork -----------------------------------------------------------------


def _cut_tail(keep: int) -> None:
    """What an insider with the database owner's role does: delete the newest entries with
    their nodes, checkpoints (and cosignatures) and events, and rewind the head."""
    head_chain = bytes(Entry.objects.get(index=keep - 1).chain_hash)
    event_ids = list(Entry.objects.filter(index__gte=keep).values_list("event_id", flat=True))
    marks = ", ".join(["%s"] * len(event_ids))
    tamper(
        "DELETE FROM ledger_cosignature WHERE checkpoint_id IN "
        "(SELECT id FROM ledger_checkpoint WHERE size > %s)",
        (keep,),
    )
    tamper("DELETE FROM ledger_checkpoint WHERE size > %s", (keep,))
    tamper('DELETE FROM ledger_entry WHERE "index" >= %s', (keep,))
    # A node (level l, index i) covers leaves [i * 2**l, (i + 1) * 2**l).
    with connection.cursor() as cursor:
        cursor.execute('SELECT level, "index" FROM ledger_node')
        gone = [(lv, ix) for lv, ix in cursor.fetchall() if (ix + 1) * (1 << lv) > keep]
    for level, index in gone:
        tamper('DELETE FROM ledger_node WHERE level = %s AND "index" = %s', (level, index))
    tamper(f"DELETE FROM ledger_event WHERE id IN ({marks})", tuple(event_ids))
    tamper("UPDATE ledger_loghead SET size = %s, chain_hash = %s", (keep, head_chain))
    if not Checkpoint.objects.filter(size=keep).exists():
        # The insider holds the log's key too: the rewound head gets its own signed checkpoint.
        root = merkle.root_hash(keep, merkle_nodes_fetch)
        anchoring.checkpoint_cut(size=keep, root=root, now=timezone.now())


def test_a_cut_tail_is_named_by_verify_ledger_with_the_witness_checkpoint(
    witnesses, record_observations
):
    for w in witnesses:
        w.start()
    record_observations(6)
    anchoring.ledger_anchor_pending(batch_size=3)
    assert _cosign_all() == {"w1": "cosigned", "w2": "cosigned"}
    size = Entry.objects.count()
    _cut_tail(size - 4)
    # The log alone looks intact: only someone outside remembers the larger checkpoint.
    report = ledger_verify(subjects_pass=False)
    named = [f for f in report.findings if f.kind == "witness"]
    assert {f.ref for f in named} == {"w1", "w2"}, report.findings
    assert all(f"cosigned size {size}" in f.problem for f in named)
    assert all("— witness.test/" in f.problem for f in named)  # its cosigned checkpoint
    # Publication refuses to go on with a shorter log than a witness has cosigned.
    record_observations(1)
    anchoring.ledger_anchor_pending()
    outcome = _cosign_all()
    assert set(outcome.values()) == {"refused"}, outcome
    assert all(s.stopped and s.last_error for s in WitnessState.objects.all())


def test_a_fork_is_refused_by_the_witnesses_and_named(witnesses, record_observations):
    for w in witnesses:
        w.start()
    record_observations(6)
    anchoring.ledger_anchor_pending()
    assert _cosign_all() == {"w1": "cosigned", "w2": "cosigned"}
    size = Entry.objects.count()
    witnessed = publication.checkpoint_witnessed()
    assert witnessed is not None and witnessed.size == size
    _cut_tail(size - 3)
    # Another history past the cut, longer than what the witnesses cosigned, signed by the
    # log's own key: a fork.
    record_observations(5)
    anchoring.ledger_anchor_pending()
    assert Entry.objects.count() > size
    outcome = _cosign_all()
    assert set(outcome.values()) == {"refused"}, outcome
    for state in WitnessState.objects.all():
        assert state.stopped and state.last_status == 422, state.last_error
    report = ledger_verify(subjects_pass=False)
    named = [f for f in report.findings if f.kind == "witness"]
    assert {f.ref for f in named} == {"w1", "w2"}, report.findings
    assert all("fork" in f.problem and f"cosigned size {size}" in f.problem for f in named)


def test_a_witness_that_cannot_be_reached_is_a_warning_for_verify_ledger(
    witnesses, record_observations
):
    witnesses[0].start()  # w2 never starts
    record_observations(2)
    anchoring.ledger_anchor_pending()
    _cosign_all()
    report = ledger_verify(subjects_pass=False)
    assert report.ok, report.findings
    assert any("w2" in w and "could not be asked" in w for w in report.warnings)


def test_health_page_names_the_witnesses(witnesses, record_observations, client, sign_in):
    from tests import factories

    witnesses[0].start()
    record_observations(2)
    anchoring.ledger_anchor_pending()
    _cosign_all()
    admin = factories.UserFactory(is_superuser=True, is_staff=True)
    factories.TOTPDeviceFactory(user=admin)
    sign_in(client, admin)
    page = client.get("/admin/ledger/health/").content.decode()
    assert "w1" in page and "w2" in page and "2 of 2" in page
    assert "retrying" in page  # w2 is down
    # Auditors also read the cosignatures and the witnesses' states, read-only.
    listing = client.get("/admin/ledger/cosignature/")
    assert listing.status_code == 200 and "w1" in listing.content.decode()
    assert client.get("/admin/ledger/witnessstate/").status_code == 200
    cosig = Cosignature.objects.get()
    assert client.post(f"/admin/ledger/cosignature/{cosig.pk}/delete/").status_code in (403, 404)
    assert Cosignature.objects.filter(pk=cosig.pk).exists()


def test_patient_sees_which_accesses_are_witnessed(
    witnesses, patient_with_login, clinician_a, client, sign_in
):
    from ledger import events

    for w in witnesses:
        w.start()
    user, patient = patient_with_login
    events.event_record(
        kind="chart.read", hospital=patient.hospital_id, subject=patient, actor=clinician_a,
        patient=patient, attrs={"purpose": "TREAT"},
    )  # fmt: skip
    anchoring.ledger_anchor_pending()
    sign_in(client, user)
    assert "not witnessed yet" in client.get("/patient/access/").content.decode()
    _cosign_all()
    page = client.get("/patient/access/").content.decode()
    assert "witnessed</span>" in page and "not witnessed yet" not in page


def test_patient_verify_page_names_the_witnesses_that_cosigned(
    witnesses, patient_with_login, clinician_a, client, sign_in
):
    from ledger import events

    for w in witnesses:
        w.start()
    user, patient = patient_with_login
    read = events.event_record(
        kind="chart.read", hospital=patient.hospital_id, subject=patient, actor=clinician_a,
        patient=patient, attrs={"purpose": "TREAT"},
    )  # fmt: skip
    anchoring.ledger_anchor_pending()
    sign_in(client, user)
    page = client.get(f"/patient/access/{read.event_id}/verify/").content.decode()
    assert "Verified:" in page and "Not witnessed yet" in page
    _cosign_all()
    page = client.get(f"/patient/access/{read.event_id}/verify/").content.decode()
    assert "Witnessed:" in page
    listed = page.split('id="cosigned-by"')[1].split("</ul>")[0]
    assert listed.count("<li>") == len(witnesses)


def test_cosignatures_are_append_only(witnesses, record_observations):
    witnesses[0].start()
    record_observations(2)
    anchoring.ledger_anchor_pending()
    _cosign_all()
    cosig = Cosignature.objects.get()
    with pytest.raises(AppendOnlyError):
        Cosignature.objects.filter(pk=cosig.pk).update(line="x")
    with pytest.raises(AppendOnlyError):
        cosig.delete()
    if connection.vendor == "postgresql":
        for sql in ("UPDATE ledger_cosignature SET line = 'x'", "DELETE FROM ledger_cosignature"):
            with (
                pytest.raises(DatabaseError, match="append-only"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(sql)
    assert Cosignature.objects.get().line == cosig.line


def test_a_witness_that_refuses_the_log_is_stopped_and_named(
    witnesses, record_observations, client, sign_in
):
    from tests import factories

    # w1 witnesses another log only (404), w2 this origin under another key (403).
    other = note.Signer.generate("another.example/log")
    witnesses[0].start(log=f"{other.name}={other.vkey()}")
    witnesses[1].start(log=f"{log_origin()}={note.Signer.generate(log_origin()).vkey()}")
    record_observations(2)
    anchoring.ledger_anchor_pending()
    assert _cosign_all() == {"w1": "refused", "w2": "refused"}
    states = {s.name: s for s in WitnessState.objects.all()}
    assert (states["w1"].last_status, states["w2"].last_status) == (404, 403)
    assert all(s.stopped for s in states.values())
    # Not asked again on every checkpoint: only after STOPPED_RETRY (or a new URL or key).
    assert publication.witnesses_due() == []
    admin = factories.UserFactory(is_superuser=True, is_staff=True)
    factories.TOTPDeviceFactory(user=admin)
    sign_in(client, admin)
    page = client.get("/admin/ledger/health/").content.decode()
    assert page.count("<strong>stopped</strong>") == 2 and "HTTP 404" in page and "HTTP 403" in page


class _NoMonitoringProxy:
    """A witness without the monitoring GET (tlog-witness makes it a SHOULD): POSTs go to the
    real witness behind it, every GET is a 404."""

    def __init__(self, target: str) -> None:
        import http.server
        import threading
        import urllib.error
        import urllib.request

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_error(404)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = urllib.request.Request(target + self.path, data=body, method="POST")  # noqa: S310
                try:
                    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
                        status, data = answer.status, answer.read()
                except urllib.error.HTTPError as exc:
                    status, data = exc.code, exc.read()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_witness_without_the_monitoring_endpoint_is_asked_its_size_by_a_409(
    witnesses, record_observations, settings
):
    w1 = witnesses[0].start()
    proxy = _NoMonitoringProxy(w1.url)
    try:
        settings.LEDGER_WITNESSES = f"w1={proxy.url}={w1.vkey}"
        settings.LEDGER_WITNESS_QUORUM = "1"
        record_observations(5)
        anchoring.ledger_anchor_pending()
        assert _cosign_all() == {"w1": "cosigned"}
        size = Entry.objects.count()
        _cut_tail(size - 2)
        report = ledger_verify(subjects_pass=False)
        named = [f for f in report.findings if f.kind == "witness"]
        assert [f.ref for f in named] == ["w1"], (report.findings, report.warnings)
        assert f"cosigned a tree of size {size} (its 409 answer)" in named[0].problem
    finally:
        proxy.close()
