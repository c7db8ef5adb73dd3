"""The API's JSON parser: DRF's, with the limits bad input needs to be a 400, never a 500.

- The body is at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes (413): DRF reads the stream itself,
  so Django's own limit, which guards `request.body`, never applies to it.
- The body is UTF-8 (RFC 8259 8.1); invalid bytes, an encoded surrogate among them, are 400.
- Nesting deeper than `max_depth` is refused before parsing: the json module recurses once per
  level and 100,000 levels end in RecursionError.
- No string, keys included, may hold a NUL (PostgreSQL text cannot store it) or a lone UTF-16
  surrogate ("\\ud800" is valid JSON, but such a string cannot be encoded, encrypted or
  stored).

Query strings are checked alike (`query_params_check`): Django decodes them with
replacement characters, so a NUL, a surrogate or a U+FFFD there is bad input too.
"""

from __future__ import annotations

import codecs
import io
import json
import re
from itertools import accumulate
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import QueryDict
from rest_framework import exceptions
from rest_framework.parsers import JSONParser

# A JSON string, escapes included (possessive: no backtracking over a long string).
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
_BAD_QUERY_TEXT = re.compile("[\x00\ud800-\udfff\ufffd]")

BAD_TEXT_MESSAGE = (
    "Text may not contain the NUL character or an unpaired surrogate (such as \\ud800)."
)


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether any array or object in the JSON `text` lies deeper than `limit` levels.

    Brackets inside strings do not count; for text that is not JSON the answer only needs
    to be safe (the parser refuses such text anyway)."""
    brackets = _BRACKET.findall(_STRING.sub("", text))
    return bool(brackets) and max(accumulate(map(_STEP.__getitem__, brackets))) > limit


def json_text_is_clean(data: Any) -> bool:
    """Whether no string of parsed JSON `data`, keys included, holds a NUL or a lone
    surrogate. Serialized again, in C (the depth is already bounded): a lone surrogate does
    not encode to UTF-8, and a NUL comes out as an escape whose backslash is not itself
    escaped (the text backslash-u-0-0-0-0 comes out as \\\\u0000, which is fine)."""
    text = json.dumps(data, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not _NUL_ESCAPE.search(text)


class PortalJSONParser(JSONParser):
    """DRF's JSONParser (strict: no NaN or Infinity) behind the checks above."""

    max_depth = 32

    def parse(self, stream, media_type=None, parser_context=None):
        context = parser_context or {}
        try:
            utf8 = codecs.lookup(context.get("encoding") or "utf-8").name == "utf-8"
        except LookupError:
            utf8 = False
        if not utf8:
            raise exceptions.ParseError("Send the JSON body encoded as UTF-8.")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(body) > limit:
            raise RequestDataTooBig("The request body is too large.")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise exceptions.ParseError("The body is not valid UTF-8.") from None
        if json_depth_exceeds(text, self.max_depth):
            raise exceptions.ParseError(
                f"The JSON body is nested too deeply (at most {self.max_depth} levels)."
            )
        data = super().parse(io.BytesIO(body), media_type, {**context, "encoding": "utf-8"})
        if not json_text_is_clean(data):
            raise exceptions.ParseError(BAD_TEXT_MESSAGE)
        return data


def query_params_check(params: QueryDict) -> None:
    """400 for a query string whose names or values hold a NUL, a surrogate or the
    replacement character Django decodes invalid UTF-8 to."""
    for key, values in params.lists():
        if any(_BAD_QUERY_TEXT.search(text) for text in (key, *values)):
            raise exceptions.ValidationError(
                {"query": ["The query string holds a character that is not allowed (NUL, "
                           "an unpaired surrogate or invalid UTF-8)."]}
            )  # fmt: skip
