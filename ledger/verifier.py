"""Standalone verifier for hospital-portal ledger receipts and consistency proofs.

A patient or auditor runs this *without* the portal, Django, or any database::

    python -m ledger.verifier RECEIPT.json --key PUBLIC_KEY
    python -m ledger.verifier RECEIPT.json --key PUBLIC_KEY --policy POLICY.txt
    python -m ledger.verifier RECEIPT.json --key PUBLIC_KEY --witness VKEY ... --quorum K
    python -m ledger.verifier RECEIPT.tlog-proof --key PUBLIC_KEY [--leaf LEAF.bin] ...
    python -m ledger.verifier --consistency PROOF.json --key PUBLIC_KEY \\
        [--old SAVED_OLD_CHECKPOINT.txt] [--new SAVED_NEW_CHECKPOINT.txt]

It needs only Python and ``cryptography``: this module imports nothing from the Django side,
and ``ledger/__init__.py`` is kept import-free so ``python -m ledger.verifier`` does not pull
Django in either.

Exit status: 0 valid, 1 invalid (reason on stderr as ``INVALID: ...``), 2 usage error.

Receipt format (one UTF-8 JSON object)::

    {"format": "hospital-portal-ledger-receipt/1",
     "entry": {"index": 41, "leaf": "<base64 canonical leaf bytes>", ...informative keys...},
     "inclusion_proof": ["<base64 32-byte hash>", ...],
     "checkpoint": "<signed checkpoint note>"}

Consistency file::

    {"format": "hospital-portal-ledger-consistency/1",
     "old_checkpoint": "<signed note>", "new_checkpoint": "<signed note>",
     "proof": ["<base64 32-byte hash>", ...]}

Only ``entry.index`` and ``entry.leaf`` are authenticated.  Any other key in ``entry`` is
shown for convenience but is *not* covered by the proof unless it is also inside the leaf bytes.

Witnesses: the checkpoint note may carry witness cosignatures (c2sp.org/tlog-cosignature) as
extra signature lines after the log's own.  With ``--policy FILE`` (c2sp.org/tlog-policy) or
``--witness VKEY`` (repeatable) and ``--quorum K`` (default: all of them), the verifier also
checks those and prints which witnesses cosigned and when; a quorum not met is INVALID.

A receipt may also be given in the C2SP tlog-proof format (c2sp.org/tlog-proof)::

    c2sp.org/tlog-proof@v1
    extra <base64 of the canonical leaf bytes>
    index <index>
    <base64 inclusion proof hash, one a line>
    <empty line>
    <the checkpoint note with its signatures and cosignatures>

The ``extra`` line is not trusted by itself: the leaf it carries is checked by the inclusion
proof like any other.  Without it, give the leaf with ``--leaf FILE``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from ledger import cosignature, merkle, note, policy

__all__ = [
    "CONSISTENCY_FORMAT",
    "RECEIPT_FORMAT",
    "TLOG_PROOF_HEADER",
    "TlogProof",
    "VerificationError",
    "VerifiedConsistency",
    "VerifiedReceipt",
    "consistency_from_parts",
    "load_json_document",
    "load_verifier_key",
    "main",
    "parse_tlog_proof",
    "receipt_from_parts",
    "receipt_from_tlog_proof",
    "tlog_proof_from_parts",
    "tlog_proof_from_receipt",
    "verify_consistency_file",
    "verify_receipt",
    "verify_witnesses",
]

RECEIPT_FORMAT = "hospital-portal-ledger-receipt/1"
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
CONSISTENCY_FORMAT = "hospital-portal-ledger-consistency/1"

MAX_DOCUMENT_BYTES = 4 << 20
"""Receipts are a few KiB; refuse anything huge before parsing it."""

MAX_PROOF_HASHES = 128
"""2 * 64 covers every tree with up to 2**64 leaves."""


class VerificationError(Exception):
    """A receipt or consistency file is invalid; the message names what failed."""


@dataclass(frozen=True)
class VerifiedReceipt:
    """What a valid receipt proves: ``leaf`` is entry ``index`` of the signed checkpoint."""

    index: int
    size: int
    root: bytes
    origin: str
    leaf: bytes
    key_name: str

    @property
    def root_b64(self) -> str:
        return base64.b64encode(self.root).decode("ascii")


@dataclass(frozen=True)
class VerifiedConsistency:
    """What a valid consistency file proves: ``new`` extends ``old`` append-only."""

    old: note.Checkpoint
    new: note.Checkpoint
    key_name: str


# --------------------------------------------------------------------------------------------
# Building documents (server side)
# --------------------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def receipt_from_parts(
    index: int,
    leaf: bytes,
    proof: list[bytes],
    checkpoint_note: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a receipt dict (ready for ``json.dumps``) from its parts.

    ``extra`` adds informative keys to ``entry``; they may not shadow ``index`` or ``leaf``
    because those are the only authenticated fields.
    """
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError("index must be a non-negative int")
    extra = dict(extra or {})
    clash = {"index", "leaf"} & set(extra)
    if clash:
        raise ValueError(f"extra may not override authenticated entry keys: {sorted(clash)}")
    entry: dict[str, Any] = {"index": index, "leaf": _b64(bytes(leaf)), **extra}
    return {
        "format": RECEIPT_FORMAT,
        "entry": entry,
        "inclusion_proof": [_b64(bytes(h)) for h in proof],
        "checkpoint": checkpoint_note,
    }


