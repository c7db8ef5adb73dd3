"""Tests for ledger.verifier: the library API and the standalone CLI (run as a subprocess)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger import merkle, note
from ledger.cosignature import CosignatureSigner, add_signature_lines
from ledger.verifier import (
    CONSISTENCY_FORMAT,
    RECEIPT_FORMAT,
    VerificationError,
    consistency_from_parts,
    load_json_document,
    main,
    parse_tlog_proof,
    receipt_from_parts,
    tlog_proof_from_parts,
    tlog_proof_from_receipt,
    verify_consistency_file,
    verify_receipt,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "portal.example/ledger"
SIZE = 1000
OLD_SIZE = 600


@dataclass
class Log:
    """A small signed log, built exactly as the server does (node rows + checkpoints)."""

    signer: note.Signer
    leaves: list[bytes]
    nodes: dict[merkle.NodeId, bytes]

    def fetch(self, ids: Any) -> dict[merkle.NodeId, bytes]:
        return {i: self.nodes[i] for i in ids if i in self.nodes}

    def checkpoint(self, size: int) -> str:
        cp = note.Checkpoint(ORIGIN, size, merkle.root_hash(size, self.fetch))
        return note.sign_checkpoint(cp, self.signer)

    def receipt(self, index: int, size: int = SIZE, **extra: Any) -> dict[str, Any]:
        return receipt_from_parts(
            index,
            self.leaves[index],
            merkle.inclusion_proof(index, size, self.fetch),
            self.checkpoint(size),
            extra or None,
        )

    def consistency(self, old: int = OLD_SIZE, new: int = SIZE) -> dict[str, Any]:
        return consistency_from_parts(
            self.checkpoint(old),
            self.checkpoint(new),
            merkle.consistency_proof(old, new, self.fetch),
        )


def make_log(signer: note.Signer, size: int, tag: bytes = b"") -> Log:
    leaves = [
        json.dumps({"seq": i, "event": "record.viewed", "tag": tag.decode()}).encode()
        for i in range(size)
    ]
    rows = merkle.new_perfect_nodes(0, [merkle.leaf_hash(x) for x in leaves], {})
    return Log(signer, leaves, {(lvl, idx): h for lvl, idx, h in rows})


@pytest.fixture(scope="module")
def signer() -> note.Signer:
    return note.Signer.generate(ORIGIN)


@pytest.fixture(scope="module")
def log(signer: note.Signer) -> Log:
    return make_log(signer, SIZE)


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory, signer: note.Signer) -> Path:
    path = tmp_path_factory.mktemp("keys") / "ledger.pub"
    path.write_text(signer.vkey() + "\n")
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ledger.verifier`` from the project root with Django made unimportable."""
    # sys.modules["django"] = None makes any "import django" raise ImportError, which is how
    # the verifier behaves on a machine without Django installed.
    code = (
        "import runpy, sys; sys.modules['django'] = None; "
        "sys.argv = ['ledger.verifier', *sys.argv[1:]]; "
        "runpy.run_module('ledger.verifier', run_name='__main__', alter_sys=True)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=PROJECT_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, indent=2))
    return path


# --------------------------------------------------------------------------------------------
# Isolation from Django
# --------------------------------------------------------------------------------------------


def test_verifier_does_not_import_django() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, ledger.verifier; "
            "assert 'django' not in sys.modules, sorted(m for m in sys.modules if 'django' in m)",
        ],
        cwd=PROJECT_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_plain_python_m_invocation(log: Log, key_file: Path, tmp_path: Path) -> None:
    """The exact documented command line, with DJANGO_SETTINGS_MODULE unset."""
    receipt = write_json(tmp_path / "r.json", log.receipt(41))
    result = subprocess.run(
        [sys.executable, "-m", "ledger.verifier", str(receipt), "--key", str(key_file)],
        cwd=PROJECT_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: entry 41 is included")


# --------------------------------------------------------------------------------------------
# Receipts: CLI
# --------------------------------------------------------------------------------------------


def test_cli_valid_receipt(log: Log, key_file: Path, tmp_path: Path, signer: note.Signer) -> None:
    receipt = write_json(tmp_path / "r.json", log.receipt(41, patient="informative only"))
    result = run_cli(receipt, "--key", key_file)
    root = base64.b64encode(merkle.root_hash(SIZE, log.fetch)).decode()
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"OK: entry 41 is included in checkpoint of size {SIZE} signed by {ORIGIN}, root {root}\n"
    )
    assert result.stderr == ""
    # --key also accepts the key string itself.
    result = run_cli(receipt, "--key", signer.vkey())
    assert result.returncode == 0, result.stderr


