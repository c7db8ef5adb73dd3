"""Row ids from outside (URLs, forms, sessions)."""

from __future__ import annotations

from typing import Any


def row_id(value: Any) -> int | None:
    """An id from a URL, a form or a session, or None: no row has an id outside the 64-bit
    range, so such a value never reaches the database."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if -(2**63) <= number < 2**63 else None
