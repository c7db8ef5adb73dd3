"""python -m ledger.witness as a real process on loopback, over HTTP (c2sp.org/tlog-witness).

No Django and no database server: the witness is a subprocess with its own SQLite file.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import shutil
import sqlite3
import stat
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import merkle, note
from ledger.cosignature import CosignatureSigner, CosignatureVerifier, verify_cosignatures
from ledger.witness import Witness

REPO = Path(__file__).resolve().parents[2]
EM = "\u2014"
ORIGIN = "hospital.example/ledger"


# --------------------------------------------------------------------------------------------
# A small log to feed the witness (real RFC 9162 trees, real signatures)
# --------------------------------------------------------------------------------------------


@dataclass
class Log:
    signer: note.Signer
    leaves: list[bytes] = field(default_factory=list)

    def _nodes(self, leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
        nodes = {(0, i): merkle.leaf_hash(leaf) for i, leaf in enumerate(leaves)}
        level = 0
        while True:
            width = len(leaves) >> level
            if width < 2:
                return nodes
            for i in range(width // 2):
                nodes[(level + 1, i)] = merkle.node_hash(
                    nodes[(level, 2 * i)], nodes[(level, 2 * i + 1)]
                )
            level += 1

    def grow(self, size: int, tag: bytes = b"") -> None:
        self.leaves += [b"leaf %d%s" % (i, tag) for i in range(len(self.leaves), size)]

    def root(self, size: int) -> bytes:
        nodes = self._nodes(self.leaves[:size])
        return merkle.root_hash(size, lambda ids: {i: nodes[i] for i in ids})

    def proof(self, old: int, new: int) -> list[bytes]:
        nodes = self._nodes(self.leaves[:new])
        return merkle.consistency_proof(old, new, lambda ids: {i: nodes[i] for i in ids})

    def checkpoint(self, size: int) -> str:
        return self.signer.sign_note(note.Checkpoint(ORIGIN, size, self.root(size)).body())

    def body(self, old: int, new: int, proof: list[bytes] | None = None) -> bytes:
        hashes = self.proof(old, new) if proof is None else proof
        lines = "".join(base64.b64encode(h).decode() + "\n" for h in hashes)
        return f"old {old}\n{lines}\n{self.checkpoint(new)}".encode()


@dataclass
class WitnessProcess:
    proc: subprocess.Popen[str]
    port: int
    vkey: str

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, str, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type") or "", resp.read().decode()
        finally:
            conn.close()

    def add(self, body: bytes) -> tuple[int, str, str]:
        return self.request("POST", "/add-checkpoint", body)

    def stop(self) -> str:
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=20)
        return err


def run_witness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger.witness", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start_witness(tmp: Path, key: Path, log_vkey: str, *extra: str) -> WitnessProcess:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ledger.witness",
            "serve",
            "--db",
            str(tmp / "witness.sqlite3"),
            "--key",
            str(key),
            "--log",
            log_vkey,
            "--listen",
            "127.0.0.1:0",
            *extra,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening http://127.0.0.1:"):
        _, err = proc.communicate(timeout=20)
        raise AssertionError(f"witness did not start: {line!r} {err}")
    vkey = CosignatureSigner.from_string(key.read_text()).vkey()
    return WitnessProcess(proc, int(line.rsplit(":", 1)[1]), vkey)


@pytest.fixture
def log() -> Log:
    return Log(note.Signer.generate(ORIGIN))


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "witness.key"
    path.write_text(CosignatureSigner.generate("witness.example/w1").to_string() + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def witness(tmp_path: Path, key: Path, log: Log) -> Iterator[WitnessProcess]:
    w = start_witness(tmp_path, key, log.signer.vkey())
    yield w
    w.stop()


@pytest.fixture(scope="module")
def shared_witness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WitnessProcess]:
    """One witness for tests that never advance it (one process start instead of many)."""
    tmp = tmp_path_factory.mktemp("shared")
    path = tmp / "witness.key"
    path.write_text(CosignatureSigner.generate("witness.example/shared").to_string() + "\n")
    w = start_witness(tmp, path, note.Signer.generate(ORIGIN).vkey())
    yield w
    w.stop()


def verify_by_hand(vkey: str, checkpoint_note: str, line: str) -> int:
    """The cosignature checked from the spec's words alone, with `cryptography` directly."""
    name, hex_id, key_b64 = vkey.split("+", 2)
    key = base64.b64decode(key_b64)
    assert key[0] == 0x04 and len(key) == 33
    assert int(hex_id, 16) == int.from_bytes(
        hashlib.sha256(f"{name}\n".encode() + key).digest()[:4]
    )
    assert line.startswith(f"{EM} {name} ") and line.endswith("\n")
    raw = base64.b64decode(line[len(f"{EM} {name} ") : -1], validate=True)
    assert raw[:4] == bytes.fromhex(hex_id) and len(raw) == 4 + 8 + 64
    timestamp = struct.unpack(">Q", raw[4:12])[0]
    body = checkpoint_note[: checkpoint_note.rindex("\n\n") + 1]
    message = b"cosignature/v1\n" + f"time {timestamp}\n".encode() + body.encode()
    Ed25519PublicKey.from_public_bytes(key[1:]).verify(raw[12:], message)  # raises if invalid
    return timestamp


