"""Issue 13, item 11 (the REST API): bad input is a 400, never a 500, and writes nothing.

The attack: `POST /api/v1/patients/` with JSON nested 100,000 deep (RecursionError) or with a
lone surrogate such as "\\ud800" in a name (UnicodeEncodeError when it is encrypted) answered
500. The API's own JSON parser (every endpoint's) now refuses over-deep nesting before
parsing and any NUL or unpaired surrogate in a string, keys included; query strings and the
X-Hospital header are checked too. Each attempt is counted against the rows it could write.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from consent.models import AccessRequest, BreakGlass, Consent, ProxyGrant
from ledger.models import Event
from portal.records.models import Condition, Patient
from portal.tenancy.models import Role

DEEP = 100_000
PATIENT = {"mrn": "BAD-1", "given_name": "Ada", "family_name": "Lovelace",
           "birth_date": "1950-05-06", "sex": "female"}  # fmt: skip


def _json(fields: dict[str, str]) -> str:
    """A JSON object written by hand, so that escapes such as \\ud800 reach the server as
    they are (json.dumps would refuse nothing, but the test client encodes strictly)."""
    return "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"


def _quoted(fields: dict[str, str]) -> dict[str, str]:
    return {k: f'"{v}"' for k, v in fields.items()}


def _rows() -> dict[str, int]:
    models = (Patient, Condition, Event, AccessRequest, BreakGlass, Consent, ProxyGrant)
    return {m.__name__: m._base_manager.count() for m in models}


@pytest.fixture
def tokens(client, sign_in, make_staff, make_patient_user, hospital_a, hospital_b):
    """Tokens made on the API tokens page, as their owners would: a clinician at hospital A
    (signed in with two factors) and a patient registered there."""
    clinician = make_staff(hospital_a, Role.CLINICIAN)
    make_staff(hospital_b, Role.CLINICIAN)
    patient_user, [chart] = make_patient_user(hospital_a)
    out = {"chart": chart}
    for key, user in (("staff", clinician), ("patient", patient_user)):
        sign_in(client, user)
        response = client.post("/accounts/api-tokens/", {"name": "t", "days": 30})
        assert response.status_code == 200, response.content.decode()[:2000]
        out[key] = response.context["new_token"]
    client.logout()
    return out


def _post(client, token: str, url: str, body: str | bytes, headers: dict | None = None):
    return client.post(
        url, body, content_type="application/json",
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
    )  # fmt: skip


def _assert_refused(response, before: dict[str, int], status: int = 400) -> None:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    assert set(response.json()) == {"error", "detail"}
    assert _rows() == before


NESTED = {
    "array": "[" * DEEP + "]" * DEEP,
    "object": '{"a":' * DEEP + "1" + "}" * DEEP,
    "unclosed": "[" * DEEP,
    "in a field": _json({**_quoted(PATIENT), "given_name": "[" * DEEP + "]" * DEEP}),
    # Brackets inside strings are text: the nesting around them still counts.
    "after a string": '["[[[[",' * DEEP + "1" + "]" * DEEP,
}


@pytest.mark.parametrize("shape", NESTED)
def test_deeply_nested_json_is_a_400(client, tokens, shape):
    before = _rows()
    _assert_refused(_post(client, tokens["staff"], "/api/v1/patients/", NESTED[shape]), before)


BAD_TEXT = {
    "lone high surrogate in a name": _json(_quoted({**PATIENT, "given_name": "Ada\\ud800"})),
    "lone low surrogate in a name": _json(_quoted({**PATIENT, "family_name": "\\udc00x"})),
    "reversed pair": _json(_quoted({**PATIENT, "family_name": "\\ude00\\ud83d"})),
    "surrogate in a key": _json(_quoted({**PATIENT, "\\ud800": "x"})),
    "surrogate in a nested list": _json({**_quoted(PATIENT), "extra": '[["\\udbff"]]'}),
    "NUL in a name": _json(_quoted({**PATIENT, "given_name": "Ada\\u0000"})),
    "NUL in a key": _json(_quoted({**PATIENT, "x\\u0000": "1"})),
}


def test_the_depth_check_itself_is_linear(client, tokens):
    """An unterminated string of 100,000 escaped quotes: refused at once. The parser's first
    depth check used a string pattern that could fail, retried at every later quote, so
    quadratic: about 70 s for this body on the CI machine, hours for a 2.5 MB one."""
    before = _rows()
    started = time.monotonic()
    body = '{"given_name": "' + '\\"' * 100_000
    response = _post(client, tokens["staff"], "/api/v1/patients/", body)
    assert time.monotonic() - started < 10
    _assert_refused(response, before)


@pytest.mark.parametrize("case", BAD_TEXT)
def test_bad_text_in_the_body_is_a_400(client, tokens, case):
    before = _rows()
    response = _post(client, tokens["staff"], "/api/v1/patients/", BAD_TEXT[case])
    _assert_refused(response, before)


def test_encoded_surrogates_and_invalid_utf8_are_a_400(client, tokens):
    before = _rows()
    body = _json(_quoted(PATIENT)).encode().replace(b"Ada", b"Ada\xed\xa0\x80")
    _assert_refused(_post(client, tokens["staff"], "/api/v1/patients/", body), before)
    body = _json(_quoted(PATIENT)).encode().replace(b"Ada", b"Ada\xff")
    _assert_refused(_post(client, tokens["staff"], "/api/v1/patients/", body), before)


def test_a_real_surrogate_pair_is_fine(client, tokens):
    """An emoji written as an escaped pair is one valid character: not refused."""
    response = _post(
        client, tokens["staff"], "/api/v1/patients/",
        _json(_quoted({**PATIENT, "given_name": "Ada \\ud83d\\ude00"})),
    )  # fmt: skip
    assert response.status_code == 201, response.content
    assert response.json()["given_name"] == "Ada \U0001f600"


def test_every_endpoint_gets_the_same_parser(client, tokens):
    """Not only patients: records, access requests, break-glass and the patients' own."""
    chart = tokens["chart"]
    cases = [
        (tokens["staff"], f"/api/v1/patients/{chart.pk}/records/condition/",
         _json(_quoted({"code": "44054006", "display": "Diabetes \\ud800"}))),
        (tokens["staff"], "/api/v1/access-requests/",
         _json(_quoted({"hospital": "st-mary\\ud800", "mrn": chart.mrn,
                        "birth_date": "1950-05-06", "purpose": "treatment"}))),
        (tokens["staff"], "/api/v1/access-requests/",
         _json(_quoted({"hospital": "st-mary\\u0000", "mrn": "X-1",
                        "birth_date": "1950-05-06", "purpose": "treatment"}))),
        (tokens["staff"], "/api/v1/break-glass/",
         _json(_quoted({"hospital": "st-mary", "mrn": chart.mrn, "birth_date": "1950-05-06",
                        "reason": "Unconscious in the ED \\udfff"}))),
        (tokens["staff"], "/api/v1/break-glass/", "[" * DEEP),
        (tokens["patient"], "/api/v1/me/proxies/",
         _json(_quoted({"proxy_username": "\\ud800", "relationship": "carer"}))),
        (tokens["patient"], "/api/v1/me/consents/", '{"categories":' + "[" * DEEP),
    ]  # fmt: skip
    for token, url, body in cases:
        before = _rows()
        _assert_refused(_post(client, token, url, body), before)


