"""Witness cosignatures (c2sp.org/tlog-cosignature) on tlog checkpoints.

A cosignature is an ordinary signed-note signature line added to a checkpoint by a *witness*,
saying "as of this time, this is the largest tree I have seen for this log, and it is
consistent with everything I saw before".  Anyone holding a quorum of witness keys can then
trust a checkpoint even if the log operator (the hospital) rewrote its own database.

Two cosignature types exist; both are verified and produced here:

* ``cosignature/v1`` (Ed25519, signature type 0x04)::

      key ID  = SHA-256(name || "\\n" || 0x04 || 32-byte public key)[:4]
      line    = "— " name " " base64(key ID || u64be timestamp || 64-byte signature)
      message = "cosignature/v1\\n" "time " <timestamp> "\\n" <whole checkpoint note text>

* ``subtree/v1`` (ML-DSA-44, type 0x06): the message is the binary
  ``cosigned_message`` structure of the spec, covering the cosigner name, timestamp, origin,
  ``[0, size)`` and the root hash, but not the extension lines.

The Ed25519 message covers the checkpoint's extension lines too (the spec says so; the
``filippo.io/torchwood`` implementation signs only the first three lines), which is one more
reason the portal's checkpoints carry none.

Only the Python standard library and ``cryptography`` are used: the standalone witness and
verifier import this module without Django.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger import note

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_MLDSA44",
    "MAX_TIMESTAMP",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "add_signature_lines",
    "cosignature_timestamp",
    "cosigned_message",
    "parse_signature_lines",
    "verify_cosignatures",
]

ALG_COSIGNATURE_V1 = 0x04
"""Signature type byte of Ed25519 ``cosignature/v1`` keys."""

ALG_MLDSA44 = 0x06
"""Signature type byte of ML-DSA-44 ``subtree/v1`` cosignature keys."""

MAX_TIMESTAMP = (1 << 63) - 1
"""The spec caps timestamps at 2^63 - 1."""

_ED25519_SIG = 64
_MLDSA44_PUBLIC = 1312
_MLDSA44_SIG = 2420
_SUBTREE_LABEL = b"subtree/v1\n\x00"


def _check_timestamp(timestamp: object) -> int:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise note.NoteError("cosignature timestamp must be an int (POSIX seconds)")
    if not 0 < timestamp <= MAX_TIMESTAMP:
        # tlog-witness: "the timestamp MUST NOT be zero"; tlog-cosignature: at most 2^63 - 1.
        raise note.NoteError(f"cosignature timestamp {timestamp} is out of range (1..2^63-1)")
    return timestamp


def cosigned_message(checkpoint_body: str, timestamp: int) -> bytes:
    """The exact bytes an Ed25519 ``cosignature/v1`` signs for ``checkpoint_body``.

    ``checkpoint_body`` is the checkpoint note's text (origin, size, root, extension lines, each
    ending in a newline), without the blank line and signature lines.
    """
    note.parse_checkpoint_body(checkpoint_body)  # a cosignature is only ever on a checkpoint
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise note.NoteError("cosignature timestamp must be an int")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise note.NoteError(f"cosignature timestamp {timestamp} is out of range")
    return f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint_body.encode("utf-8")


def _subtree_message(name: str, timestamp: int, checkpoint: note.Checkpoint) -> bytes:
    """The ML-DSA-44 ``cosigned_message`` structure for a whole checkpoint (start 0)."""
    raw_name = name.encode("utf-8")
    raw_origin = checkpoint.origin.encode("utf-8")
    if not 1 <= len(raw_name) <= 255 or not 1 <= len(raw_origin) <= 255:
        raise note.NoteError("cosigner name and log origin must be 1..255 bytes for ML-DSA-44")
    return b"".join(
        (
            _SUBTREE_LABEL,
            bytes([len(raw_name)]),
            raw_name,
            struct.pack(">Q", timestamp),
            bytes([len(raw_origin)]),
            raw_origin,
            struct.pack(">QQ", 0, checkpoint.size),
            checkpoint.root,
        )
    )


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CosignatureVerifier:
    """A witness's public key: name, key ID and key (Ed25519 0x04 or ML-DSA-44 0x06)."""

    name: str
    key_id: int
    public_key: bytes
    alg: int = ALG_COSIGNATURE_V1

    @classmethod
    def from_public_key(
        cls, name: str, public_key: bytes, alg: int = ALG_COSIGNATURE_V1
    ) -> CosignatureVerifier:
        """Build a verifier for a raw public key of type ``alg``."""
        if not note.is_valid_key_name(name):
            raise note.NoteError(f"invalid witness key name {name!r}")
        _check_key(alg, bytes(public_key))
        return cls(
            name=name,
            key_id=note.key_id(name, bytes(public_key), alg),
            public_key=bytes(public_key),
            alg=alg,
        )

    @classmethod
    def from_string(cls, vkey: str) -> CosignatureVerifier:
        """Parse a witness vkey ``<name>+<hex key ID>+<base64(0x04 || 32-byte key)>``.

        ML-DSA-44 vkeys (type 0x06) are accepted too.  An ordinary note key (type 0x01) is
        refused with a hint: its key ID differs from the cosignature key ID of the same key.
        """
        parsed = note.parse_vkey(vkey)
        if parsed.alg == note.ALG_ED25519:
            raise note.NoteError(
                f"witness key {parsed.name!r} has signature type 0x01 (a log/note key); a "
                "cosignature/v1 witness key has type 0x04 (c2sp.org/tlog-cosignature)"
            )
        _check_key(parsed.alg, parsed.key)
        return cls(name=parsed.name, key_id=parsed.key_id, public_key=parsed.key, alg=parsed.alg)

    def to_string(self) -> str:
        """The vkey string."""
        return (
            f"{self.name}+{self.key_id:08x}+"
            f"{note.encode_base64(bytes([self.alg]) + self.public_key)}"
        )

    def __str__(self) -> str:
        return self.to_string()

    def verify(self, checkpoint_body: str, signature: bytes) -> int | None:
        """Check ``signature`` (``timestamp || sig``) on the checkpoint text.

        Returns the cosignature's timestamp when it verifies, ``None`` otherwise.
        """
        want = 8 + (_ED25519_SIG if self.alg == ALG_COSIGNATURE_V1 else _MLDSA44_SIG)
        if len(signature) != want:
            return None
        (timestamp,) = struct.unpack(">Q", signature[:8])
        if timestamp > MAX_TIMESTAMP:
            return None
        sig = signature[8:]
        try:
            if self.alg == ALG_COSIGNATURE_V1:
                message = cosigned_message(checkpoint_body, timestamp)
                Ed25519PublicKey.from_public_bytes(self.public_key).verify(sig, message)
            else:
                checkpoint = note.parse_checkpoint_body(checkpoint_body)
                _mldsa_verify(
                    self.public_key, sig, _subtree_message(self.name, timestamp, checkpoint)
                )
        except (InvalidSignature, note.NoteError):
            return None
        return timestamp


