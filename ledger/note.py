"""C2SP signed notes (c2sp.org/signed-note) and tlog checkpoints (c2sp.org/tlog-checkpoint).

Using the same format as the Go ecosystem (golang.org/x/mod/sumdb/note, transparency-dev) means
checkpoints published by the hospital portal can be checked with independent, widely reviewed
tools, not only with this code.  Only Ed25519 (signature type 0x01) is supported, as the spec
recommends implementations pick just what they need.

Format summary::

    <note text: one or more lines, each ending in "\\n">
    <blank line>
    — <key name> <base64(4-byte big-endian key ID || 64-byte Ed25519 signature)>
    ...more signature lines...

The Ed25519 signature covers the note text (UTF-8) including its final newline.  Key ID =
``SHA-256(key name || 0x0A || 0x01 || public key)[:4]``.

Key strings follow the Go ``note`` package:

* verifier key: ``<name>+<8 hex digits key ID>+<base64(0x01 || 32-byte public key)>``
* signer key:   ``PRIVATE+KEY+<name>+<8 hex digits key ID>+<base64(0x01 || 32-byte seed)>``
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "ALG_ED25519",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "SIGNATURE_PREFIX",
    "Checkpoint",
    "NoteError",
    "Signature",
    "Signer",
    "VKey",
    "Verifier",
    "decode_base64",
    "encode_base64",
    "generate_signer",
    "is_valid_key_name",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint_body",
    "parse_skey",
    "parse_vkey",
    "sign_checkpoint",
    "split_note",
]

ALG_ED25519 = 0x01
"""Signature type identifier byte for Ed25519 (c2sp.org/signed-note)."""

SIGNATURE_PREFIX = "\u2014 "
"""Every signature line starts with an EM DASH (U+2014) and a space."""

MAX_SIGNATURES = 100
"""Same cap as the Go reference implementation; the spec requires accepting at least 16."""

MAX_NOTE_BYTES = 1 << 20
"""Refuse absurdly large notes before doing any work on them (DoS hygiene)."""

HASH_SIZE = 32

_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_MAX_TREE_SIZE = (1 << 64) - 1  # tree sizes are uint64 everywhere else in the ecosystem


class NoteError(ValueError):
    """A note, key or checkpoint is malformed or its signature does not verify."""


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def is_valid_key_name(name: object) -> bool:
    """Key names must be non-empty and contain neither Unicode spaces nor ``+``."""
    return (
        isinstance(name, str)
        and name != ""
        and "+" not in name
        and not any(ch.isspace() or ch < " " or ch == "\x7f" for ch in name)
    )


def _require_name(name: str) -> str:
    if not is_valid_key_name(name):
        raise NoteError(
            f"invalid key name {name!r}: it must be non-empty and contain no spaces or '+'"
        )
    return name


def key_id(name: str, public_key: bytes, alg: int = ALG_ED25519) -> int:
    """Key ID: ``SHA-256(name || "\\n" || alg || public_key)[:4]`` as a big-endian int.

    ``alg`` is the signature type byte: 0x01 for note signatures, 0x04 for Ed25519
    cosignatures (c2sp.org/tlog-cosignature), so one key has a different ID per use.
    """
    material = name.encode("utf-8") + b"\n" + bytes([alg]) + bytes(public_key)
    digest = hashlib.sha256(material).digest()
    return int.from_bytes(digest[:4], "big")


def decode_base64(text: str, what: str) -> bytes:
    """Strict standard base64 (RFC 4648 section 4, padded) that must also be canonical.

    Canonical re-encoding is required so that one value has exactly one textual form: two
    receipts for the same checkpoint then compare equal byte for byte.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NoteError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def encode_base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _check_text(text: str, what: str) -> None:
    """Reject what the spec forbids anywhere in a note: bad UTF-8 and ASCII control chars."""
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError(f"{what} is not valid UTF-8 (it contains lone surrogates)") from None
    if len(encoded) > MAX_NOTE_BYTES:
        raise NoteError(f"{what} is larger than {MAX_NOTE_BYTES} bytes")
    for ch in text:
        if ch < " " and ch != "\n":
            raise NoteError(
                f"{what} contains the control character U+{ord(ch):04X}; only newline "
                "(U+000A) is allowed (a note edited on Windows may have gained '\\r')"
            )


