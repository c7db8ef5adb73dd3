"""`POST [type]/_search` for every searchable type: the GET search's answer, listed in the
CapabilityStatement, and 404 for another hospital's chart."""

import pytest

from portal.fhir import views
from tests.fhir.test_views import BASE, _valid

FORM = "application/x-www-form-urlencoded"


def _params(rtype, c):
    p = c["patient"].pk
    if rtype == "Patient":
        return f"identifier={c['patient'].mrn}"
    if rtype == "Provenance":
        return f"target=Observation/{c['observation'].pk}"
    return f"patient={p}"


def _ids(bundle):
    return sorted(
        (e["resource"]["resourceType"], e["resource"]["id"])
        for e in bundle["entry"]
        if e["resource"]["resourceType"] != "AuditEvent"  # the GET's own read adds one
    )


@pytest.mark.parametrize("rtype", ["Patient", *views.SEARCHABLE])
def test_search_by_post_answers_as_get_for_every_type(client, sign_in, chart, rtype):
    a, b = chart["a"], chart["b"]
    sign_in(client, a["clinician"])
    params = _params(rtype, a)
    by_get = _valid(client.get(f"{BASE}{rtype}?{params}"))
    by_post = _valid(client.post(f"{BASE}{rtype}/_search", params, content_type=FORM))
    assert by_post["type"] == "searchset"
    assert _ids(by_post) == _ids(by_get)
    # The chart fixture has none of these (imported types have their own search tests).
    if rtype not in ("AuditEvent", "Consent", "DiagnosticReport", "ImagingStudy", "CarePlan",
                     "Goal"):  # fmt: skip
        assert by_post["entry"], rtype
    other = client.post(f"{BASE}{rtype}/_search", _params(rtype, b), content_type=FORM)
    if rtype == "Patient":  # a search finds nothing of another hospital
        assert _valid(other)["entry"] == []
    else:
        assert other.status_code == 404


def test_the_capability_statement_lists_search_by_post_and_history(client):
    body = _valid(client.get(f"{BASE}metadata"))
    rest = body["rest"][0]
    for resource in rest["resource"]:
        codes = {i["code"]: i.get("documentation", "") for i in resource["interaction"]}
        if resource["type"] == "Practitioner":  # read only: a SMART id_token's fhirUser
            assert set(codes) == {"read"}
            continue
        assert "POST [type]/_search" in codes["search-type"], resource["type"]
        if resource["type"] in ("Patient", *views.resources.RESOURCE_MODELS):
            assert {"read", "vread", "history-instance", "create"} <= set(codes)
            assert resource["versioning"] == "versioned"
            assert resource["conditionalCreate"] is True
        else:
            assert set(codes) == {"read", "search-type"}
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch"}