def _set_leaf(r: dict[str, Any]) -> None:
    leaf = bytearray(base64.b64decode(r["entry"]["leaf"]))
    leaf[5] ^= 1
    r["entry"]["leaf"] = base64.b64encode(bytes(leaf)).decode()


def _flip_proof(r: dict[str, Any]) -> None:
    h = bytearray(base64.b64decode(r["inclusion_proof"][2]))
    h[0] ^= 0x80
    r["inclusion_proof"][2] = base64.b64encode(bytes(h)).decode()


def _checkpoint_body(r: dict[str, Any]) -> None:
    # Claim a bigger tree, keep the old signature.
    r["checkpoint"] = r["checkpoint"].replace(f"\n{SIZE}\n", f"\n{SIZE + 1}\n", 1)


def _checkpoint_signature(r: dict[str, Any]) -> None:
    body, sig_line = r["checkpoint"].rsplit("\n\n", 1)
    prefix, b64 = sig_line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[20] ^= 1
    r["checkpoint"] = f"{body}\n\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n"


def _index(value: int) -> Callable[[dict[str, Any]], None]:
    def mutate(r: dict[str, Any]) -> None:
        r["entry"]["index"] = value

    return mutate


RECEIPT_TAMPERS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("leaf", _set_leaf, "inclusion proof: the leaf at index 41 does not verify"),
    ("proof element", _flip_proof, "inclusion proof"),
    ("index", _index(42), "inclusion proof"),
    ("index out of range", _index(SIZE), "out of range"),
    ("checkpoint body", _checkpoint_body, "checkpoint: invalid signature"),
    ("checkpoint signature", _checkpoint_signature, "checkpoint: invalid signature"),
    ("dropped proof element", lambda r: r["inclusion_proof"].pop(), "inclusion proof has"),
    ("format tag", lambda r: r.update(format="something-else/1"), "format"),
    ("leaf not base64", lambda r: r["entry"].update(leaf="**"), "'leaf' is not valid base64"),
    ("proof element size", lambda r: r["inclusion_proof"].__setitem__(0, "AAAA"), "not a 32-byte"),
    ("index type", _index("41"), "non-negative integer"),  # type: ignore[arg-type]
    ("checkpoint missing", lambda r: r.pop("checkpoint"), "checkpoint must be"),
]