# --------------------------------------------------------------------------------------------
# Normal operation
# --------------------------------------------------------------------------------------------


def test_add_checkpoint_cosigns_append_only_growth(witness: WitnessProcess, log: Log) -> None:
    log.grow(5)
    status, _, body = witness.add(log.body(0, 5))
    assert status == 200, body
    first = verify_by_hand(witness.vkey, log.checkpoint(5), body)
    assert first > 1_600_000_000
    log.grow(13)
    status, _, body = witness.add(log.body(5, 13))
    assert status == 200, body
    assert verify_by_hand(witness.vkey, log.checkpoint(13), body) >= first
    # The response appended to the checkpoint is a cosigned note for our own verifier too.
    found = verify_cosignatures(
        log.checkpoint(13) + body, [CosignatureVerifier.from_string(witness.vkey)]
    )
    assert [c.name for c in found] == ["witness.example/w1"]


def test_monitoring_endpoints_serve_the_cosigned_checkpoint(
    witness: WitnessProcess, log: Log
) -> None:
    origin_hash = hashlib.sha256(ORIGIN.encode()).hexdigest()
    assert witness.request("GET", f"/{origin_hash}/checkpoint")[0] == 404
    log.grow(3)
    assert witness.add(log.body(0, 3))[0] == 200
    status, _, served = witness.request("GET", f"/{origin_hash}/checkpoint")
    assert status == 200
    assert note.open_checkpoint(served, log.signer.verifier()).size == 3
    assert verify_cosignatures(served, [CosignatureVerifier.from_string(witness.vkey)])
    by_origin = witness.request("GET", "/checkpoint?origin=" + ORIGIN)
    assert by_origin[:1] == (200,) and by_origin[2] == served
    assert witness.request("GET", "/checkpoint?origin=other")[0] == 404
    assert witness.request("GET", "/vkey")[2].strip() == witness.vkey


def test_same_checkpoint_again_is_cosigned_again(witness: WitnessProcess, log: Log) -> None:
    log.grow(4)
    assert witness.add(log.body(0, 4))[0] == 200
    status, _, body = witness.add(log.body(4, 4))
    assert status == 200
    verify_by_hand(witness.vkey, log.checkpoint(4), body)


def test_empty_tree(witness: WitnessProcess, log: Log) -> None:
    assert witness.add(log.body(0, 0))[0] == 200
    body = log.signer.sign_note(note.Checkpoint(ORIGIN, 0, bytes(32)).body())
    status, _, text = witness.add(f"old 0\n\n{body}".encode())
    assert status == 422, text