def _check_key(alg: int, key: bytes) -> None:
    if alg == ALG_COSIGNATURE_V1:
        if len(key) != 32:
            raise note.NoteError(f"Ed25519 witness key must be 32 bytes, got {len(key)}")
    elif alg == ALG_MLDSA44:
        if len(key) != _MLDSA44_PUBLIC:
            raise note.NoteError(
                f"ML-DSA-44 witness key must be {_MLDSA44_PUBLIC} bytes, got {len(key)}"
            )
    else:
        raise note.NoteError(
            f"unsupported witness key type 0x{alg:02x} (want 0x04 Ed25519 cosignature/v1 "
            "or 0x06 ML-DSA-44)"
        )


def _mldsa() -> Any:
    """The ``cryptography`` ML-DSA module; an older ``cryptography`` fails closed, saying why."""
    try:
        from cryptography.hazmat.primitives.asymmetric import mldsa
    except ImportError:
        raise note.NoteError("this version of cryptography has no ML-DSA-44") from None
    return mldsa


def _mldsa_verify(public_key: bytes, signature: bytes, message: bytes) -> None:
    try:
        key = _mldsa().MLDSA44PublicKey.from_public_bytes(public_key)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise note.NoteError(f"cannot load ML-DSA-44 key: {exc}") from None
    key.verify(signature, message)


