"""The API's JSON parser (portal.api.parsers): its edges, beside the attacks in
tests/security/test_bad_input_is_a_400_api.py."""

import io
import json

import pytest
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError

from portal.api.parsers import PortalJSONParser
from portal.jsontext import json_depth, json_problem


def json_depth_exceeds(text: str, limit: int) -> bool:
    return json_depth(text.encode()) > limit


def json_text_is_clean(data) -> bool:
    return json_problem(data, max_depth=PortalJSONParser.max_depth) is None


def _parse(body: bytes | str, encoding: str = "utf-8"):
    raw = body.encode() if isinstance(body, str) else body
    return PortalJSONParser().parse(io.BytesIO(raw), "application/json", {"encoding": encoding})


def test_depth_counts_levels_not_brackets_in_strings():
    assert not json_depth_exceeds("[" * 32 + "]" * 32, 32)
    assert json_depth_exceeds("[" * 33 + "]" * 33, 32)
    assert not json_depth_exceeds(json.dumps({"a": "[[[[{{{{" * 100, "b": ["]]]", '\\"[']}), 2)
    assert json_depth_exceeds('{"a":[{"b":[1]}]}', 3)
    assert not json_depth_exceeds('"just a string"', 0)
    assert _parse("[" * 32 + "]" * 32) is not None
    with pytest.raises(ParseError, match="nested too deeply"):
        _parse("[" * 33 + "]" * 33)


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        (r'{"a": "plain"}', True),
        (r'{"a": "\ud83d\ude00"}', True),  # a pair: one character
        (r'{"a": "\\u0000"}', True),  # the text backslash-u-0-0-0-0
        (r'{"a": "\\\\u0000"}', True),
        (r'{"a": "\u0000"}', False),
        (r'{"a": "\\\u0000"}', False),  # a backslash, then a NUL
        (r'{"\u0000": 1}', False),
        (r'{"a": ["\ud800"]}', False),
        (r'{"a": {"\udc00": 1}}', False),
        (r'{"a": "\ude00\ud83d"}', False),
    ],
)
def test_bad_text_is_found_exactly(text, clean):
    assert json_text_is_clean(json.loads(text)) is clean
    if clean:
        assert _parse(text) == json.loads(text)
    else:
        with pytest.raises(ParseError, match="NUL character or an unpaired surrogate"):
            _parse(text)


def test_bytes_charset_and_size(settings):
    with pytest.raises(ParseError, match="not valid UTF-8"):
        _parse(b'{"a": "\xed\xa0\x80"}')
    with pytest.raises(ParseError, match="UTF-8"):
        _parse('{"a": 1}', encoding="latin-1")
    with pytest.raises(ParseError, match="UTF-8"):
        _parse('{"a": 1}', encoding="no-such-codec")
    assert _parse('{"a": 1}', encoding="UTF8") == {"a": 1}
    with pytest.raises(ParseError):
        _parse('{"a": NaN}')
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    assert _parse(json.dumps({"a": "x" * 80})) == {"a": "x" * 80}
    with pytest.raises(RequestDataTooBig):
        _parse(json.dumps({"a": "x" * 100}))


def test_an_oversized_body_is_a_413_and_writes_nothing(api, api_world, settings):
    from portal.records.models import Patient

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    before = Patient._base_manager.count()
    body = {"mrn": "BIG-1", "given_name": "A" * 2000, "family_name": "B",
            "birth_date": "1990-01-01", "sex": "other"}  # fmt: skip
    response = api(api_world["a"]["staff_token"]).post("/api/v1/patients/", body)
    assert response.status_code == 413
    assert response.json() == {"error": "The request body is too large.", "detail": {}}
    assert Patient._base_manager.count() == before
