"""Bounds for JSON received from outside (REST API bodies, FHIR bundles): one place for both.

- `json_depth`: how deep a JSON text nests, measured before parsing (the json module recurses
  once per level, and 100,000 levels end in RecursionError). Linear in the text's length.
- `json_problem`: why parsed JSON cannot be stored as it stands: nested deeper than a limit,
  or a string (keys included) holding a NUL (PostgreSQL text refuses it) or a lone UTF-16
  surrogate ("\\ud800" is valid JSON, but such a string cannot be encoded, encrypted or
  stored). Iterative: nothing here recurses.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

# A JSON string, or an unterminated one up to the end: every match starts at a quote and
# always succeeds, so the scan is linear (a pattern that could fail would be tried again at
# each later quote: quadratic on a body of escaped quotes).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(raw: bytes) -> int:
    """How deep the JSON text's arrays and objects nest (brackets inside strings skipped),
    without parsing; linear in the text's length, in C loops. For text that is not JSON the
    answer only needs to be safe: the parser refuses such text anyway."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def json_problem(data: Any, *, max_depth: int) -> str | None:
    """Why parsed JSON `data` cannot be taken as it stands, else None."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > max_depth:
                return f"the document nests more than {max_depth} levels deep"
            stack.extend((k, depth) for k in value)
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            if depth > max_depth:
                return f"the document nests more than {max_depth} levels deep"
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, str):
            if "\x00" in value:
                return "a string holds a NUL character (\\u0000)"
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return "a string holds a lone surrogate (such as \\ud800), which is not text"
    return None