def _check_body(body: str) -> None:
    if not isinstance(body, str):
        raise NoteError(f"note text must be str, got {type(body).__name__}")
    if not body:
        raise NoteError("note text is empty")
    if not body.endswith("\n"):
        raise NoteError("note text must end with a newline")
    _check_text(body, "note text")


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VKey:
    """A parsed verifier key string of any signature type (c2sp.org/signed-note vkeys)."""

    name: str
    key_id: int
    alg: int
    key: bytes


def parse_vkey(vkey: str) -> VKey:
    """Parse ``<name>+<hex key ID>+<base64(type byte || key material)>``.

    The key ID is recomputed as ``SHA-256(name || "\\n" || type || key)[:4]`` and must match,
    which catches truncated or mixed-up keys; callers check the type byte they support.
    """
    if not isinstance(vkey, str):
        raise NoteError("verifier key must be a string")
    vkey = vkey.strip()
    if vkey.startswith("PRIVATE+KEY+"):
        # Never echo it back: it is a secret.
        raise NoteError(
            "this is a private signer key, not a public verifier key; "
            "give the verifier only the public key"
        )
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise NoteError("malformed verifier key: expected <name>+<key id>+<base64 key>")
    name, hex_id, b64 = parts
    _require_name(name)
    if not _HEX8.fullmatch(hex_id):
        raise NoteError(f"malformed verifier key: key ID {hex_id!r} is not 8 hex digits")
    raw = decode_base64(b64, "verifier public key")
    if len(raw) < 2:
        raise NoteError("malformed verifier key: empty public key")
    alg, key = raw[0], raw[1:]
    expected = key_id(name, key, alg)
    if int(hex_id, 16) != expected:
        raise NoteError(
            f"verifier key ID {hex_id} does not match its name and public key "
            f"(expected {expected:08x})"
        )
    return VKey(name=name, key_id=expected, alg=alg, key=key)


def parse_skey(skey: str) -> tuple[str, int, int, bytes]:
    """Split ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type || secret)>``.

    Returns ``(name, key ID as written, type byte, secret)``; the caller checks the type and
    the key ID.  Error messages never include the key material.
    """
    if not isinstance(skey, str):
        raise NoteError("signer key must be a string")
    parts = skey.strip().split("+", 4)
    if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
        raise NoteError("malformed signer key: expected PRIVATE+KEY+<name>+<key id>+<base64 seed>")
    _, _, name, hex_id, b64 = parts
    if not is_valid_key_name(name):
        raise NoteError("malformed signer key: invalid key name")
    if not _HEX8.fullmatch(hex_id):
        raise NoteError("malformed signer key: key ID is not 8 hex digits")
    try:
        raw = decode_base64(b64, "signer key")
    except NoteError:
        raise NoteError("malformed signer key: the key is not valid base64") from None
    if len(raw) < 2:
        raise NoteError("malformed signer key: empty key")
    return name, int(hex_id, 16), raw[0], raw[1:]


