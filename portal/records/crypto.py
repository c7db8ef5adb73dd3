"""Field-level encryption at rest: a master key ring, per-hospital data keys, AES-GCM blobs and
keyed blind indexes.

Key hierarchy
- The master key ring comes from the environment (settings.FIELD_ENCRYPTION_KEYS,
  "id:base64(32 bytes)[,id:base64...]"). The FIRST entry is current: it wraps new and re-wrapped
  data keys. The other entries stay readable so that rotation can run while the site is up.
- Each hospital has data keys (DEKs, `HospitalKey` rows): 32 random bytes, stored only wrapped
  (AES-GCM under a master key, bound by associated data to the hospital and the DEK version).
  Exactly one version per hospital is current and encrypts new values; older versions stay
  readable because every blob names the version that encrypted it. Versions are never reused
  or deleted, so a cached DEK can never become wrong: re-wrapping changes the wrapping, not the
  DEK, and a new DEK is a new version number.
- Values are AES-GCM blobs: b"\\x01" (format) + 4-byte big-endian DEK version + 12-byte nonce +
  ciphertext||tag. The associated data is the blob header plus `aad_for(...)`, which binds a
  value to its hospital, model, field and row; a blob copied to another row, field or hospital
  fails authentication.

Blind indexes (`blind_index`) are HMAC-SHA256 under an index key derived (HKDF-SHA256) from
the hospital's DEK *version 1*. Deriving from version 1 rather than the current version keeps
indexes stable across DEK rotations, so `rotate_keys --new-data-keys` needs no index rebuild.
The trade-off: rotating DEKs does not rotate the index key; version 1 stays in the database
(wrapped, and re-wrapped by every master rotation) for as long as indexes use it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import re
import threading
import time
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction

FORMAT_VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
HEADER_BYTES = 1 + 4
MIN_BLOB_BYTES = HEADER_BYTES + NONCE_BYTES + TAG_BYTES

_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class DecryptionError(Exception):
    """A blob could not be decrypted: tampered with, truncated, or bound to another hospital,
    model, field or row. The message never contains plaintext or key material."""


class MissingDataKey(DecryptionError):
    """A blob names a data key version that the hospital does not have."""


# --- the master key ring ------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRing:
    """The master keys from settings.FIELD_ENCRYPTION_KEYS; the first one is current."""

    entries: tuple[tuple[str, bytes], ...]

    def __repr__(self) -> str:  # never show key material
        return f"KeyRing(ids={list(self.ids)!r})"

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        return _parse_ring(text)

    @classmethod
    def from_settings(cls) -> KeyRing:
        return _parse_ring(getattr(settings, "FIELD_ENCRYPTION_KEYS", "") or "")

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(key_id for key_id, _ in self.entries)

    @property
    def current_id(self) -> str:
        return self.entries[0][0]

    def __contains__(self, key_id: object) -> bool:
        return key_id in self.ids

    def key(self, key_id: str) -> bytes:
        for entry_id, material in self.entries:
            if entry_id == key_id:
                return material
        raise ImproperlyConfigured(
            f"Master key {key_id!r} is not in FIELD_ENCRYPTION_KEYS (the ring holds "
            f"{', '.join(self.ids)}). Add it back to the ring, or run rotate_keys while it was "
            "still there."
        )


# Parsed rings are cached by their text, so override_settings and a changed environment are
# picked up at once while a steady ring is parsed only once.
@lru_cache(maxsize=8)
def _parse_ring(text: str) -> KeyRing:
    entries: list[tuple[str, bytes]] = []
    raw_entries = [part.strip() for part in text.split(",")]
    if not text.strip():
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS is empty; expected 'id:base64(32 bytes)[,id:base64...]'."
        )
    for position, raw in enumerate(raw_entries, start=1):
        key_id, sep, encoded = raw.partition(":")
        key_id = key_id.strip()
        # The messages name the entry's position and id only, never the material.
        if not sep or not _KEY_ID.match(key_id):
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS entry {position} is malformed: expected "
                "'id:base64(32 bytes)' with an id of letters, digits, '_', '.' or '-'."
            )
        try:
            material = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS entry {position} ({key_id!r}) is not valid base64."
            ) from None
        if len(material) != KEY_BYTES:
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS entry {position} ({key_id!r}) must decode to "
                f"{KEY_BYTES} bytes, not {len(material)}."
            )
        if any(key_id == seen for seen, _ in entries):
            raise ImproperlyConfigured(f"FIELD_ENCRYPTION_KEYS lists the id {key_id!r} twice.")
        entries.append((key_id, material))
    return KeyRing(tuple(entries))


# --- wrapping data keys -------------------------------------------------------------------


def _wrap_aad(hospital_id: int, version: int) -> bytes:
    return f"hospital-dek|{hospital_id}|{version}".encode()


def wrap_data_key(
    dek: bytes, *, hospital_id: int, version: int, ring: KeyRing | None = None
) -> tuple[str, bytes]:
    """Wrap a DEK under the ring's current master key: (master_key_id, nonce + ct||tag)."""
    ring = ring or KeyRing.from_settings()
    nonce = os.urandom(NONCE_BYTES)
    wrapped = AESGCM(ring.key(ring.current_id)).encrypt(nonce, dek, _wrap_aad(hospital_id, version))
    return ring.current_id, nonce + wrapped


