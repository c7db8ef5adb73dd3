"""What a ledger event's digest covers.

Each model that can be the subject of events registers a function returning its canonical
content as a JSON-able dict. The digest is SHA-256 over that dict serialized canonically
(sorted keys, no whitespace), so verify_ledger can re-digest the live row and compare.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from django.db import models

Canonical = Callable[[models.Model], dict[str, Any]]


class SubjectUnreadable(Exception):
    """A canonical function could not read the row (for example a value no longer decrypts:
    it was edited or copied from another row behind the application's back)."""


_registry: dict[str, tuple[type[models.Model], Canonical]] = {}
_key_fields: dict[str, str] = {}
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


def canonical_bytes(obj: models.Model) -> bytes:
    label = obj._meta.label_lower
    if label not in _registry:
        raise LookupError(f"{label} is not registered as a ledger subject")
    content = _registry[label][1](obj)
    return json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode()


def digest_of(obj: models.Model) -> str:
    return hashlib.sha256(canonical_bytes(obj)).hexdigest()
