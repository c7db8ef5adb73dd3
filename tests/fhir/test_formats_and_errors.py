"""FHIR's media types on DRF: `_format` and Accept choose the JSON flavour, anything else is a
406; bodies of other types are 415; every refusal is an OperationOutcome."""

import json

from fhir.resources.R4B.operationoutcome import OperationOutcome

BASE = "/fhir/R4/"


def _outcome(response, status):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/fhir+json")
    return OperationOutcome.model_validate(json.loads(response.content))


def test_format_and_accept_choose_fhir_json_or_json(client, sign_in, chart):
    sign_in(client, chart["a"]["clinician"])
    url = f"{BASE}Patient/{chart['a']['patient'].pk}"
    fhir = "application/fhir+json; charset=utf-8"
    plain = "application/json; charset=utf-8"
    for query, accept, expected in [
        ("", None, fhir),
        ("", "application/fhir+json", fhir),
        ("", "application/json", plain),
        ("?_format=json", "application/json", fhir),  # _format wins over Accept
        ("?_format=application/json", None, plain),
        ("?_format=application/fhir+json", None, fhir),  # "+" unescaped: a space
        ("?_format=application%2Ffhir%2Bjson", "text/html", fhir),
    ]:
        headers = {"Accept": accept} if accept else {}
        response = client.get(url + query, headers=headers)
        assert response.status_code == 200, (query, accept)
        assert response["Content-Type"] == expected, (query, accept)
        assert json.loads(response.content)["resourceType"] == "Patient"


def test_other_formats_are_406_operation_outcomes(client, sign_in, chart):
    sign_in(client, chart["a"]["clinician"])
    url = f"{BASE}Patient/{chart['a']['patient'].pk}"
    _outcome(client.get(f"{url}?_format=xml"), 406)
    _outcome(client.get(url, headers={"Accept": "application/fhir+xml"}), 406)
    # DRF's own ?format= is no FHIR parameter: ignored.
    assert client.get(f"{url}?format=xml").status_code == 200


def test_bodies_of_other_types_are_415_and_methods_405(client, sign_in, chart):
    sign_in(client, chart["a"]["clinician"])
    _outcome(client.post(BASE, "<Bundle/>", content_type="application/fhir+xml"), 415)
    _outcome(client.post(f"{BASE}Observation/_search", "{}", content_type="text/plain"), 415)
    response = client.put(f"{BASE}Patient", "{}", content_type="application/fhir+json")
    _outcome(response, 405)
    assert response["Allow"] == "GET, POST"  # POST [type] creates (issue 17)
    # A method no view takes is a 405 before credentials are looked at.
    client.logout()
    _outcome(client.delete(f"{BASE}Patient/1"), 405)


def test_a_bundle_may_come_as_plain_json(client, sign_in, chart):
    sign_in(client, chart["a"]["clinician"])
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": []}
    response = client.post(BASE, bundle, content_type="application/json")
    assert response.status_code == 200, response.content[:300]


def test_a_bad_token_is_401_even_where_a_session_would_pass(client, sign_in, chart):
    sign_in(client, chart["a"]["clinician"])
    url = f"{BASE}Patient/{chart['a']['patient'].pk}"
    response = client.get(url, headers={"Authorization": "Bearer hpt_nope"})
    _outcome(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")
    # X-Hospital of a hospital that is not the caller's: refused, never trusted.
    _outcome(client.get(url, headers={"X-Hospital": "riverside"}), 403)
    _outcome(client.get(url, headers={"X-Hospital": "not a slug!"}), 403)


def test_too_large_or_too_many_is_refused_not_a_500(client, sign_in, chart, settings):
    sign_in(client, chart["a"]["clinician"])
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [], "x": "y" * 2000}
    _outcome(client.post(BASE, bundle, content_type="application/fhir+json"), 413)
    form = "application/x-www-form-urlencoded"
    response = client.post(f"{BASE}Patient/_search", "name=" + "a" * 2000, content_type=form)
    _outcome(response, 413)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    many = "&".join(f"f{i}=1" for i in range(50))
    _outcome(client.post(f"{BASE}Patient/_search", many, content_type=form), 400)