def unwrap_data_key(
    wrapped_key: bytes,
    *,
    master_key_id: str,
    hospital_id: int,
    version: int,
    ring: KeyRing | None = None,
) -> bytes:
    """Unwrap a stored DEK; ImproperlyConfigured if its master key is not in the ring."""
    ring = ring or KeyRing.from_settings()
    master = ring.key(master_key_id)
    wrapped_key = bytes(wrapped_key)
    try:
        return AESGCM(master).decrypt(
            wrapped_key[:NONCE_BYTES], wrapped_key[NONCE_BYTES:], _wrap_aad(hospital_id, version)
        )
    except InvalidTag:
        raise DecryptionError(
            f"Data key version {version} of hospital {hospital_id} does not unwrap under master "
            f"key {master_key_id!r}: the ring holds different key material under that id, or "
            "the stored key was altered."
        ) from None


# --- per-hospital data keys ---------------------------------------------------------------

# (hospital_id, version) -> DEK. Safe to keep for the life of the process because a version's
# DEK never changes (re-wrapping changes only its wrapping) and versions are never reused.
# The one hazard is a key row created inside a transaction that later rolls back: its DEK
# must never be cached, or a later key created under the same (hospital, version) would be
# shadowed. So keys created by this process are cached only once their transaction commits.
_dek_cache: dict[tuple[int, int], bytes] = {}
_cache_lock = threading.Lock()


class _Created(threading.local):
    """DEKs this thread created whose transaction has not committed yet: (hospital_id,
    version) -> (DEK, its wrapped bytes). Usable by this thread's connection only (no other
    connection sees the row), and only while the row it reads back is still this one: a
    creation rolled back (with its transaction or a savepoint) leaves no row, a row of a
    lower version, or another process's row with other wrapped bytes. An entry moves to the
    process cache when its transaction commits (transaction.on_commit)."""

    def __init__(self) -> None:
        self.keys: dict[tuple[int, int], tuple[bytes, bytes]] = {}
        # Never cached while here; clear_key_cache forgets the DEKs above, not this.
        self.uncommitted: set[tuple[int, int]] = set()


_created = _Created()


def clear_key_cache() -> None:
    """Forget every cached DEK (tests; rotate_keys after creating new versions)."""
    with _cache_lock:
        _dek_cache.clear()
        _created.keys.clear()
        _current_cache.clear()
        _ciphers.clear()
        _site_cache.clear()
        _subject_keys.clear()


def _remember(hospital_id: int, version: int, dek: bytes) -> None:
    with _cache_lock:
        if (hospital_id, version) not in _created.uncommitted:
            _dek_cache[(hospital_id, version)] = dek


# hospital_id -> (current version, monotonic time read). Re-read after CURRENT_TTL seconds,
# so a rotation in another process is picked up within that time without a query per value.
CURRENT_TTL = 30.0
_current_cache: dict[int, tuple[int, float]] = {}


def _created_dek(key: tuple[int, int], wrapped: Any = None) -> bytes | None:
    """The uncommitted DEK this thread created for `key`, if any. With `wrapped` (the row
    just read back), only if that row is the one this thread created."""
    entry = _created.keys.get(key)
    if entry is None:
        return None
    if wrapped is not None and bytes(wrapped) != entry[1]:
        _created_forget(key)  # rolled back: the row is another process's
        return None
    return entry[0]