# --------------------------------------------------------------------------------------------
# Refusals, with the codes of the spec
# --------------------------------------------------------------------------------------------


def test_stale_old_size_gets_409_with_the_witness_size(witness: WitnessProcess, log: Log) -> None:
    log.grow(9)
    assert witness.add(log.body(0, 5))[0] == 200
    for old in (0, 3, 6):
        status, content_type, body = witness.add(log.body(old, 9))
        assert (status, content_type, body) == (409, "text/x.tlog.size", "5\n")


def test_bad_consistency_proofs_get_422(witness: WitnessProcess, log: Log) -> None:
    log.grow(11)
    assert witness.add(log.body(0, 6))[0] == 200
    proof = log.proof(6, 11)
    tampered = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    for bad in (tampered, proof[:-1], [*proof, proof[0]], []):
        status, _, text = witness.add(log.body(6, 11, bad))
        assert status == 422, (bad, text)
    assert witness.add(log.body(6, 11))[0] == 200  # nothing above advanced the witness


def test_nonempty_proof_from_size_zero_gets_422(witness: WitnessProcess, log: Log) -> None:
    log.grow(4)
    status, _, _ = witness.add(log.body(0, 4, [bytes(32)]))
    assert status == 422


def test_unknown_origin_404_and_untrusted_or_bad_signature_403(
    witness: WitnessProcess, log: Log
) -> None:
    stranger = Log(note.Signer.generate("elsewhere.example/log"))
    stranger.grow(2)
    body = stranger.signer.sign_note(
        note.Checkpoint("elsewhere.example/log", 2, stranger.root(2)).body()
    )
    assert witness.add(f"old 0\n\n{body}".encode())[0] == 404
    impostor = Log(note.Signer.generate(ORIGIN))  # the right origin, another key
    impostor.grow(2)
    assert witness.add(impostor.body(0, 2))[0] == 403
    log.grow(2)
    good = log.checkpoint(2)
    text, sigs = note.split_note(good)
    raw = bytearray(sigs[0].key_id.to_bytes(4, "big") + sigs[0].signature)
    raw[-1] ^= 1
    broken = f"{text}\n{EM} {ORIGIN} {base64.b64encode(bytes(raw)).decode()}\n"
    assert witness.add(f"old 0\n\n{broken}".encode())[0] == 403


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"old 0\n",
        b"old 01\n\nx\n",
        b"old -1\n\nx\n",
        b"new 0\n\nx\n",
        b"old 0\nnot base64\n\nx\n",
        b"old 0\nAAAA\n\nx\n",
        b"\xff\xfe",
        b"old 0\n" + b"".join(base64.b64encode(bytes(32)) + b"\n" for _ in range(64)) + b"\nx\n",
    ],
)
def test_malformed_requests_get_400(shared_witness: WitnessProcess, body: bytes) -> None:
    assert shared_witness.add(body)[0] == 400


def test_old_size_above_checkpoint_size_gets_400(witness: WitnessProcess, log: Log) -> None:
    log.grow(5)
    assert witness.add(log.body(0, 5))[0] == 200
    assert witness.add(f"old 5\n\n{log.checkpoint(3)}".encode())[0] == 400


def test_fork_of_the_same_size_is_refused_and_kept_as_evidence(
    tmp_path: Path, witness: WitnessProcess, log: Log
) -> None:
    log.grow(8)
    assert witness.add(log.body(0, 8))[0] == 200
    forked = Log(log.signer, [*log.leaves[:7], b"rewritten"])
    status, _, text = witness.add(forked.body(8, 8, []))
    assert status == 422 and "fork" in text
    # Sent with a stale old size it is a 409 (the log resynchronises), but kept as evidence.
    assert witness.add(forked.body(3, 8))[:3] == (409, "text/x.tlog.size", "8\n")
    # A different history that is larger: no valid consistency proof exists from size 8.
    forked.grow(12, b"x")
    assert witness.add(forked.body(8, 12))[0] == 422
    err = witness.stop()
    assert "fork" in err
    with sqlite3.connect(tmp_path / "witness.sqlite3") as db:
        reasons = [r for (r,) in db.execute("SELECT reason FROM evidence")]
        assert len(reasons) == 3
        assert [r.startswith("fork") for r in reasons] == [True, True, False]
        assert db.execute("SELECT size FROM log_state").fetchone() == (8,)