class CosignatureSigner:
    """A witness's cosigning key: Ed25519 (``cosignature/v1``) or ML-DSA-44 (``subtree/v1``).

    ``repr`` never shows key material.  Key string format: the signed-note signer key syntax
    ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type || 32-byte seed)>`` with type 0x04 (Ed25519)
    or 0x06 (ML-DSA-44, the seed as in transparency-dev's keys).  A plain Ed25519 note key
    (type 0x01, as transparency-dev's ``generate_keys`` writes) is accepted on reading too.
    """

    __slots__ = ("_private", "alg", "key_id", "name", "public_key")

    def __init__(self, name: str, private_key: Any) -> None:
        if not note.is_valid_key_name(name):
            raise note.NoteError(
                f"invalid witness name {name!r}: it must be non-empty and contain no spaces or '+'"
            )
        self.name = name
        self._private = private_key
        if isinstance(private_key, Ed25519PrivateKey):
            self.alg = ALG_COSIGNATURE_V1
        elif isinstance(private_key, _mldsa().MLDSA44PrivateKey):
            if len(name.encode("utf-8")) > 255:
                raise note.NoteError("an ML-DSA-44 cosigner name must be at most 255 bytes")
            self.alg = ALG_MLDSA44
        else:
            raise note.NoteError("a witness key must be Ed25519 or ML-DSA-44")
        self.public_key: bytes = private_key.public_key().public_bytes_raw()
        self.key_id = note.key_id(name, self.public_key, self.alg)

    def __repr__(self) -> str:
        return f"CosignatureSigner(name={self.name!r}, key_id={self.key_id:08x}, alg={self.alg})"

    @classmethod
    def generate(cls, name: str, alg: int = ALG_COSIGNATURE_V1) -> CosignatureSigner:
        """A fresh random key of type ``alg`` (0x04 Ed25519, 0x06 ML-DSA-44)."""
        if alg == ALG_COSIGNATURE_V1:
            return cls(name, Ed25519PrivateKey.generate())
        if alg == ALG_MLDSA44:
            return cls(name, _mldsa().MLDSA44PrivateKey.generate())
        raise note.NoteError(f"unsupported witness key type 0x{alg:02x}")

    @classmethod
    def from_string(cls, skey: str) -> CosignatureSigner:
        """Parse a signer key string (type 0x04 or 0x06, or a plain 0x01 Ed25519 note key)."""
        name, hex_id, alg, seed = note.parse_skey(skey)
        if len(seed) != 32:
            raise note.NoteError("malformed witness key: expected a 32-byte seed")
        if alg in (ALG_COSIGNATURE_V1, note.ALG_ED25519):
            signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        elif alg == ALG_MLDSA44:
            signer = cls(name, _mldsa().MLDSA44PrivateKey.from_seed_bytes(seed))
        else:
            raise note.NoteError(
                f"malformed witness key: type 0x{alg:02x} (want 0x04 Ed25519 or 0x06 ML-DSA-44)"
            )
        if hex_id != note.key_id(name, signer.public_key, alg):
            raise note.NoteError("witness key ID does not match its name and key")
        return signer

    def to_string(self) -> str:
        """The signer key string (secret!)."""
        raw = note.encode_base64(bytes([self.alg]) + self._private.private_bytes_raw())
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{raw}"

    def verifier(self) -> CosignatureVerifier:
        """The matching public verifier."""
        return CosignatureVerifier(
            name=self.name, key_id=self.key_id, public_key=self.public_key, alg=self.alg
        )

    def vkey(self) -> str:
        """The public vkey to publish."""
        return self.verifier().to_string()

    def cosign(self, checkpoint_body: str, *, timestamp: int) -> str:
        """The ``— <name> base64(key ID || timestamp || signature)\\n`` line for the checkpoint."""
        _check_timestamp(timestamp)
        if self.alg == ALG_COSIGNATURE_V1:
            message = cosigned_message(checkpoint_body, timestamp)
        else:
            checkpoint = note.parse_checkpoint_body(checkpoint_body)
            message = _subtree_message(self.name, timestamp, checkpoint)
        sig = self._private.sign(message)
        raw = self.key_id.to_bytes(4, "big") + struct.pack(">Q", timestamp) + sig
        return f"{note.SIGNATURE_PREFIX}{self.name} {note.encode_base64(raw)}\n"