def _created_forget_above(hospital_id: int, version: int) -> None:
    """The current row read back has `version` (0: none): this thread's uncommitted keys of
    that hospital above it were rolled back (versions only grow)."""
    for key in [k for k in _created.uncommitted if k[0] == hospital_id and k[1] > version]:
        _created_forget(key)


def _created_forget(key: tuple[int, int]) -> None:
    _created.keys.pop(key, None)
    _created.uncommitted.discard(key)


def _remember_created(hospital_id: int, version: int, dek: bytes, wrapped: bytes) -> None:
    """Cache a DEK this thread just created, once its row is committed."""
    key = (hospital_id, version)
    _created.keys[key] = (dek, bytes(wrapped))
    _created.uncommitted.add(key)

    def committed() -> None:
        entry = _created.keys.get(key)
        if entry is None or entry[0] is dek:
            _created_forget(key)
        with _cache_lock:
            _dek_cache[key] = dek

    # Outside an atomic block the savepoint that created the row was the whole transaction,
    # so on_commit runs at once; inside one it runs only if the outer transaction commits
    # (Django drops it if the transaction or savepoint rolls back).
    transaction.on_commit(committed)


def _uncommitted_hospitals() -> set[int]:
    # A current version read while its own creation is uncommitted must not be remembered.
    return {hospital_id for hospital_id, _version in _created.uncommitted}


def _unwrap_row(row) -> bytes:
    return unwrap_data_key(
        row.wrapped_key,
        master_key_id=row.master_key_id,
        hospital_id=row.hospital_id,
        version=row.version,
    )


def _create_first_key(hospital_id: int):
    """Create version 1 for a hospital, or return the one a concurrent process created."""
    from portal.records.keys_models import HospitalKey

    dek = os.urandom(KEY_BYTES)
    master_id, wrapped = wrap_data_key(dek, hospital_id=hospital_id, version=1)
    try:
        # A savepoint, so that losing the race does not break the caller's transaction.
        with transaction.atomic():
            row = HospitalKey.objects.create(
                hospital_id=hospital_id,
                version=1,
                master_key_id=master_id,
                wrapped_key=wrapped,
                is_current=True,
            )
    except IntegrityError:
        # Another process created it first (unique (hospital, version) and one current key
        # per hospital); its row is committed, or the unique check would not have failed.
        row = HospitalKey.objects.filter(hospital_id=hospital_id, version=1).first()
        if row is None:
            raise  # no such hospital (the foreign key failed), not a lost race
        return row, None
    _remember_created(hospital_id, 1, dek, wrapped)
    return row, dek


def create_data_key_version(hospital_id: int) -> int:
    """Make a new DEK version current for a hospital (rotate_keys --new-data-keys).

    Runs in its own transaction (a savepoint if one is open) and locks the current row, so two
    rotations cannot both create the same version."""
    from portal.records.keys_models import HospitalKey

    with transaction.atomic():
        current = (
            HospitalKey.objects.select_for_update()
            .filter(hospital_id=hospital_id, is_current=True)
            .first()
        )
        if current is None:
            row, _dek = _create_first_key(hospital_id)
            return row.version
        latest = (
            HospitalKey.objects.filter(hospital_id=hospital_id)
            .order_by("-version")
            .values_list("version", flat=True)
            .first()
        )
        version = int(latest) + 1
        dek = os.urandom(KEY_BYTES)
        master_id, wrapped = wrap_data_key(dek, hospital_id=hospital_id, version=version)
        # Clear the old flag first: the partial unique constraint allows one current key.
        HospitalKey.objects.filter(pk=current.pk).update(is_current=False)
        HospitalKey.objects.create(
            hospital_id=hospital_id,
            version=version,
            master_key_id=master_id,
            wrapped_key=wrapped,
            is_current=True,
        )
    _remember_created(hospital_id, version, dek, wrapped)
    _current_cache.pop(hospital_id, None)
    return version


def data_key(*, hospital_id: int, version: int | None = None) -> tuple[int, bytes]:
    """(version, 32-byte DEK) of a hospital; version None means the current one.

    The first call for a hospital creates its version 1. The current version is looked up in
    the database on every call (one indexed query), so a rotation in another process takes
    effect at once; DEKs of known versions come from the process cache. A DEK this thread
    created and has not committed yet is checked against its row first."""
    return _data_key(hospital_id, version, trust_created=False)