def test_concurrent_requests_at_the_same_old_size_advance_once(
    witness: WitnessProcess, log: Log
) -> None:
    log.grow(30)
    assert witness.add(log.body(0, 10))[0] == 200
    bodies = [log.body(10, new) for new in range(11, 27)]
    barrier = threading.Barrier(len(bodies))
    results: list[tuple[int, str, str]] = []
    lock = threading.Lock()

    def send(body: bytes) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", witness.port, timeout=30)
        conn.connect()
        barrier.wait()
        conn.request("POST", "/add-checkpoint", body=body)
        resp = conn.getresponse()
        with lock:
            results.append(
                (resp.status, resp.getheader("Content-Type") or "", resp.read().decode())
            )
        conn.close()

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r[0] == 200]
    assert len(winners) == 1
    won_size = next(
        new
        for new in range(11, 27)
        if _quiet_verify(log.checkpoint(new), winners[0][2], witness.vkey)
    )
    assert sorted(r[0] for r in results) == [200] + [409] * (len(bodies) - 1)
    assert {r[2] for r in results if r[0] == 409} == {f"{won_size}\n"}


def _quiet_verify(checkpoint_note: str, line: str, vkey: str) -> bool:
    try:
        verify_by_hand(vkey, checkpoint_note, line)
    except Exception:  # any failure means "not this checkpoint"
        return False
    return True


# --------------------------------------------------------------------------------------------
# State: a restored backup, the journal
# --------------------------------------------------------------------------------------------


def _backup(db: Path, to: Path) -> None:
    with sqlite3.connect(db) as src, sqlite3.connect(to) as dst:
        src.backup(dst)


def test_witness_restored_from_backup_never_goes_back_from_what_it_holds(
    tmp_path: Path, key: Path, log: Log
) -> None:
    db = tmp_path / "witness.sqlite3"
    w = start_witness(tmp_path, key, log.signer.vkey(), "--no-journal")
    log.grow(12)
    assert w.add(log.body(0, 5))[0] == 200
    _backup(db, tmp_path / "backup.sqlite3")
    assert w.add(log.body(5, 9))[0] == 200
    assert w.add(log.body(9, 12))[0] == 200
    w.stop()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy(tmp_path / "backup.sqlite3", db)
    w = start_witness(tmp_path, key, log.signer.vkey(), "--no-journal")
    try:
        # The log (honest, at 12) resynchronises through the 409...
        assert w.add(log.body(12, 12)) == (409, "text/x.tlog.size", "5\n")
        # ...and a smaller tree or a fork of what the restored state holds is still refused.
        assert w.add(log.body(3, 3)) == (409, "text/x.tlog.size", "5\n")
        assert w.add(f"old 5\n\n{log.checkpoint(3)}".encode())[0] == 400
        forked = Log(log.signer, [*log.leaves[:4], b"other"])
        assert w.add(forked.body(5, 5, []))[0] == 422
        assert w.add(log.body(5, 12))[0] == 200
    finally:
        w.stop()


