"""What a ledger event's digest covers, and how it is keyed.

Each model that can be the subject of events registers a function returning its canonical
content as a JSON-able dict, serialized canonically (sorted keys, no whitespace), so
verify_ledger can re-digest the live row and compare.

The digest is a commitment that must reveal nothing: a record's other columns are in clear
in the database, so an unkeyed hash of its content would let anyone holding a dump and the
log test guesses of its encrypted values (leaf format 1 did exactly that). Since leaf format
2 it is HMAC-SHA256 under a secret of the event's hospital (the site's for events of no
hospital), which the database holds only wrapped under a master key. The ledger holds no
keys: the portal registers the function that gives them (`digest_key_register`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.db import models

Canonical = Callable[[models.Model], dict[str, Any]]
# hospital id (None: the site, for events of no hospital) -> 32-byte HMAC key.
DigestKey = Callable[[int | None], bytes]

# Leaf format ("v") -> how its digest is computed. 1: SHA-256 of the canonical content
# (unkeyed, legacy: still verifiable, no longer written); 2: HMAC-SHA256 of it under the
# digest key of the leaf's hospital.
LEGACY_VERSION = 1
KEYED_VERSION = 2


class SubjectUnreadable(Exception):
    """A canonical function could not read the row (for example a value no longer decrypts:
    it was edited or copied from another row behind the application's back)."""


class UnknownLeafVersion(ValueError):
    """A leaf names a digest scheme this code does not know."""


_registry: dict[str, tuple[type[models.Model], Canonical]] = {}
_key_fields: dict[str, str] = {}
_digest_key: list[DigestKey] = []
_removal_kinds: dict[str, frozenset[str]] = {}


def register(
    model: type[models.Model],
    canonical: Canonical,
    *,
    key: str = "pk",
    removed: Iterable[str] = (),
) -> None:
    """Register a subject model. `key` names the field that identifies a row in the ledger:
    a UUID known before the row is inserted lets the row and its event go to the database in
    one statement (see records.services). `removed`: the event kinds that record the row's
    deletion (verify_ledger's coverage pass expects the row gone after one, and present
    after any other); none for rows that are never deleted."""
    _registry[model._meta.label_lower] = (model, canonical)
    _key_fields[model._meta.label_lower] = key
    _removal_kinds[model._meta.label_lower] = frozenset(removed)


def digest_key_register(key: DigestKey) -> None:
    """Set the function giving the digest key of a hospital (None: the site's). It must be
    stable for the life of the log (key rotations must not change it) and cheap (it runs on
    every audited write: cache it)."""
    _digest_key[:] = [key]


def subject_type(obj: models.Model) -> str:
    return obj._meta.label_lower


def key_field(label: str) -> str:
    return _key_fields.get(label, "pk")


def subject_id(obj: models.Model) -> str:
    """How the ledger names this row (its registered key, else the primary key)."""
    return str(getattr(obj, key_field(obj._meta.label_lower)))


# Events whose kind ends so record that a subject was read, not changed: their digest is what
# the reader was shown, so they never vouch for a row's state (a row changed behind the
# application's back and then read would otherwise be vouched for by the read).
READ_SUFFIX = ".read"


def is_read(kind: str) -> bool:
    return kind.endswith(READ_SUFFIX)


def is_removal(label: str, kind: str) -> bool:
    """Does an event of this kind record that the subject row was deleted."""
    return kind in _removal_kinds.get(label, frozenset())


def registered() -> dict[str, tuple[type[models.Model], Canonical]]:
    return dict(_registry)


def _serialize(content: Mapping[str, Any]) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode()


def canonical_bytes(obj: models.Model) -> bytes:
    label = obj._meta.label_lower
    if label not in _registry:
        raise LookupError(f"{label} is not registered as a ledger subject")
    return _serialize(_registry[label][1](obj))


def _key(hospital_id: int | None) -> bytes:
    if not _digest_key:
        # Fail closed: never fall back to an unkeyed digest.
        raise RuntimeError("no ledger digest key is registered (ledger.subjects)")
    return _digest_key[0](None if hospital_id is None else int(hospital_id))


def digest_content(content: Mapping[str, Any], *, hospital_id: int | None) -> str:
    """The keyed digest (leaf format 2) of canonical content that is not a registered row's
    (ids and codes an event's caller assembles), for event_record's `digest`. `hospital_id`
    must be the event's hospital: verify_ledger re-digests under the leaf's."""
    return hmac.new(_key(hospital_id), _serialize(content), hashlib.sha256).hexdigest()


def digest_of(obj: models.Model, *, hospital_id: int | None) -> str:
    """The keyed digest (leaf format 2) of a registered row, under the digest key of
    `hospital_id`, the hospital of the event that commits to it (None: the site's)."""
    return hmac.new(_key(hospital_id), canonical_bytes(obj), hashlib.sha256).hexdigest()


def legacy_digest_of(obj: models.Model) -> str:
    """The unkeyed digest of leaf format 1 (verification of old leaves only)."""
    return hashlib.sha256(canonical_bytes(obj)).hexdigest()


def digest_for_leaf(obj: models.Model, *, version: int, hospital_id: int | None) -> str:
    """The row's digest as a leaf of format `version` of that hospital computes it."""
    if version == KEYED_VERSION:
        return digest_of(obj, hospital_id=hospital_id)
    if version == LEGACY_VERSION:
        return legacy_digest_of(obj)
    raise UnknownLeafVersion(f"leaf format {version!r} is unknown")