def _data_key(hospital_id: int, version: int | None, *, trust_created: bool) -> tuple[int, bytes]:
    """data_key; `trust_created`: a DEK of a known version that this thread created is
    used without reading its row back (decrypt: AES-GCM tells a wrong key, and decrypt then
    reads the row; a blind index could not tell)."""
    from portal.records.keys_models import HospitalKey

    hospital_id = int(hospital_id)
    if version is None:
        known = _current_cache.get(hospital_id)
        if known is not None and time.monotonic() - known[1] < CURRENT_TTL:
            version = known[0]
    if version is not None:
        version = int(version)
        cached = _dek_cache.get((hospital_id, version))
        if cached is None and trust_created:
            cached = _created_dek((hospital_id, version))
        if cached is not None:
            return version, cached
        row = HospitalKey.objects.filter(hospital_id=hospital_id, version=version).first()
        if row is None:
            if version != 1 or HospitalKey.objects.filter(hospital_id=hospital_id).exists():
                raise MissingDataKey(f"Hospital {hospital_id} has no data key version {version}.")
            _created_forget_above(hospital_id, 0)
            row, dek = _create_first_key(hospital_id)
            if dek is not None:
                return 1, dek
        cached = _created_dek((hospital_id, row.version), row.wrapped_key)
        if cached is not None:
            return row.version, cached
    else:
        row = HospitalKey.objects.filter(hospital_id=hospital_id, is_current=True).first()
        if row is None:
            _created_forget_above(hospital_id, 0)
            row, dek = _create_first_key(hospital_id)
            if dek is not None:
                return 1, dek
        _created_forget_above(hospital_id, row.version)
        if hospital_id not in _uncommitted_hospitals():
            _current_cache[hospital_id] = (row.version, time.monotonic())
        cached = _dek_cache.get((hospital_id, row.version)) or _created_dek(
            (hospital_id, row.version), row.wrapped_key
        )
        if cached is not None:
            return row.version, cached
    dek = _unwrap_row(row)
    _remember(hospital_id, row.version, dek)
    return row.version, dek


# --- values -------------------------------------------------------------------------------


def aad_for(*, hospital_id: int, model_label: str, field: str, row: str) -> str:
    """The associated data that binds a value to its hospital, model, field and row."""
    return f"{hospital_id}|{model_label}|{field}|{row}"


def _header(version: int) -> bytes:
    return bytes([FORMAT_VERSION]) + version.to_bytes(4, "big")


def encrypt_with_key(plaintext: bytes, *, version: int, dek: bytes, aad: str) -> bytes:
    """Encrypt under a DEK the caller already holds (rotate_keys: one key lookup per batch)."""
    header = _header(version)
    nonce = os.urandom(NONCE_BYTES)
    # The header is authenticated too, so the format and version bytes cannot be swapped.
    return header + nonce + AESGCM(dek).encrypt(nonce, bytes(plaintext), header + aad.encode())


def encrypt(plaintext: bytes, *, hospital_id: int, aad: str) -> bytes:
    """AES-GCM under the hospital's current DEK, with a fresh 12-byte nonce."""
    version, dek = data_key(hospital_id=hospital_id)
    return encrypt_with_key(plaintext, version=version, dek=dek, aad=aad)


def blob_version(blob: bytes) -> int:
    """The DEK version a blob was encrypted under (DecryptionError if it is no blob)."""
    if not isinstance(blob, bytes):
        blob = bytes(blob)
    if len(blob) < MIN_BLOB_BYTES or blob[0] != FORMAT_VERSION:
        raise DecryptionError("Not an encrypted value of a known format (or truncated).")
    return int.from_bytes(blob[1:HEADER_BYTES], "big")


# AESGCM objects by key bytes (so never stale: a key's bytes are the key), built once: a chart
# decrypts a dozen values, and building one is as dear as a decryption (about 0.8 us).
_AEADS: dict[bytes, AESGCM] = {}


def _aead(dek: bytes) -> AESGCM:
    aead = _AEADS.get(dek)
    if aead is None:
        if len(_AEADS) >= 1024:  # bounded: hospitals times key versions in use
            _AEADS.clear()
        aead = _AEADS[dek] = AESGCM(dek)
    return aead


