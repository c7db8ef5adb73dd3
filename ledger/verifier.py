"""Standalone verifier for hospital-portal ledger receipts and consistency proofs.

A patient or auditor runs this *without* the portal, Django, or any database::

    python -m ledger.verifier RECEIPT.json --key PUBLIC_KEY
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
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from ledger import merkle, note

__all__ = [
    "CONSISTENCY_FORMAT",
    "RECEIPT_FORMAT",
    "VerificationError",
    "VerifiedConsistency",
    "VerifiedReceipt",
    "consistency_from_parts",
    "load_json_document",
    "load_verifier_key",
    "main",
    "receipt_from_parts",
    "verify_consistency_file",
    "verify_receipt",
]

RECEIPT_FORMAT = "hospital-portal-ledger-receipt/1"
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


def _open_checkpoint(text: object, verifier: note.Verifier, what: str) -> note.Checkpoint:
    if not isinstance(text, str):
        raise VerificationError(f"{what} must be the signed checkpoint note as a string")
    try:
        return note.open_checkpoint(text, verifier)
    except note.NoteError as exc:
        raise VerificationError(f"{what}: {exc}") from None


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


def verify_receipt(receipt: dict[str, Any], verifier: note.Verifier) -> VerifiedReceipt:
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
        key_name=verifier.name,
    )


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


def load_verifier_key(value: str) -> note.Verifier:
    """``--key``: a path to a file holding the verifier key, or the key string itself."""
    if os.path.isfile(value):
        text = _read_text(value, "key file").strip()
        source = f"key file {value!r}"
    else:
        text = value.strip()
        source = "--key value"
        if "+" not in text:
            raise VerificationError(f"--key {value!r} is neither an existing file nor a key")
    if "\n" in text:
        raise VerificationError(f"{source} must contain exactly one verifier key line")
    try:
        return note.Verifier.from_string(text)
    except note.NoteError as exc:
        raise VerificationError(f"{source}: {exc}") from None


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.verifier",
        description=(
            "Verify a hospital-portal ledger receipt (inclusion proof) or a consistency proof "
            "between two signed checkpoints, offline."
        ),
    )
    parser.add_argument("receipt", nargs="?", metavar="RECEIPT.json", help="receipt to verify")
    parser.add_argument(
        "--consistency", metavar="PROOF.json", help="verify a consistency proof file instead"
    )
    parser.add_argument(
        "--key",
        required=True,
        metavar="PUBLIC_KEY",
        help="the log's public verifier key, or a file containing it",
    )
    parser.add_argument(
        "--old", metavar="CHECKPOINT.txt", help="(with --consistency) a checkpoint saved earlier"
    )
    parser.add_argument(
        "--new", metavar="CHECKPOINT.txt", help="(with --consistency) a newer saved checkpoint"
    )
    return parser


def _run(args: argparse.Namespace) -> str:
    verifier = load_verifier_key(args.key)
    if args.consistency is not None:
        doc = load_json_document(
            _read_text(args.consistency, "consistency file"), "consistency file"
        )
        saved_old = _read_text(args.old, "saved old checkpoint") if args.old else None
        saved_new = _read_text(args.new, "saved new checkpoint") if args.new else None
        result = verify_consistency_file(doc, verifier, saved_old, saved_new)
        matched = [label for label, given in (("old", saved_old), ("new", saved_new)) if given]
        suffix = f"; matches the saved {' and '.join(matched)} checkpoint" if matched else ""
        return (
            f"OK: checkpoint of size {result.new.size} (root {_b64(result.new.root)}) is "
            f"consistent with checkpoint of size {result.old.size} "
            f"(root {_b64(result.old.root)}), signed by {result.key_name}{suffix}"
        )
    receipt = load_json_document(_read_text(args.receipt, "receipt"), "receipt")
    verified = verify_receipt(receipt, verifier)
    return (
        f"OK: entry {verified.index} is included in checkpoint of size {verified.size} "
        f"signed by {verified.key_name}, root {verified.root_b64}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if (args.receipt is None) == (args.consistency is None):
        parser.error("give either RECEIPT.json or --consistency PROOF.json (exactly one)")
    if args.consistency is None and (args.old or args.new):
        parser.error("--old/--new only apply with --consistency")
    try:
        message = _run(args)
    except VerificationError as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return 1
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
