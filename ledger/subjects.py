"""What a ledger event's digest covers.

Each model that can be the subject of events registers a function returning its canonical
content as a JSON-able dict. The digest is SHA-256 over that dict serialized canonically
(sorted keys, no whitespace), so verify_ledger can re-digest the live row and compare.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import models

Canonical = Callable[[models.Model], dict[str, Any]]
_registry: dict[str, tuple[type[models.Model], Canonical]] = {}


def register(model: type[models.Model], canonical: Canonical) -> None:
    _registry[model._meta.label_lower] = (model, canonical)


def subject_type(obj: models.Model) -> str:
    return obj._meta.label_lower


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