# (hospital_id, version) -> the cipher of a committed DEK (one in _dek_cache, which never
# changes): decrypt's fast path, without data_key's lookups. A chart decrypts about a hundred
# values (its codes, displays, units, statuses and measured values).
_ciphers: dict[tuple[int, int], AESGCM] = {}


def decrypt(blob: bytes, *, hospital_id: int, aad: str) -> bytes:
    """Decrypt a blob from `encrypt`; DecryptionError on tampering or the wrong binding."""
    if not isinstance(blob, bytes):  # memoryview from some drivers; bytes are used as they are
        blob = bytes(blob)
    aead = None
    if len(blob) >= MIN_BLOB_BYTES and blob[0] == FORMAT_VERSION:
        version = int.from_bytes(blob[1:HEADER_BYTES], "big")
        aead = _ciphers.get((hospital_id, version))
    if aead is None:
        version = blob_version(blob)
        _version, dek = _data_key(hospital_id, version, trust_created=True)
        aead = _aead(dek)
        key = (int(hospital_id), version)
        if _dek_cache.get(key) == dek:  # committed: its cipher is safe to keep
            _ciphers[key] = aead
    try:
        return _open(aead, blob, aad)
    except InvalidTag:
        retry = _created_dek_replaced((int(hospital_id), version))
        if retry is not None:
            with contextlib.suppress(InvalidTag):
                return _open(_aead(retry), blob, aad)
        raise DecryptionError(
            f"Encrypted value failed authentication under hospital {hospital_id}'s data key "
            f"version {version}: it was altered, or belongs to another hospital, model, field "
            "or row."
        ) from None


def _created_dek_replaced(key: tuple[int, int]) -> bytes | None:
    """After a failed decryption under a key this thread created: if that creation was
    rolled back and another process's row now holds the version, that row's DEK."""
    from portal.records.keys_models import HospitalKey

    entry = _created.keys.get(key)
    if entry is None:
        return None
    row = HospitalKey.objects.filter(hospital_id=key[0], version=key[1]).first()
    if row is not None and bytes(row.wrapped_key) == entry[1]:
        return None  # still this thread's key: the value itself is wrong
    _created_forget(key)
    if row is None:
        return None
    dek = _unwrap_row(row)
    _remember(key[0], key[1], dek)
    return dek


def _open(aead: AESGCM, blob: bytes, aad: str) -> bytes:
    return aead.decrypt(
        blob[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES],
        blob[HEADER_BYTES + NONCE_BYTES :],
        blob[:HEADER_BYTES] + aad.encode(),
    )


# --- blind indexes ------------------------------------------------------------------------


def normalize_for_index(value: str) -> str:
    """NFKC, case-folded, whitespace collapsed and stripped ("  ÉVA  Smith" == "éva smith")."""
    # NFKC again after casefold: case folding can produce unnormalized sequences.
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
    return " ".join(folded.split())


def _index_key(hospital_id: int, purpose: str) -> bytes:
    _version, dek_v1 = data_key(hospital_id=hospital_id, version=1)
    return _derive_index_key(dek_v1, f"blind-index|{purpose}")


# By the DEK's own bytes, so never stale (a rolled-back key's bytes are never looked up
# again): each new record's search tokens would otherwise cost an HKDF derivation apiece.
# `label` is the HKDF info: one per use, so keys derived for different uses are unrelated.
@lru_cache(maxsize=256)
def _derive_index_key(dek_v1: bytes, label: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label.encode()).derive(dek_v1)


def blind_index(value: str, *, hospital_id: int, purpose: str, normalize: bool = True) -> str:
    """Keyed, per-hospital, per-purpose search token for an exact (normalized) match.

    32 hex characters (128 bits of HMAC-SHA256). Equal values at one hospital give equal
    tokens; the same value at two hospitals, or for two purposes, gives unrelated tokens.
    `normalize=False` for case-sensitive identifiers (codes), which must not be folded."""
    key = _index_key(int(hospital_id), purpose)
    text = normalize_for_index(value) if normalize else value
    digest = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    return digest[:32]