@pytest.mark.parametrize(
    "query",
    ["q=%ED%A0%80", "q=Ada%ED%A0%80", "q=%00", "q%00=1", "q=%FF", "cursor=%ED%A0%80"],
)
def test_bad_text_in_the_query_string_is_a_400(client, tokens, query):
    """Django decodes a query string with replacement characters, so a surrogate arrives as
    U+FFFD: still bad input, answered as such rather than searched for."""
    before = _rows()
    response = client.get(
        "/api/v1/patients/", QUERY_STRING=query,
        headers={"Authorization": f"Bearer {tokens['staff']}"},
    )  # fmt: skip
    _assert_refused(response, before)
    response = client.get(
        "/api/v1/me/records/", QUERY_STRING=query.replace("q", "category"),
        headers={"Authorization": f"Bearer {tokens['patient']}"},
    )  # fmt: skip
    _assert_refused(response, before)


@pytest.mark.parametrize("value", ["st-mary\x00", "st-mary\xff", "st mary", "x" * 51])
def test_a_malformed_x_hospital_is_a_400(client, tokens, value):
    before = _rows()
    response = _post(
        client, tokens["staff"], "/api/v1/patients/", _json(_quoted(PATIENT)),
        headers={"X-Hospital": value},
    )  # fmt: skip
    _assert_refused(response, before)
    assert "X-Hospital" in response.json()["error"]
    # A well-formed slug that is not yours is still a 403, as documented.
    response = client.get(
        "/api/v1/patients/",
        headers={"Authorization": f"Bearer {tokens['staff']}", "X-Hospital": "riverside"},
    )
    assert response.status_code == 403


def test_the_sane_request_still_works(client, tokens):
    response = _post(client, tokens["staff"], "/api/v1/patients/", _json(_quoted(PATIENT)))
    assert response.status_code == 201, response.content
    assert Patient._base_manager.filter(pk=response.json()["id"]).exists()
    assert dt.date.fromisoformat(response.json()["birth_date"]) == dt.date(1950, 5, 6)