def test_journal_catches_a_restored_database_and_recover_brings_it_forward(
    tmp_path: Path, key: Path, log: Log
) -> None:
    db = tmp_path / "witness.sqlite3"
    args = ()  # the journal is on by default, next to the database
    w = start_witness(tmp_path, key, log.signer.vkey(), *args)
    log.grow(12)
    assert w.add(log.body(0, 5))[0] == 200
    _backup(db, tmp_path / "backup.sqlite3")
    assert w.add(log.body(5, 12))[0] == 200
    w.stop()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy(tmp_path / "backup.sqlite3", db)
    with pytest.raises(AssertionError, match="restored from an old backup"):
        start_witness(tmp_path, key, log.signer.vkey(), *args)
    assert Path(f"{db}.journal").exists()
    common = ("--db", str(db), "--key", str(key), "--log", log.signer.vkey(), *args)
    done = run_witness("recover", *common)
    assert done.returncode == 0, done.stderr
    assert "size 5 -> 12" in done.stdout
    w = start_witness(tmp_path, key, log.signer.vkey(), *args)
    try:
        # Back at 12: a fork of the part it had forgotten is refused again.
        forked = Log(log.signer, [*log.leaves[:10], b"x", b"y"])
        forked.grow(14, b"f")
        assert w.add(forked.body(12, 12, []))[0] == 422
        assert w.add(log.body(5, 12))[:3] == (409, "text/x.tlog.size", "12\n")
    finally:
        w.stop()


# --------------------------------------------------------------------------------------------
# Interoperability: requests made by Go implementations
# --------------------------------------------------------------------------------------------

# From filippo.io/torchwood cmd/litewitness/testdata/litewitness.txt: a Sigsum log (Go signer)
# and its add-checkpoint requests.  Sigsum names a log by the SHA-256 of its key.
SIGSUM_KEY = bytes.fromhex("ffdc2d4d98e4124d3feaf788c0c2f9abfd796083d1f0495437f302ec79cf100f")
SIGSUM_ORIGIN = "sigsum.org/v1/tree/" + hashlib.sha256(SIGSUM_KEY).hexdigest()
P1 = "KgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
P2 = "KgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
SIZE1 = (
    f"{SIGSUM_ORIGIN}\n1\nKgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n{EM} {SIGSUM_ORIGIN} "
    "UgIom7fPZTqpxWWhyjWduBvTvGVqsokMbqTArsQilegKoFBJQjUFAmQ0+YeSPM3wfUQMFSzVnnNuWRTYrajXpNUbIQY=\n"
)
SIZE3 = (
    f"{SIGSUM_ORIGIN}\n3\nRcCI1Nk56ZcSmIEfIn0SleqtV7uvrlXNccFx595Iwl0=\n\n{EM} {SIGSUM_ORIGIN} "
    "UgIom2VbtIcdFbwFAy1n7s6IkAxIY6J/GQOTuZF2ORV39d75cbAj2aQYwyJre36kezNobZs4SUUdrcawfAB8WVrx6go=\n"
)


def test_requests_from_the_litewitness_test_suite(tmp_path: Path, key: Path) -> None:
    vkey = note.Verifier.from_public_key(SIGSUM_ORIGIN, SIGSUM_KEY).to_string()
    w = start_witness(tmp_path, key, vkey)
    try:
        status, _, body = w.add(f"old 0\n\n{SIZE1}".encode())
        assert status == 200 and body.startswith(f"{EM} witness.example/w1 ")
        verify_by_hand(w.vkey, SIZE1, body)
        bad_sig = SIZE3.replace("6go=\n", "6gx=\n")
        assert w.add(f"old 1\n{P1}{P2}\n{bad_sig}".encode())[0] in (400, 403)
        other = SIZE3.replace("e562\n", "e563\n", 1)
        assert w.add(f"old 1\n{P1}{P2}\n{other}".encode())[0] == 404  # litewitness says 403
        assert w.add(f"old 1\n\n{SIZE3}".encode())[0] == 422
        wrong = P2.replace("AAAAAAAA=", "AAAAAABA=")
        assert w.add(f"old 1\n{P1}{wrong}\n{SIZE3}".encode())[0] == 422
        status, _, body = w.add(f"old 1\n{P1}{P2}\n{SIZE3}".encode())
        assert status == 200
        verify_by_hand(w.vkey, SIZE3, body)
    finally:
        w.stop()


# --------------------------------------------------------------------------------------------
# Command line and independence from Django
# --------------------------------------------------------------------------------------------