# --- ledger subject digest keys -------------------------------------------------------------
#
# A ledger leaf's subject digest is HMAC-SHA256 under a key the database dump does not hold
# in clear (ledger.subjects), so a dump and the log give no way to test guesses of encrypted
# values. A hospital's key is derived, like its blind index keys, from its DEK version 1 (its
# own label): stable across both master and data key rotations, which re-wrap version 1 and
# never replace it, so every leaf stays re-digestible. What belongs to no hospital (API
# tokens, accounts, events of no hospital) is keyed with a site secret: 32 random bytes
# stored wrapped under the master key (`SiteKey`), re-wrapped by rotate_keys. Not derived
# from a master key itself: master keys leave the ring after a rotation, and every digest
# keyed with one would become unverifiable.

SUBJECT_DIGEST_LABEL = "ledger-subject-commitment|v1"
_SITE_SUBJECT_PURPOSE = "ledger-subject-commitment"


# hospital id (None: the site) -> digest key, derived from a committed secret only (one in
# _dek_cache or _site_cache, which never changes): on the path of every audited write.
_subject_keys: dict[int | None, bytes] = {}


def subject_digest_key(hospital_id: int | None) -> bytes:
    """The HMAC key of ledger subject digests of a hospital (None: the site's). Registered
    with ledger.subjects by RecordsConfig. No query once the key is cached."""
    key = _subject_keys.get(hospital_id)
    if key is not None:
        return key
    if hospital_id is None:
        key = _derive_index_key(site_secret(_SITE_SUBJECT_PURPOSE), SUBJECT_DIGEST_LABEL)
        committed = _SITE_SUBJECT_PURPOSE in _site_cache
    else:
        hospital_id = int(hospital_id)
        _version, dek_v1 = data_key(hospital_id=hospital_id, version=1)
        key = _derive_index_key(dek_v1, SUBJECT_DIGEST_LABEL)
        committed = _dek_cache.get((hospital_id, 1)) == dek_v1
    if committed:
        with _cache_lock:
            _subject_keys[hospital_id] = key
    return key


def _site_aad(purpose: str) -> bytes:
    return f"site-key|{purpose}".encode()


def wrap_site_secret(
    secret: bytes, *, purpose: str, ring: KeyRing | None = None
) -> tuple[str, bytes]:
    """Wrap a site secret under the ring's current master key: (master_key_id, nonce + ct)."""
    ring = ring or KeyRing.from_settings()
    nonce = os.urandom(NONCE_BYTES)
    wrapped = AESGCM(ring.key(ring.current_id)).encrypt(nonce, secret, _site_aad(purpose))
    return ring.current_id, nonce + wrapped


def unwrap_site_secret(
    wrapped_key: bytes, *, master_key_id: str, purpose: str, ring: KeyRing | None = None
) -> bytes:
    """Unwrap a stored site secret; ImproperlyConfigured if its master key is not in the ring,
    DecryptionError if it was altered."""
    ring = ring or KeyRing.from_settings()
    wrapped_key = bytes(wrapped_key)
    try:
        return AESGCM(ring.key(master_key_id)).decrypt(
            wrapped_key[:NONCE_BYTES], wrapped_key[NONCE_BYTES:], _site_aad(purpose)
        )
    except InvalidTag:
        raise DecryptionError(
            f"Site key {purpose!r} does not unwrap under master key {master_key_id!r}: the ring "
            "holds different key material under that id, or the stored key was altered."
        ) from None


# purpose -> secret, committed rows only (a secret never changes once committed).
_site_cache: dict[str, bytes] = {}


class _CreatedSite(threading.local):
    """Site secrets this thread created whose transaction has not committed yet: purpose ->
    the row's wrapped bytes (as for DEKs: a row read back with other bytes, or none, means
    the creation was rolled back)."""

    def __init__(self) -> None:
        self.wrapped: dict[str, bytes] = {}


_created_site = _CreatedSite()


