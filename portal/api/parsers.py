"""The API's JSON parser: DRF's, with the limits bad input needs to be a 400, never a 500.

- The body is at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes (413): DRF reads the stream itself,
  so Django's own limit, which guards `request.body`, never applies to it.
- The body is UTF-8 (RFC 8259 8.1); invalid bytes, an encoded surrogate among them, are 400.
- Nesting deeper than `max_depth` is refused before parsing, and no string, keys included,
  may hold a NUL or a lone UTF-16 surrogate: the limits of portal.jsontext, which FHIR
  bundles share.

Query strings are checked alike (`query_params_check`): Django decodes them with
replacement characters, so a NUL, a surrogate or a U+FFFD there is bad input too.
"""

from __future__ import annotations

import codecs
import io
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import QueryDict
from rest_framework import exceptions
from rest_framework.parsers import JSONParser

from portal.jsontext import json_depth, json_problem

_BAD_QUERY_TEXT = re.compile("[\x00\ud800-\udfff\ufffd]")

BAD_TEXT_MESSAGE = (
    "Text may not contain the NUL character or an unpaired surrogate (such as \\ud800)."
)


def body_read(stream) -> bytes:
    """A request body of at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes (RequestDataTooBig, a 413,
    beyond): DRF's parsers read the stream, past the limit Django's `request.body` keeps."""
    if stream is None:
        return b""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = stream.read() if limit is None else stream.read(limit + 1)
    if limit is not None and len(body) > limit:
        raise RequestDataTooBig("The request body is too large.")
    return body


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
        body = body_read(stream)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise exceptions.ParseError("The body is not valid UTF-8.") from None
        if json_depth(body) > self.max_depth:
            raise exceptions.ParseError(
                f"The JSON body is nested too deeply (at most {self.max_depth} levels)."
            )
        data = super().parse(io.BytesIO(body), media_type, {**context, "encoding": "utf-8"})
        if json_problem(data, max_depth=self.max_depth) is not None:
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