# --------------------------------------------------------------------------------------------
# Cosigned notes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cosignature:
    """A verified cosignature: which witness, and when it says it saw the checkpoint."""

    name: str
    key_id: int
    timestamp: int
    verifier: CosignatureVerifier

    @property
    def time(self) -> datetime.datetime:
        """The timestamp as an aware UTC datetime."""
        return datetime.datetime.fromtimestamp(self.timestamp, tz=datetime.UTC)


def cosignature_timestamp(signature: note.Signature) -> int:
    """The timestamp written in a cosignature line, WITHOUT verifying it."""
    if len(signature.signature) < 8 + _ED25519_SIG:
        raise note.NoteError(f"signature by {signature.name} is too short to be a cosignature")
    (timestamp,) = struct.unpack(">Q", signature.signature[:8])
    if timestamp > MAX_TIMESTAMP:
        raise note.NoteError(f"cosignature by {signature.name} has a timestamp above 2^63-1")
    return int(timestamp)


def verify_cosignatures(
    note_text: str | bytes, verifiers: Iterable[CosignatureVerifier]
) -> list[Cosignature]:
    """Verify the cosignatures on a signed checkpoint by the given witness keys.

    As signed-note requires: lines from unknown keys (name and key ID not both matching) are
    ignored, a repeated line by one key counts once, and a line that matches a trusted key but
    does not verify rejects the note (:class:`note.NoteError`).  The log's own signature is
    *not* checked here; use :func:`note.open_checkpoint` for that.  Returns the verified
    cosignatures in note order (possibly none).
    """
    known = {(v.name, v.key_id): v for v in verifiers}
    text, signatures = note.split_note(note_text)
    note.parse_checkpoint_body(text)
    found: list[Cosignature] = []
    seen: set[tuple[str, int]] = set()
    for sig in signatures:
        v = known.get((sig.name, sig.key_id))
        if v is None or (sig.name, sig.key_id) in seen:
            continue
        seen.add((sig.name, sig.key_id))
        timestamp = v.verify(text, sig.signature)
        if timestamp is None:
            raise note.NoteError(
                f"invalid cosignature by witness {sig.name}+{sig.key_id:08x}: the checkpoint "
                "or the cosignature was altered"
            )
        found.append(Cosignature(sig.name, sig.key_id, timestamp, v))
    return found


def parse_signature_lines(lines: str | bytes) -> list[note.Signature]:
    """Parse a block of signature lines, e.g. a tlog-witness ``add-checkpoint`` response body.

    Each line must be ``— <name> <base64>`` ending in a newline; nothing is verified.
    """
    if isinstance(lines, (bytes, bytearray)):
        try:
            lines = bytes(lines).decode("utf-8")
        except UnicodeDecodeError:
            raise note.NoteError("signature lines are not valid UTF-8") from None
    if not lines:
        raise note.NoteError("no signature lines")
    # Reuse the note parser: a dummy text plus a blank line makes the block a note.
    _, signatures = note.split_note("x\n\n" + lines)
    return signatures


def add_signature_lines(note_text: str, lines: str) -> str:
    """Append signature lines to a signed note, dropping lines already present.

    Used to attach witness responses to the log's checkpoint; verify the result with
    :func:`verify_cosignatures` (unknown or bad lines are not filtered here).
    """
    _, existing = note.split_note(note_text)
    new = parse_signature_lines(lines)
    out = note_text
    have = {(s.name, s.key_id, s.signature) for s in existing}
    for sig in new:
        key = (sig.name, sig.key_id, sig.signature)
        if key in have:
            continue
        have.add(key)
        raw = sig.key_id.to_bytes(4, "big") + sig.signature
        out += f"{note.SIGNATURE_PREFIX}{sig.name} {note.encode_base64(raw)}\n"
    note.split_note(out)  # still a well-formed note (e.g. not over the signature cap)
    return out