def test_keygen_writes_a_private_file_and_prints_the_vkey(tmp_path: Path) -> None:
    path = tmp_path / "k"
    done = run_witness("keygen", "--name", "w.example", "--out", str(path))
    assert done.returncode == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    vkey = done.stdout.strip()
    assert run_witness("vkey", "--key", str(path)).stdout.strip() == vkey
    assert CosignatureVerifier.from_string(vkey).name == "w.example"
    assert CosignatureSigner.from_string(path.read_text()).vkey() == vkey
    assert "PRIVATE" not in done.stdout + done.stderr
    again = run_witness("keygen", "--name", "w.example", "--out", str(path))
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    bad = run_witness("keygen", "--name", "has space", "--out", str(tmp_path / "k2"))
    assert bad.returncode == 2 and "invalid witness name" in bad.stderr


def test_a_witness_with_an_ed25519_and_an_ml_dsa_key_answers_both_lines(
    tmp_path: Path, key: Path, log: Log
) -> None:
    pytest.importorskip("cryptography.hazmat.primitives.asymmetric.mldsa")
    pq_key = tmp_path / "pq.key"
    done = run_witness(
        "keygen", "--name", "pq.example/w1", "--alg", "ml-dsa-44", "--out", str(pq_key)
    )
    assert done.returncode == 0, done.stderr
    pq_vkey = done.stdout.strip()
    w = start_witness(tmp_path, key, log.signer.vkey(), "--key", str(pq_key))
    try:
        log.grow(3)
        status, _, body = w.add(log.body(0, 3))
        assert status == 200 and len(body.splitlines()) == 2
        keys = [CosignatureVerifier.from_string(v) for v in (w.vkey, pq_vkey)]
        found = verify_cosignatures(log.checkpoint(3) + body, keys)
        assert [c.name for c in found] == ["witness.example/w1", "pq.example/w1"]
        assert found[0].timestamp == found[1].timestamp
        assert w.request("GET", "/vkey")[2].split() == [w.vkey, pq_vkey]
    finally:
        w.stop()


def test_bad_configuration_is_a_clear_error(tmp_path: Path, key: Path) -> None:
    witness_vkey = run_witness("vkey", "--key", str(key)).stdout.strip()
    done = run_witness(
        "serve", "--db", str(tmp_path / "d"), "--key", str(key), "--log", witness_vkey
    )
    assert done.returncode == 2 and "witness cosignature key" in done.stderr
    done = run_witness("serve", "--db", str(tmp_path / "d"), "--key", str(key))
    assert done.returncode == 2 and "no logs configured" in done.stderr


def test_the_witness_imports_no_django() -> None:
    code = (
        "import sys, ledger.witness, ledger.verifier, ledger.policy\n"
        "top = {m.split('.')[0] for m in sys.modules}\n"
        "bad = sorted(top & {'django', 'portal', 'consent', 'psycopg'})\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------------------------
# Whatever arrives, a clear 4xx, never an exception (in process, for speed)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Witness, Log]]:
    log = Log(note.Signer.generate(ORIGIN))
    log.grow(6)
    w = Witness(
        str(tmp_path_factory.mktemp("fuzz") / "w.sqlite3"),
        CosignatureSigner.generate("fuzz.example"),
        {ORIGIN: [log.signer.verifier()]},
    )
    assert w.add_checkpoint(log.body(0, 6))[0].status == 200
    yield w, log
    w.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_requests_never_raise(in_process: tuple[Witness, Log], data: st.DataObject) -> None:
    w, log = in_process
    body = bytearray(log.body(6, 6))
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(len(body) - 1, 0)))
        if action == "flip" and body:
            body[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del body[at:]
        else:
            body[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    response, _ = w.add_checkpoint(bytes(body))
    assert response.status in (200, 400, 403, 404, 409, 422)
    if response.status == 200:  # only an unchanged checkpoint (a harmless mutation) is cosigned
        assert w.latest(ORIGIN)[:2] == (6, log.root(6))  # type: ignore[index]