def site_secret(purpose: str) -> bytes:
    """The site's secret for `purpose`, created (32 random bytes) on first use.

    Like a hospital's first DEK, a secret created in a transaction that later rolls back
    must not be cached: it is cached once its row is committed, and read from its row until
    then."""
    from portal.records.keys_models import SiteKey

    cached = _site_cache.get(purpose)
    if cached is not None:
        return cached
    row = SiteKey.objects.filter(purpose=purpose).first()
    mine = _created_site.wrapped.get(purpose)
    if mine is not None and (row is None or bytes(row.wrapped_key) != mine):
        del _created_site.wrapped[purpose]  # rolled back
        mine = None
    if row is None:
        secret = os.urandom(KEY_BYTES)
        master_id, wrapped = wrap_site_secret(secret, purpose=purpose)
        try:
            with transaction.atomic():  # a savepoint: losing the race keeps the caller's
                SiteKey.objects.create(
                    purpose=purpose, master_key_id=master_id, wrapped_key=wrapped
                )
        except IntegrityError:
            row = SiteKey.objects.get(purpose=purpose)  # another process's, committed
        else:
            _created_site.wrapped[purpose] = wrapped

            def committed() -> None:
                _created_site.wrapped.pop(purpose, None)
                with _cache_lock:
                    _site_cache[purpose] = secret

            # Runs at once outside an atomic block; dropped if the transaction rolls back.
            transaction.on_commit(committed)
            return secret
    secret = unwrap_site_secret(row.wrapped_key, master_key_id=row.master_key_id, purpose=purpose)
    if mine is None:
        with _cache_lock:
            _site_cache[purpose] = secret
    return secret


# --- account secrets (TOTP keys) ----------------------------------------------------------
#
# A sign-in secret belongs to an account, not to a hospital, so it is encrypted under a key
# derived (HKDF-SHA256) from a master key of the ring itself rather than under a hospital's
# data key. The derived key is used for nothing else (the master key wraps data keys
# directly; the `info` label keeps the two uses apart). The row names the master key that
# encrypted it, so `rotate_keys` re-encrypts under the current one and the old master key can
# then leave the ring. Blobs: b"\x01" (format) + 12-byte nonce + ciphertext||tag; the
# associated data is the format byte plus `account_secret_aad(...)`, which binds the secret
# to its model, field, row and account: a blob copied to another row or account fails.

_ACCOUNT_SECRET_INFO = b"portal|account-secret|v1"


def account_secret_aad(*, model_label: str, field: str, row: str, user_id: int) -> str:
    """The associated data that binds an account secret to its model, field, row and user."""
    return f"account|{model_label}|{field}|{row}|{int(user_id)}"


@lru_cache(maxsize=16)
def _account_secret_key(master: bytes) -> AESGCM:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_ACCOUNT_SECRET_INFO
    ).derive(master)
    return AESGCM(derived)


def account_secret_encrypt(
    plaintext: bytes, *, aad: str, ring: KeyRing | None = None
) -> tuple[str, bytes]:
    """Encrypt an account secret under the ring's current master key: (master_key_id, blob)."""
    ring = ring or KeyRing.from_settings()
    header = bytes([FORMAT_VERSION])
    nonce = os.urandom(NONCE_BYTES)
    aead = _account_secret_key(ring.key(ring.current_id))
    return ring.current_id, header + nonce + aead.encrypt(
        nonce, bytes(plaintext), header + aad.encode()
    )


def account_secret_decrypt(
    blob: bytes, *, master_key_id: str, aad: str, ring: KeyRing | None = None
) -> bytes:
    """Decrypt an account secret; ImproperlyConfigured if its master key is not in the ring,
    DecryptionError if it was altered or belongs to another row or account."""
    ring = ring or KeyRing.from_settings()
    blob = bytes(blob)
    if len(blob) < 1 + NONCE_BYTES + TAG_BYTES or blob[0] != FORMAT_VERSION:
        raise DecryptionError("Not an encrypted account secret of a known format.")
    aead = _account_secret_key(ring.key(master_key_id))
    try:
        return aead.decrypt(
            blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], blob[:1] + aad.encode()
        )
    except InvalidTag:
        raise DecryptionError(
            f"An account secret failed authentication under master key {master_key_id!r}: it "
            "was altered, or belongs to another row or account."
        ) from None


# --- padding ------------------------------------------------------------------------------


def pad(data: bytes, block: int) -> bytes:
    """ISO/IEC 7816-4 padding (0x80, then zeros) to a multiple of `block` bytes.

    AES-GCM hides a value but not its length: a field of a few short values (an allergy's
    criticality: "low", "high", "unable-to-assess") would be read off its ciphertext's
    length. Padded, every value up to the block's size gives a blob of the same length."""
    return data + b"\x80" + b"\x00" * (-(len(data) + 1) % block)


def unpad(data: bytes) -> bytes:
    """The value `pad` padded (DecryptionError if it is not padded so)."""
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(b"\x80"):
        raise DecryptionError("A padded value has no padding (it was not written padded).")
    return stripped[:-1]