@pytest.mark.parametrize(
    ("what", "mutate", "reason"), RECEIPT_TAMPERS, ids=[t[0] for t in RECEIPT_TAMPERS]
)
def test_cli_tampered_receipt(
    log: Log,
    key_file: Path,
    tmp_path: Path,
    what: str,
    mutate: Callable[[dict[str, Any]], None],
    reason: str,
) -> None:
    receipt = log.receipt(41)
    mutate(receipt)
    result = run_cli(write_json(tmp_path / "r.json", receipt), "--key", key_file)
    assert result.returncode == 1, (what, result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("INVALID: ")
    assert reason in result.stderr, (what, result.stderr)


def test_cli_wrong_key_file(log: Log, tmp_path: Path) -> None:
    impostor = note.Signer.generate(ORIGIN)  # same name, different key
    wrong = tmp_path / "wrong.pub"
    wrong.write_text(impostor.vkey())
    result = run_cli(write_json(tmp_path / "r.json", log.receipt(41)), "--key", wrong)
    assert result.returncode == 1
    assert "INVALID: checkpoint: note is not signed by the trusted key" in result.stderr
    assert "different key ID" in result.stderr


def test_cli_receipt_for_a_different_size(log: Log, key_file: Path, tmp_path: Path) -> None:
    """A proof computed for tree size 999, attached to the (valid) size-1000 checkpoint."""
    receipt = log.receipt(41)
    receipt["inclusion_proof"] = log.receipt(41, size=SIZE - 1)["inclusion_proof"]
    result = run_cli(write_json(tmp_path / "r.json", receipt), "--key", key_file)
    assert result.returncode == 1
    assert "inclusion proof" in result.stderr


def test_cli_input_errors(key_file: Path, tmp_path: Path, signer: note.Signer) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"format": ')
    result = run_cli(bad_json, "--key", key_file)
    assert result.returncode == 1 and "not valid JSON" in result.stderr

    result = run_cli(tmp_path / "missing.json", "--key", key_file)
    assert result.returncode == 1 and "cannot read receipt" in result.stderr

    result = run_cli(bad_json, "--key", tmp_path / "missing.pub")
    assert result.returncode == 1 and "neither an existing file nor a key" in result.stderr

    private = tmp_path / "private.key"
    private.write_text(signer.to_string())
    result = run_cli(bad_json, "--key", private)
    assert result.returncode == 1 and "private signer key" in result.stderr
    # The key material (PRIVATE+KEY+name+id+<base64>, and base64 may contain "+") is never echoed.
    assert signer.to_string().split("+", 4)[4] not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["r.json"],  # no --key
        ["r.json", "--consistency", "c.json", "--key", "k"],
        ["r.json", "--key", "k", "--old", "o.txt"],
        ["--key", "k"],
    ],
)
def test_cli_usage_errors(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert "usage:" in result.stderr


# --------------------------------------------------------------------------------------------
# Consistency files: CLI
# --------------------------------------------------------------------------------------------


def test_cli_consistency_valid(log: Log, key_file: Path, tmp_path: Path) -> None:
    doc = log.consistency()
    proof_file = write_json(tmp_path / "c.json", doc)
    result = run_cli("--consistency", proof_file, "--key", key_file)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK: checkpoint of size {SIZE} ")
    assert f"consistent with checkpoint of size {OLD_SIZE}" in result.stdout

    old = tmp_path / "old.txt"
    old.write_text(log.checkpoint(OLD_SIZE).rstrip("\n"))  # an editor dropped the last newline
    new = tmp_path / "new.txt"
    new.write_text(log.checkpoint(SIZE))
    result = run_cli("--consistency", proof_file, "--key", key_file, "--old", old, "--new", new)
    assert result.returncode == 0, result.stderr
    assert "matches the saved old and new checkpoint" in result.stdout


def test_cli_consistency_tampered_proof(log: Log, key_file: Path, tmp_path: Path) -> None:
    doc = log.consistency()
    h = bytearray(base64.b64decode(doc["proof"][0]))
    h[3] ^= 4
    doc["proof"][0] = base64.b64encode(bytes(h)).decode()
    result = run_cli("--consistency", write_json(tmp_path / "c.json", doc), "--key", key_file)
    assert result.returncode == 1
    assert "INVALID: consistency proof:" in result.stderr


def test_cli_consistency_swapped(log: Log, key_file: Path, tmp_path: Path) -> None:
    doc = log.consistency()
    doc["old_checkpoint"], doc["new_checkpoint"] = doc["new_checkpoint"], doc["old_checkpoint"]
    result = run_cli("--consistency", write_json(tmp_path / "c.json", doc), "--key", key_file)
    assert result.returncode == 1
    assert "never shrinks" in result.stderr


def test_cli_consistency_of_a_rewritten_history(
    log: Log, signer: note.Signer, key_file: Path, tmp_path: Path
) -> None:
    """The log signs a new history whose first 600 entries differ: the proof cannot link them."""
    forked = make_log(signer, SIZE, tag=b"rewritten")
    doc = consistency_from_parts(
        log.checkpoint(OLD_SIZE),
        forked.checkpoint(SIZE),
        merkle.consistency_proof(OLD_SIZE, SIZE, forked.fetch),
    )
    result = run_cli("--consistency", write_json(tmp_path / "c.json", doc), "--key", key_file)
    assert result.returncode == 1
    assert "consistency proof:" in result.stderr


def test_cli_saved_old_checkpoint_mismatch(
    log: Log, signer: note.Signer, key_file: Path, tmp_path: Path
) -> None:
    forked = make_log(signer, SIZE, tag=b"fork")
    saved = tmp_path / "saved-old.txt"
    proof_file = write_json(tmp_path / "c.json", log.consistency())

    # Same size, different root: a fork, validly signed by the same key.
    saved.write_text(forked.checkpoint(OLD_SIZE))
    result = run_cli("--consistency", proof_file, "--key", key_file, "--old", saved)
    assert result.returncode == 1
    assert "saved old checkpoint differs" in result.stderr and "fork" in result.stderr

    # A different size.
    saved.write_text(log.checkpoint(OLD_SIZE - 1))
    result = run_cli("--consistency", proof_file, "--key", key_file, "--old", saved)
    assert result.returncode == 1
    assert f"saved old checkpoint (size {OLD_SIZE - 1}" in result.stderr

    # A saved checkpoint whose signature does not verify.
    saved.write_text(log.checkpoint(OLD_SIZE).replace(f"\n{OLD_SIZE}\n", f"\n{OLD_SIZE + 1}\n"))
    result = run_cli("--consistency", proof_file, "--key", key_file, "--old", saved)
    assert result.returncode == 1
    assert "saved old checkpoint: invalid signature" in result.stderr

    # Saved new checkpoint mismatch is detected too.
    saved.write_text(forked.checkpoint(SIZE))
    result = run_cli("--consistency", proof_file, "--key", key_file, "--new", saved)
    assert result.returncode == 1
    assert "saved new checkpoint differs" in result.stderr


def test_cli_consistency_wrong_format(log: Log, key_file: Path, tmp_path: Path) -> None:
    receipt = write_json(tmp_path / "r.json", log.receipt(1))
    result = run_cli("--consistency", receipt, "--key", key_file)
    assert result.returncode == 1
    assert CONSISTENCY_FORMAT in result.stderr


# --------------------------------------------------------------------------------------------
# Library API
# --------------------------------------------------------------------------------------------


def test_verify_receipt_library(log: Log, signer: note.Signer) -> None:
    v = signer.verifier()
    for index in (0, 1, 41, 511, 512, SIZE - 1):
        got = verify_receipt(log.receipt(index), v)
        assert (got.index, got.size, got.origin, got.leaf) == (
            index,
            SIZE,
            ORIGIN,
            log.leaves[index],
        )
        assert got.root == merkle.root_hash(SIZE, log.fetch)
        assert got.key_name == ORIGIN
    single = make_log(signer, 1)
    assert verify_receipt(single.receipt(0, size=1), v).size == 1


def test_receipt_round_trips_through_json(log: Log, signer: note.Signer) -> None:
    text = json.dumps(log.receipt(7, subject="visit 2024-05-01"))
    doc = load_json_document(text.encode("utf-8"), "receipt")
    assert doc["format"] == RECEIPT_FORMAT
    assert doc["entry"]["subject"] == "visit 2024-05-01"
    assert verify_receipt(doc, signer.verifier()).index == 7


def test_receipt_from_parts_protects_authenticated_keys(log: Log) -> None:
    with pytest.raises(ValueError, match="index"):
        receipt_from_parts(1, b"x", [], "cp", {"index": 5})
    with pytest.raises(ValueError, match="leaf"):
        receipt_from_parts(1, b"x", [], "cp", {"leaf": "eA=="})
    with pytest.raises(ValueError):
        receipt_from_parts(-1, b"x", [], "cp")


def test_strict_json() -> None:
    with pytest.raises(VerificationError, match="duplicate key"):
        load_json_document('{"format": "a", "format": "b"}')
    with pytest.raises(VerificationError, match="NaN"):
        load_json_document('{"x": NaN}')
    with pytest.raises(VerificationError, match="JSON object"):
        load_json_document("[1, 2]")
    with pytest.raises(VerificationError, match="UTF-8"):
        load_json_document(b'{"x": "\xff"}')


def test_verify_consistency_file_library(log: Log, signer: note.Signer) -> None:
    v = signer.verifier()
    result = verify_consistency_file(log.consistency(), v, log.checkpoint(OLD_SIZE), None)
    assert (result.old.size, result.new.size) == (OLD_SIZE, SIZE)
    assert verify_consistency_file(log.consistency(SIZE, SIZE), v).new.size == SIZE
    other = note.Signer.generate("other.example/log")
    doc = log.consistency()
    doc["new_checkpoint"] = note.sign_checkpoint(
        note.Checkpoint("other.example/log", SIZE, merkle.root_hash(SIZE, log.fetch)), other
    )
    with pytest.raises(VerificationError, match="new checkpoint: note is not signed"):
        verify_consistency_file(doc, v)
    doc["new_checkpoint"] = note.sign_checkpoint(
        note.Checkpoint("other.example/log", SIZE, merkle.root_hash(SIZE, log.fetch)), signer
    )
    with pytest.raises(VerificationError, match="old and new checkpoints are for different logs"):
        verify_consistency_file(doc, v)


def test_main_in_process(
    log: Log, key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receipt = write_json(tmp_path / "r.json", log.receipt(3))
    assert main([str(receipt), "--key", str(key_file)]) == 0
    assert capsys.readouterr().out.startswith("OK: entry 3 ")


# --------------------------------------------------------------------------------------------
# Witness cosignatures (c2sp.org/tlog-cosignature) against a policy (c2sp.org/tlog-policy)
# --------------------------------------------------------------------------------------------

WITNESSES = [CosignatureSigner.generate(f"w{i}.example") for i in range(1, 4)]


def cosigned_receipt(log: Log, index: int, *witnesses: CosignatureSigner) -> dict[str, Any]:
    receipt = log.receipt(index)
    body, _ = note.split_note(receipt["checkpoint"])
    for n, w in enumerate(witnesses):
        line = w.cosign(body, timestamp=1_765_000_000 + n)
        receipt["checkpoint"] = add_signature_lines(receipt["checkpoint"], line)
    return receipt


def witness_args(quorum: int | None = None) -> list[str]:
    args = [a for w in WITNESSES for a in ("--witness", w.vkey())]
    return args + ([] if quorum is None else ["--quorum", str(quorum)])


def test_cli_prints_which_witnesses_cosigned_and_when(
    log: Log, key_file: Path, tmp_path: Path
) -> None:
    path = write_json(tmp_path / "r.json", cosigned_receipt(log, 7, WITNESSES[0], WITNESSES[2]))
    result = run_cli(path, "--key", key_file, *witness_args(quorum=2))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("OK: entry 7 is included")
    assert lines[1].startswith("witnessed: quorum 2 of 3")
    assert "cosigned by w1.example at 2025-12-06T05:46:40Z (timestamp 1765000000)" in lines[2]
    assert "cosigned by w3.example at 2025-12-06T05:46:41Z" in lines[3]


def test_cli_fails_clearly_when_the_quorum_is_not_met(
    log: Log, key_file: Path, tmp_path: Path
) -> None:
    stranger = CosignatureSigner.generate("w2.example")  # same name as a trusted witness
    receipt = cosigned_receipt(log, 7, WITNESSES[0], stranger)
    path = write_json(tmp_path / "r.json", receipt)
    result = run_cli(path, "--key", key_file, *witness_args(quorum=2))
    assert result.returncode == 1
    assert "INVALID: witness quorum 2 of 3" in result.stderr
    assert "not met: cosigned by w1.example" in result.stderr
    # Without --quorum every given witness is required.
    assert run_cli(path, "--key", key_file, *witness_args()).returncode == 1
    assert run_cli(path, "--key", key_file, *witness_args(quorum=1)).returncode == 0


def test_cli_refuses_an_altered_cosignature(log: Log, key_file: Path, tmp_path: Path) -> None:
    receipt = cosigned_receipt(log, 3, WITNESSES[0])
    text, sigs = note.split_note(receipt["checkpoint"])
    raw = bytearray(sigs[1].key_id.to_bytes(4, "big") + sigs[1].signature)
    raw[8] ^= 1  # the timestamp
    log_line = receipt["checkpoint"][len(text) + 1 :].splitlines(keepends=True)[0]
    forged = f"\u2014 w1.example {base64.b64encode(bytes(raw)).decode()}\n"
    receipt["checkpoint"] = text + "\n" + log_line + forged
    path = write_json(tmp_path / "r.json", receipt)
    result = run_cli(path, "--key", key_file, *witness_args(quorum=1))
    assert result.returncode == 1
    assert "invalid cosignature by witness w1.example" in result.stderr


def test_cli_policy_file(log: Log, key_file: Path, tmp_path: Path, signer: note.Signer) -> None:
    policy_file = tmp_path / "policy.txt"
    policy_file.write_text(
        f"log {signer.vkey()}\n"
        + "".join(f"witness W{i} {w.vkey()}\n" for i, w in enumerate(WITNESSES, start=1))
        + "group two 2 W1 W2 W3\nquorum two\n"
    )
    good = write_json(tmp_path / "good.json", cosigned_receipt(log, 1, *WITNESSES[1:]))
    result = run_cli(good, "--policy", policy_file)  # the policy names the log: no --key
    assert result.returncode == 0, result.stderr
    assert "cosigned by W2 (key w2.example)" in result.stdout
    short = write_json(tmp_path / "short.json", cosigned_receipt(log, 1, WITNESSES[0]))
    result = run_cli(short, "--policy", policy_file, "--key", key_file)
    assert result.returncode == 1 and "not met: cosigned by W1" in result.stderr
    other_log = note.Signer.generate(ORIGIN)
    wrong_key = tmp_path / "other.pub"
    wrong_key.write_text(other_log.vkey())
    assert run_cli(good, "--policy", policy_file, "--key", wrong_key).returncode == 1
    policy_file.write_text("quorum nobody\n")
    result = run_cli(good, "--policy", policy_file, "--key", key_file)
    assert result.returncode == 1 and "line 1" in result.stderr


def test_cli_tlog_proof_input(log: Log, key_file: Path, tmp_path: Path) -> None:
    receipt = cosigned_receipt(log, 11, WITNESSES[0], WITNESSES[1])
    proof_text = tlog_proof_from_receipt(receipt)
    assert proof_text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    assert "\nindex 11\n" in proof_text
    path = tmp_path / "r.tlog-proof"
    path.write_text(proof_text)
    result = run_cli(path, "--key", key_file, *witness_args(quorum=2))
    assert result.returncode == 0, result.stderr
    assert "OK: entry 11 is included" in result.stdout
    # Without 'extra', the leaf comes from --leaf, and the inclusion proof checks it.
    parsed = parse_tlog_proof(proof_text)
    bare = tlog_proof_from_parts(parsed.index, parsed.proof, parsed.checkpoint)
    path.write_text(bare)
    assert run_cli(path, "--key", key_file).returncode == 1
    leaf = tmp_path / "leaf.bin"
    leaf.write_bytes(log.leaves[11])
    assert run_cli(path, "--key", key_file, "--leaf", leaf).returncode == 0
    leaf.write_bytes(log.leaves[12])
    result = run_cli(path, "--key", key_file, "--leaf", leaf)
    assert result.returncode == 1 and "inclusion proof" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("c2sp.org/tlog-proof@v2\nindex 1\n\nx", "must start with"),
        ("c2sp.org/tlog-proof@v1\nindex 01\n\nx", "leading zeros"),
        ("c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\nx", "extra data is not valid base64"),
        ("c2sp.org/tlog-proof@v1\nextra AA==\n\nx", "no 'index"),
        ("c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\nx", "not a 32-byte hash"),
        ("c2sp.org/tlog-proof@v1\nindex 1\n", "no empty line"),
    ],
)
def test_tlog_proof_is_parsed_strictly(text: str, message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        parse_tlog_proof(text)


@pytest.mark.parametrize(
    "extra",
    [
        ["--quorum", "1"],
        ["--policy", "p.txt", "--witness", "w+00000000+BA=="],
    ],
)
def test_cli_witness_usage_errors(extra: list[str]) -> None:
    result = run_cli("r.json", "--key", "k", *extra)
    assert result.returncode == 2 and "usage:" in result.stderr


def test_cli_quorum_larger_than_the_witnesses(log: Log, key_file: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path / "r.json", cosigned_receipt(log, 1, *WITNESSES))
    result = run_cli(path, "--key", key_file, *witness_args(quorum=4))
    assert result.returncode == 1 and "more than the 3 witness" in result.stderr
    result = run_cli(path, "--key", key_file, "--witness", key_file.read_text().strip())
    assert result.returncode == 1 and "type 0x01" in result.stderr


def test_cli_without_witness_keys_says_cosignatures_were_not_checked(
    log: Log, key_file: Path, tmp_path: Path
) -> None:
    path = write_json(tmp_path / "r.json", cosigned_receipt(log, 2, WITNESSES[0], WITNESSES[1]))
    result = run_cli(path, "--key", key_file)
    assert result.returncode == 0, result.stderr
    assert "2 other signer(s) on the checkpoint (w1.example, w2.example) were not checked" in (
        result.stdout
    )
    plain = write_json(tmp_path / "p.json", log.receipt(2))
    assert "not checked" not in run_cli(plain, "--key", key_file).stdout