def consistency_from_parts(
    old_checkpoint_note: str, new_checkpoint_note: str, proof: list[bytes]
) -> dict[str, Any]:
    """Build a consistency-proof dict (ready for ``json.dumps``)."""
    return {
        "format": CONSISTENCY_FORMAT,
        "old_checkpoint": old_checkpoint_note,
        "new_checkpoint": new_checkpoint_note,
        "proof": [_b64(bytes(h)) for h in proof],
    }


@dataclass(frozen=True)
class TlogProof:
    """A parsed c2sp.org/tlog-proof (nothing verified yet)."""

    index: int
    proof: list[bytes]
    checkpoint: str
    extra: bytes | None = None


def tlog_proof_from_parts(
    index: int, proof: list[bytes], checkpoint_note: str, extra: bytes | None = None
) -> str:
    """Build a tlog-proof text; the portal puts the canonical leaf bytes in ``extra``."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError("index must be a non-negative int")
    lines = [TLOG_PROOF_HEADER]
    if extra is not None:
        lines.append(f"extra {_b64(bytes(extra))}")
    lines.append(f"index {index}")
    lines += [_b64(bytes(h)) for h in proof]
    return "\n".join(lines) + "\n\n" + checkpoint_note


def tlog_proof_from_receipt(receipt: dict[str, Any]) -> str:
    """The same receipt as a tlog-proof (leaf bytes in ``extra``); nothing is verified."""
    _check_format(receipt, RECEIPT_FORMAT, "receipt")
    entry = receipt.get("entry")
    if not isinstance(entry, dict):
        raise VerificationError("receipt 'entry' must be a JSON object")
    checkpoint = receipt.get("checkpoint")
    if not isinstance(checkpoint, str):
        raise VerificationError("receipt 'checkpoint' must be a string")
    return tlog_proof_from_parts(
        entry.get("index"),  # type: ignore[arg-type]
        _proof_hashes(receipt.get("inclusion_proof"), "inclusion proof"),
        checkpoint,
        _b64decode(entry.get("leaf"), "receipt entry 'leaf'"),
    )


def parse_tlog_proof(text: str) -> TlogProof:
    """Parse a c2sp.org/tlog-proof strictly.  Raises :class:`VerificationError`."""
    head, sep, checkpoint = text.partition("\n\n")
    if not sep:
        raise VerificationError("tlog-proof has no empty line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != TLOG_PROOF_HEADER:
        raise VerificationError(f"tlog-proof must start with the line {TLOG_PROOF_HEADER!r}")
    rest = lines[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        extra = _b64decode(rest[0][len("extra ") :], "tlog-proof extra data")
        rest = rest[1:]
    if not rest or not rest[0].startswith("index "):
        raise VerificationError("tlog-proof has no 'index <n>' line")
    number = rest[0][len("index ") :]
    if not number.isdigit() or not number.isascii() or (number != "0" and number[0] == "0"):
        raise VerificationError("tlog-proof index must be a decimal without leading zeros")
    proof = _proof_hashes(rest[1:], "tlog-proof inclusion proof")
    return TlogProof(index=int(number), proof=proof, checkpoint=checkpoint, extra=extra)


def receipt_from_tlog_proof(text: str, leaf: bytes | None = None) -> dict[str, Any]:
    """A JSON receipt (for :func:`verify_receipt`) from a tlog-proof and the leaf bytes.

    ``leaf`` defaults to the proof's ``extra`` data; either way the inclusion proof checks it.
    """
    parsed = parse_tlog_proof(text)
    data = leaf if leaf is not None else parsed.extra
    if data is None:
        raise VerificationError(
            "the tlog-proof carries no leaf ('extra' line); give the leaf with --leaf FILE"
        )
    return receipt_from_parts(parsed.index, data, parsed.proof, parsed.checkpoint)


# --------------------------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------------------------


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # Two parsers could pick different values: refuse instead of guessing.
            raise VerificationError(f"JSON object has a duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> NoReturn:
    raise VerificationError(f"JSON contains the non-standard value {name}")


def load_json_document(data: bytes | str, what: str = "document") -> dict[str, Any]:
    """Parse strict JSON (UTF-8, no duplicate keys, no NaN) into a dict."""
    if isinstance(data, (bytes, bytearray)):
        if len(data) > MAX_DOCUMENT_BYTES:
            raise VerificationError(f"{what} is larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationError(f"{what} is not valid UTF-8") from None
    try:
        doc = json.loads(
            data, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        raise VerificationError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise VerificationError(f"{what} must be a JSON object")
    return doc


def _b64decode(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise VerificationError(f"{what} is not valid base64") from None
    if _b64(raw) != value:
        raise VerificationError(f"{what} is not canonical base64")
    return raw


def _proof_hashes(value: object, what: str) -> list[bytes]:
    if not isinstance(value, list):
        raise VerificationError(f"{what} must be a JSON list of base64 hashes")
    if len(value) > MAX_PROOF_HASHES:
        raise VerificationError(f"{what} has {len(value)} hashes, more than any tree needs")
    hashes = []
    for i, item in enumerate(value):
        raw = _b64decode(item, f"{what} element {i}")
        if len(raw) != merkle.HASH_SIZE:
            raise VerificationError(
                f"{what} element {i} is {len(raw)} bytes, not a {merkle.HASH_SIZE}-byte hash"
            )
        hashes.append(raw)
    return hashes


def _check_format(doc: dict[str, Any], expected: str, what: str) -> None:
    if not isinstance(doc, dict):
        raise VerificationError(f"{what} must be a JSON object")
    tag = doc.get("format")
    if tag != expected:
        raise VerificationError(
            f"{what} has format {tag!r}, expected {expected!r} "
            "(wrong kind of file, or a version this verifier does not know)"
        )


def _open_checkpoint(
    text: object, verifier: note.Verifier | Sequence[note.Verifier], what: str
) -> note.Checkpoint:
    if not isinstance(text, str):
        raise VerificationError(f"{what} must be the signed checkpoint note as a string")
    try:
        return note.open_checkpoint(text, verifier)
    except note.NoteError as exc:
        raise VerificationError(f"{what}: {exc}") from None


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


def verify_receipt(
    receipt: dict[str, Any], verifier: note.Verifier | Sequence[note.Verifier]
) -> VerifiedReceipt:
    """Verify a receipt: checkpoint signature first, then the inclusion proof.

    The signature is checked first so that nothing from an unauthenticated checkpoint is ever
    trusted.  Raises :class:`VerificationError` naming what failed.
    """
    _check_format(receipt, RECEIPT_FORMAT, "receipt")
    entry = receipt.get("entry")
    if not isinstance(entry, dict):
        raise VerificationError("receipt 'entry' must be a JSON object")
    index = entry.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise VerificationError("receipt entry 'index' must be a non-negative integer")
    leaf = _b64decode(entry.get("leaf"), "receipt entry 'leaf'")
    proof = _proof_hashes(receipt.get("inclusion_proof"), "inclusion proof")
    checkpoint = _open_checkpoint(receipt.get("checkpoint"), verifier, "checkpoint")
    if index >= checkpoint.size:
        raise VerificationError(
            f"entry index {index} is out of range for the checkpoint of size {checkpoint.size}"
        )
    try:
        merkle.verify_inclusion(
            merkle.leaf_hash(leaf), index, checkpoint.size, proof, checkpoint.root
        )
    except merkle.ProofError as exc:
        raise VerificationError(
            f"inclusion proof: the leaf at index {index} does not verify against the signed "
            f"checkpoint of size {checkpoint.size}: {exc}"
        ) from None
    return VerifiedReceipt(
        index=index,
        size=checkpoint.size,
        root=checkpoint.root,
        origin=checkpoint.origin,
        leaf=leaf,
        key_name=checkpoint.origin if not isinstance(verifier, note.Verifier) else verifier.name,
    )


def verify_witnesses(
    checkpoint_note: str, trust: policy.Policy, *, origin: str | None = None
) -> policy.PolicyResult:
    """Check the cosignatures on a checkpoint against a witness policy; quorum required.

    The log's signature is checked again against the policy's log keys.  Raises
    :class:`VerificationError` naming the witnesses that did cosign when the quorum is not met.
    """
    try:
        return trust.require(checkpoint_note, origin=origin)
    except policy.PolicyError as exc:
        raise VerificationError(str(exc)) from None


def _describe(cp: note.Checkpoint) -> str:
    return f"size {cp.size}, root {_b64(cp.root)}"


def _compare_saved(
    saved: str | None, in_file: note.Checkpoint, verifier: note.Verifier, label: str
) -> None:
    """Check a checkpoint the user saved earlier against the one in the proof file.

    The saved copy must itself carry a valid signature; then equal sizes with different roots
    are reported as a fork, which is exactly the misbehaviour consistency checks exist to catch.
    """
    if saved is None:
        return
    if saved and not saved.endswith("\n"):
        saved += "\n"  # editors sometimes strip the final newline; it is not signed
    saved_cp = _open_checkpoint(saved, verifier, f"saved {label} checkpoint")
    if saved_cp.origin != in_file.origin:
        raise VerificationError(
            f"saved {label} checkpoint is for log {saved_cp.origin!r}, but the proof file's "
            f"{label} checkpoint is for log {in_file.origin!r}"
        )
    if saved_cp.size == in_file.size and saved_cp.root != in_file.root:
        raise VerificationError(
            f"saved {label} checkpoint differs from the {label} checkpoint in the proof file: "
            f"same size {saved_cp.size} but different roots ({_b64(saved_cp.root)} vs "
            f"{_b64(in_file.root)}); the log has signed two different histories (fork)"
        )
    if saved_cp != in_file:
        raise VerificationError(
            f"saved {label} checkpoint ({_describe(saved_cp)}) differs from the {label} "
            f"checkpoint in the proof file ({_describe(in_file)})"
        )


def verify_consistency_file(
    doc: dict[str, Any],
    verifier: note.Verifier,
    saved_old: str | None = None,
    saved_new: str | None = None,
) -> VerifiedConsistency:
    """Verify a consistency file, optionally against checkpoints the user saved earlier.

    Without saved checkpoints this only shows the two checkpoints in the file are consistent
    with each other; comparing with a checkpoint saved from an earlier receipt is what detects
    a log that rewrote history.  Raises :class:`VerificationError`.
    """
    _check_format(doc, CONSISTENCY_FORMAT, "consistency file")
    proof = _proof_hashes(doc.get("proof"), "consistency proof")
    old = _open_checkpoint(doc.get("old_checkpoint"), verifier, "old checkpoint")
    new = _open_checkpoint(doc.get("new_checkpoint"), verifier, "new checkpoint")
    if old.origin != new.origin:
        raise VerificationError(
            f"old and new checkpoints are for different logs ({old.origin!r} vs {new.origin!r})"
        )
    _compare_saved(saved_old, old, verifier, "old")
    _compare_saved(saved_new, new, verifier, "new")
    try:
        merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
    except merkle.ProofError as exc:
        raise VerificationError(
            f"consistency proof: checkpoint of size {new.size} is not proven to extend the "
            f"checkpoint of size {old.size}: {exc}"
        ) from None
    return VerifiedConsistency(old=old, new=new, key_name=verifier.name)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _read_text(path: str, what: str) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise VerificationError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise VerificationError(f"{what} {path!r} is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationError(f"{what} {path!r} is not valid UTF-8") from None


def _key_text(value: str, flag: str, what: str) -> tuple[str, str]:
    """A key given on the command line as a file holding it, or as the key itself: its text,
    and how to name where it came from in an error."""
    if os.path.isfile(value):
        return _read_text(value, what).strip(), f"{what} {value!r}"
    text = value.strip()
    if "+" not in text:
        raise VerificationError(f"{flag} {value!r} is neither an existing file nor a key")
    return text, f"{flag} value"


def load_verifier_key(value: str) -> note.Verifier:
    """``--key``: a path to a file holding the verifier key, or the key string itself."""
    text, source = _key_text(value, "--key", "key file")
    if "\n" in text:
        raise VerificationError(f"{source} must contain exactly one verifier key line")
    try:
        return note.Verifier.from_string(text)
    except note.NoteError as exc:
        raise VerificationError(f"{source}: {exc}") from None


def load_witness_key(value: str) -> cosignature.CosignatureVerifier:
    """``--witness``: a witness vkey (type 0x04), or a file containing one."""
    text, source = _key_text(value, "--witness", "witness key file")
    try:
        return cosignature.CosignatureVerifier.from_string(text)
    except note.NoteError as exc:
        raise VerificationError(f"{source}: {exc}") from None


def _load_policy(path: str) -> policy.Policy:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise VerificationError(f"cannot read policy {path!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise VerificationError(f"policy {path!r} is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return policy.parse_policy(data)
    except policy.PolicyError as exc:
        raise VerificationError(f"policy {path!r}: {exc}") from None


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.verifier",
        description=(
            "Verify a hospital-portal ledger receipt (inclusion proof, optionally its witness "
            "cosignatures) or a consistency proof between two signed checkpoints, offline."
        ),
    )
    parser.add_argument(
        "receipt",
        nargs="?",
        metavar="RECEIPT",
        help="receipt to verify: the portal's JSON receipt or a c2sp.org/tlog-proof",
    )
    parser.add_argument(
        "--consistency", metavar="PROOF.json", help="verify a consistency proof file instead"
    )
    parser.add_argument(
        "--key",
        metavar="PUBLIC_KEY",
        help="the log's public verifier key, or a file containing it (may be omitted when "
        "--policy lists the log)",
    )
    parser.add_argument(
        "--old", metavar="CHECKPOINT.txt", help="(with --consistency) a checkpoint saved earlier"
    )
    parser.add_argument(
        "--new", metavar="CHECKPOINT.txt", help="(with --consistency) a newer saved checkpoint"
    )
    parser.add_argument(
        "--policy",
        metavar="POLICY",
        help="c2sp.org/tlog-policy file: witnesses and the quorum their cosignatures must meet",
    )
    parser.add_argument(
        "--witness",
        action="append",
        metavar="VKEY",
        help="a trusted witness's key (type 0x04), or a file with it; repeatable",
    )
    parser.add_argument(
        "--quorum",
        type=int,
        metavar="K",
        help="with --witness: how many of them must have cosigned (default: all)",
    )
    parser.add_argument(
        "--leaf", metavar="LEAF", help="(tlog-proof input) the leaf bytes, if not in 'extra'"
    )
    return parser


def _trust(args: argparse.Namespace, log_keys: list[note.Verifier]) -> policy.Policy | None:
    if args.policy is not None:
        trust = _load_policy(args.policy)
        if log_keys:  # --key narrows the accepted logs to that key
            return replace(trust, logs=tuple(policy.LogKey(k) for k in log_keys))
        if not trust.logs:
            raise VerificationError("the policy lists no log; give the log's key with --key")
        return trust
    if args.witness:
        witnesses = [load_witness_key(value) for value in args.witness]
        quorum = len(witnesses) if args.quorum is None else args.quorum
        try:
            return policy.policy_from_keys(log_keys, witnesses, quorum)
        except policy.PolicyError as exc:
            raise VerificationError(str(exc)) from None
    return None


def _describe_witnesses(result: policy.PolicyResult, trust: policy.Policy) -> list[str]:
    now = time.time()
    lines = [
        f"witnessed: quorum {trust.describe_quorum()} met, cosigned by "
        f"{len(result.cosignatures)} of {len(trust.witnesses)} known witness(es)"
    ]
    for name, cosig in sorted(result.cosignatures.items(), key=lambda kv: kv[1].timestamp):
        key = f" (key {cosig.name})" if cosig.name != name else ""
        when = cosig.time.strftime("%Y-%m-%dT%H:%M:%SZ")
        # The spec lets verifiers reject future times; a clock skew is likelier, so only say it.
        future = " (in the future by this machine's clock)" if cosig.timestamp > now + 600 else ""
        lines.append(f"  cosigned by {name}{key} at {when} (timestamp {cosig.timestamp}){future}")
    return lines


def _run(args: argparse.Namespace) -> str:
    log_keys = [load_verifier_key(args.key)] if args.key is not None else []
    trust = _trust(args, log_keys)
    verifiers = list(log_keys)
    if not verifiers and trust is not None:
        verifiers = [log.verifier for log in trust.logs]
    if not verifiers:
        raise VerificationError("give the log's key with --key (or a --policy listing it)")
    if args.consistency is not None:
        doc = load_json_document(
            _read_text(args.consistency, "consistency file"), "consistency file"
        )
        saved_old = _read_text(args.old, "saved old checkpoint") if args.old else None
        saved_new = _read_text(args.new, "saved new checkpoint") if args.new else None
        if len(verifiers) != 1:
            raise VerificationError("--consistency needs exactly one log key (--key)")
        result = verify_consistency_file(doc, verifiers[0], saved_old, saved_new)
        matched = [label for label, given in (("old", saved_old), ("new", saved_new)) if given]
        suffix = f"; matches the saved {' and '.join(matched)} checkpoint" if matched else ""
        out = [
            f"OK: checkpoint of size {result.new.size} (root {_b64(result.new.root)}) is "
            f"consistent with checkpoint of size {result.old.size} "
            f"(root {_b64(result.old.root)}), signed by {result.key_name}{suffix}"
        ]
        if trust is not None:
            witnessed = verify_witnesses(doc["new_checkpoint"], trust, origin=result.new.origin)
            out += _describe_witnesses(witnessed, trust)
        return "\n".join(out)
    text = _read_text(args.receipt, "receipt")
    if text.startswith(TLOG_PROOF_HEADER + "\n"):
        leaf = _read_bytes(args.leaf, "leaf file") if args.leaf else None
        receipt = receipt_from_tlog_proof(text, leaf)
    else:
        if args.leaf:
            raise VerificationError("--leaf only applies to a tlog-proof receipt")
        receipt = load_json_document(text, "receipt")
    verified = verify_receipt(receipt, verifiers)
    out = [
        f"OK: entry {verified.index} is included in checkpoint of size {verified.size} "
        f"signed by {verified.key_name}, root {verified.root_b64}"
    ]
    if trust is not None:
        witnessed = verify_witnesses(receipt["checkpoint"], trust, origin=verified.origin)
        out += _describe_witnesses(witnessed, trust)
    else:
        out += _unchecked_signatures(receipt["checkpoint"], verifiers)
    return "\n".join(out)


def _unchecked_signatures(checkpoint_note: str, log_keys: list[note.Verifier]) -> list[str]:
    """Say that other signature lines (witness cosignatures, presumably) were not checked."""
    logs = {(k.name, k.key_id) for k in log_keys}
    others = sorted(
        {s.name for s in note.split_note(checkpoint_note)[1] if (s.name, s.key_id) not in logs}
    )
    if not others:
        return []
    return [
        f"note: {len(others)} other signer(s) on the checkpoint ({', '.join(others)}) were not "
        "checked; give --policy or --witness to check witness cosignatures"
    ]


def _read_bytes(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise VerificationError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise VerificationError(f"{what} {path!r} is larger than {MAX_DOCUMENT_BYTES} bytes")
    return data


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if (args.receipt is None) == (args.consistency is None):
        parser.error("give either RECEIPT or --consistency PROOF.json (exactly one)")
    if args.consistency is None and (args.old or args.new):
        parser.error("--old/--new only apply with --consistency")
    if args.policy is not None and args.witness:
        parser.error("give witnesses either in --policy or with --witness, not both")
    if args.quorum is not None and not args.witness:
        parser.error("--quorum applies to --witness keys (a --policy has its own quorum)")
    if args.key is None and args.policy is None:
        parser.error("--key is required (unless a --policy lists the log)")
    try:
        message = _run(args)
    except VerificationError as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return 1
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