@dataclass(frozen=True)
class Verifier:
    """A trusted Ed25519 public key with its note key name and key ID."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> Verifier:
        """Build a verifier for a raw 32-byte Ed25519 public key."""
        _require_name(name)
        if len(public_key) != 32:
            raise NoteError(f"Ed25519 public key must be 32 bytes, got {len(public_key)}")
        return cls(name=name, key_id=key_id(name, public_key), public_key=bytes(public_key))

    @classmethod
    def from_string(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<hex key ID>+<base64(0x01 || public key)>``.

        The key ID is recomputed and must match, which catches truncated or mixed-up keys.
        """
        parsed = parse_vkey(vkey)
        if parsed.alg != ALG_ED25519:
            raise NoteError(
                f"unsupported verifier key algorithm 0x{parsed.alg:02x} (want Ed25519, 0x01)"
                + (
                    ": this is a witness cosignature key (0x04), not a log key"
                    if parsed.alg == 0x04
                    else ""
                )
            )
        if len(parsed.key) != 32:
            raise NoteError(f"Ed25519 public key must be 32 bytes, got {len(parsed.key)}")
        return cls(name=parsed.name, key_id=parsed.key_id, public_key=parsed.key)

    def to_string(self) -> str:
        """Encode as a verifier key string (the public ``vkey``)."""
        key = encode_base64(bytes([ALG_ED25519]) + self.public_key)
        return f"{self.name}+{self.key_id:08x}+{key}"

    def __str__(self) -> str:
        return self.to_string()

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` is this key's Ed25519 signature of ``message``."""
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Signer:
    """An Ed25519 note signing key.  ``repr`` never shows key material."""

    __slots__ = ("_private", "key_id", "name", "public_key")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = _require_name(name)
        self._private = private_key
        self.public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id(name, self.public_key)

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id:08x})"

    @classmethod
    def generate(cls, name: str) -> Signer:
        """Create a fresh random key."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_string(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>``.

        Error messages never include the key material.
        """
        name, hex_id, alg, seed = parse_skey(skey)
        if alg != ALG_ED25519 or len(seed) != 32:
            raise NoteError("malformed signer key: expected 0x01 followed by a 32-byte seed")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        if hex_id != signer.key_id:
            raise NoteError("signer key ID does not match its name and key")
        return signer

    def to_string(self) -> str:
        """Encode as a signer key string (secret!)."""
        seed = self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        key = encode_base64(bytes([ALG_ED25519]) + seed)
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{key}"

    def verifier(self) -> Verifier:
        """The matching public verifier."""
        return Verifier(name=self.name, key_id=self.key_id, public_key=self.public_key)

    def vkey(self) -> str:
        """The matching public verifier key string, to publish to patients and auditors."""
        return self.verifier().to_string()

    def sign(self, message: bytes) -> bytes:
        """Raw Ed25519 signature (deterministic, RFC 8032)."""
        return self._private.sign(message)

    def signature_line(self, body: str) -> str:
        """The ``— name base64(keyid || sig)\\n`` line for ``body``."""
        _check_body(body)
        sig = self.sign(body.encode("utf-8"))
        raw = encode_base64(self.key_id.to_bytes(4, "big") + sig)
        return f"{SIGNATURE_PREFIX}{self.name} {raw}\n"

    def sign_note(self, body: str) -> str:
        """Return the signed note: ``body``, a blank line, and this key's signature line."""
        return body + "\n" + self.signature_line(body)


def generate_signer(name: str) -> tuple[str, str]:
    """Generate a new key: returns ``(signer_key_string, verifier_key_string)``."""
    signer = Signer.generate(name)
    return signer.to_string(), signer.vkey()


# --------------------------------------------------------------------------------------------
# Notes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """One parsed signature line (not necessarily verified)."""

    name: str
    key_id: int
    signature: bytes


def split_note(note_text: str | bytes) -> tuple[str, list[Signature]]:
    """Parse a signed note into its text and signature lines, *without* verifying anything.

    Follows the Go reference parser: the text ends at the *last* blank line; every line after
    it must be a well-formed signature line.
    """
    if isinstance(note_text, (bytes, bytearray)):
        try:
            note_text = bytes(note_text).decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not valid UTF-8") from None
    if not isinstance(note_text, str):
        raise NoteError(f"note must be text, got {type(note_text).__name__}")
    _check_text(note_text, "note")
    split = note_text.rfind("\n\n")
    if split < 0:
        raise NoteError(
            "malformed note: no blank line separating the text from the signature lines"
        )
    text = note_text[: split + 1]
    block = note_text[split + 2 :]
    if not block:
        raise NoteError("malformed note: no signature lines after the blank line")
    if not block.endswith("\n"):
        raise NoteError("malformed note: the last signature line does not end with a newline")
    signatures: list[Signature] = []
    for number, line in enumerate(block[:-1].split("\n"), start=1):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(
                f"malformed note: signature line {number} does not start with "
                "an em dash (U+2014) and a space"
            )
        name, sep, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not sep or not b64:
            raise NoteError(f"malformed note: signature line {number} has no signature")
        if not is_valid_key_name(name):
            raise NoteError(f"malformed note: signature line {number} has an invalid key name")
        raw = decode_base64(b64, f"signature on line {number}")
        if len(raw) < 5:
            raise NoteError(f"malformed note: signature on line {number} is too short")
        if len(signatures) >= MAX_SIGNATURES:
            raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
        signatures.append(Signature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
    return text, signatures


def open_note(note_text: str | bytes, verifier: Verifier | Iterable[Verifier]) -> str:
    """Verify a signed note against trusted key(s) and return its text.

    As the spec requires: signatures from unknown keys (name *and* key ID not both matching a
    trusted key) are ignored; a signature from a trusted key that fails to verify rejects the
    whole note; and at least one trusted signature must verify.  Raises :class:`NoteError`.
    """
    verifiers = [verifier] if isinstance(verifier, Verifier) else list(verifier)
    if not verifiers:
        raise NoteError("no trusted verifier keys were given")
    known = {(v.name, v.key_id): v for v in verifiers}
    text, signatures = split_note(note_text)
    message = text.encode("utf-8")
    verified: list[str] = []
    seen: set[tuple[str, int]] = set()
    for sig in signatures:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            continue
        if (sig.name, sig.key_id) in seen:
            continue  # Go drops repeated signatures by one key without re-verifying.
        seen.add((sig.name, sig.key_id))
        if not v.verify(message, sig.signature):
            raise NoteError(
                f"invalid signature by trusted key {sig.name}+{sig.key_id:08x}: "
                "the note text or the signature was altered"
            )
        verified.append(sig.name)
    if not verified:
        trusted = ", ".join(f"{v.name}+{v.key_id:08x}" for v in verifiers)
        found = ", ".join(f"{s.name}+{s.key_id:08x}" for s in signatures)
        hint = ""
        names = {v.name for v in verifiers}
        if any(s.name in names for s in signatures):
            hint = " (same key name but a different key ID: signed by a different key)"
        raise NoteError(
            f"note is not signed by the trusted key {trusted}; it carries signatures by "
            f"{found}{hint}"
        )
    return text


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint: the log identity, tree size and RFC 6962/9162 root hash."""

    origin: str
    size: int
    root: bytes
    extensions: list[str] = field(default_factory=list)

    def body(self) -> str:
        """The checkpoint note text: origin, size, base64 root, extension lines."""
        if not isinstance(self.origin, str) or not self.origin:
            raise NoteError("checkpoint origin must be a non-empty string")
        if "\n" in self.origin:
            raise NoteError("checkpoint origin must be a single line")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError("checkpoint size must be an int")
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise NoteError(f"checkpoint size {self.size} is out of range")
        if not isinstance(self.root, (bytes, bytearray)) or len(self.root) != HASH_SIZE:
            raise NoteError(f"checkpoint root must be {HASH_SIZE} bytes")
        for ext in self.extensions:
            if not isinstance(ext, str) or not ext or "\n" in ext:
                raise NoteError("checkpoint extension lines must be non-empty single lines")
        lines = [self.origin, str(self.size), encode_base64(bytes(self.root)), *self.extensions]
        text = "".join(line + "\n" for line in lines)
        _check_text(text, "checkpoint")
        return text


def parse_checkpoint_body(text: str) -> Checkpoint:
    """Parse (strictly) the text of a checkpoint note.  Raises :class:`NoteError`."""
    if not isinstance(text, str):
        raise NoteError("checkpoint text must be str")
    _check_text(text, "checkpoint")
    if not text.endswith("\n"):
        raise NoteError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError(
            f"checkpoint must have at least 3 lines (origin, size, root hash), got {len(lines)}"
        )
    origin, size_line, root_line, *extensions = lines
    if not origin:
        raise NoteError("checkpoint origin line is empty")
    if not _DECIMAL.fullmatch(size_line):
        raise NoteError(
            f"checkpoint size {size_line!r} is not a decimal number without leading zeros"
        )
    size = int(size_line)
    if size > _MAX_TREE_SIZE:
        raise NoteError(f"checkpoint size {size_line} is too large")
    root = decode_base64(root_line, "checkpoint root hash")
    if len(root) != HASH_SIZE:
        raise NoteError(f"checkpoint root hash must be {HASH_SIZE} bytes, got {len(root)}")
    for ext in extensions:
        if not ext:
            raise NoteError("checkpoint extension lines must be non-empty")
    return Checkpoint(origin=origin, size=size, root=root, extensions=list(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """Return the signed note for ``checkpoint``."""
    return signer.sign_note(checkpoint.body())


def open_checkpoint(
    note_text: str | bytes,
    verifier: Verifier | Iterable[Verifier],
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Verify a signed checkpoint note and parse it.

    Pass ``origin`` to also require the checkpoint to come from that log: the key alone does
    not say which log it signed for, if one key were ever reused.
    """
    checkpoint = parse_checkpoint_body(open_note(note_text, verifier))
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint is for log {checkpoint.origin!r}, expected log {origin!r}")
    return checkpoint
