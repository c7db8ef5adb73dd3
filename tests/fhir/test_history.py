"""FHIR versions: `_history`, vread, logical ids that survive corrections, and
`meta.versionId` / `meta.lastUpdated` on every served resource."""

import json

import pytest
from fhir.resources.R4B.bundle import Bundle

from ledger.models import Event
from portal.fhir import resources
from portal.records import services
from portal.tenancy.scoping import unscoped
from tests.fhir.test_resources import RECORD_KEYS
from tests.fhir.test_views import BASE, TYPES, _valid, fhir_urls

# One changed value per record type, for a correction.
CHANGES = {
    "encounter": {"reason": "Follow-up"}, "observation": {"unit": "beats/min"},
    "condition": {"display": "HTN"}, "medicationrequest": {"dosage": "2 tablets daily"},
    "allergyintolerance": {"reaction": "Rash"}, "immunization": {"display": "Flu"},
    "procedure": {"display": "Med rec"}, "clinicalnote": {"title": "Visit (amended)"},
    "document": {"title": "Letter (amended)"},
}  # fmt: skip


def _url(record):
    return f"{BASE}{resources.resource_type_of(record)}/{resources.fhir_id(record)}"


def _correct(record, actor, n=1):
    """`n` corrections of `record`; the versions, oldest first (rows reloaded)."""
    versions = [record]
    with unscoped():
        for i in range(n):
            key = type(record)._meta.model_name
            versions.append(
                services.record_correct(
                    actor=actor,
                    record=versions[-1],
                    correction_reason=f"fix {i}",
                    **CHANGES.get(key, {}),  # a type added later: a correction of the reason only
                )
            )
        for v in versions:
            v.refresh_from_db()
    return versions


def _in_error(resource):
    """The element each type marks an entered-in-error version with."""
    for key in ("status", "verificationStatus"):
        value = resource.get(key)
        if isinstance(value, dict):
            value = value["coding"][0]["code"]
        if value == "entered-in-error":
            return True
    return False


def test_history_is_newest_first_after_two_corrections(
    client, sign_in, chart, django_assert_max_num_queries
):
    a = chart["a"]
    sign_in(client, a["clinician"])
    v1, v2, v3 = _correct(a["observation"], a["clinician"], n=2)
    for named_by in (v1, v2, v3):  # any version's id reaches the one history
        with django_assert_max_num_queries(20):  # not one query per version
            response = client.get(f"{_url(named_by)}/_history")
        body = _valid(response)
        Bundle.model_validate(body)
        assert body["type"] == "history"
        entries = body["entry"]
        assert [e["resource"]["meta"]["versionId"] for e in entries] == ["3", "2", "1"]
        assert {e["resource"]["id"] for e in entries} == {str(v1.pk)}
        assert [e["resource"]["status"] for e in entries] == [
            "final", "entered-in-error", "entered-in-error"
        ]  # fmt: skip
        assert [e["request"]["method"] for e in entries] == ["PUT", "PUT", "POST"]
        assert [e["response"]["status"] for e in entries] == ["200 OK", "200 OK", "201 Created"]
        assert entries[0]["response"]["location"] == f"Observation/{v1.pk}/_history/3"
        assert entries[0]["resource"]["valueQuantity"]["unit"] == "beats/min"
        assert entries[2]["resource"]["valueQuantity"]["unit"] == "/min"


@pytest.mark.parametrize("key", RECORD_KEYS)
def test_vread_serves_each_version_and_marks_the_replaced_one(client, sign_in, chart, key):
    a = chart["a"]
    sign_in(client, a["clinician"])
    old, new = _correct(a[key], a["clinician"])
    first = _valid(client.get(f"{_url(old)}/_history/1"))
    second = _valid(client.get(f"{_url(new)}/_history/2"))
    assert first["id"] == second["id"] == resources.fhir_id(old)
    assert (first["meta"]["versionId"], second["meta"]["versionId"]) == ("1", "2")
    assert _in_error(first) and not _in_error(second)
    # A read of either id answers the current version, under the logical id.
    for record in (old, new):
        current = _valid(client.get(_url(record)))
        assert current["id"] == resources.fhir_id(old)
        assert current["meta"]["versionId"] == "2"
    for vid in ("3", "0", "x", "1" * 12, "%20"):
        assert client.get(f"{_url(old)}/_history/{vid}").status_code == 404


def test_searches_and_everything_answer_current_versions(
    client, sign_in, chart, django_assert_max_num_queries
):
    a = chart["a"]
    sign_in(client, a["clinician"])
    old, _, _ = _correct(a["condition"], a["clinician"], n=2)
    p = a["patient"].pk
    with django_assert_max_num_queries(25):
        found = _valid(client.get(f"{BASE}Condition?patient={p}"))
    (entry,) = found["entry"]
    assert entry["resource"]["id"] == str(old.pk)
    assert entry["resource"]["meta"]["versionId"] == "3"
    assert entry["fullUrl"].endswith(f"Condition/{old.pk}")
    everything = _valid(client.get(f"{BASE}Patient/{p}/$everything"))
    conditions = [
        e["resource"] for e in everything["entry"] if e["resource"]["resourceType"] == "Condition"
    ]
    assert [(c["id"], c["meta"]["versionId"]) for c in conditions] == [(str(old.pk), "3")]


def test_every_served_resource_has_meta(client, sign_in, chart):
    a = chart["a"]
    sign_in(client, a["clinician"])
    _correct(a["observation"], a["clinician"])
    urls = [*fhir_urls(a), f"{BASE}Consent?patient={a['patient'].pk}"]
    urls += [f"{u}/_history" for u in fhir_urls(a) if "?" not in u and "$" not in u]
    seen = set()
    for url in urls:
        body = _valid(client.get(url))
        served = [body] if body["resourceType"] != "Bundle" else [
            e["resource"] for e in body["entry"]
        ]  # fmt: skip
        for resource in served:
            if resource["resourceType"] == "OperationOutcome":
                continue
            seen.add(resource["resourceType"])
            assert resource["meta"]["versionId"], (url, resource["resourceType"])
            assert resource["meta"]["lastUpdated"], (url, resource["resourceType"])
    assert {"Patient", "AuditEvent", "Provenance", *TYPES} <= seen


def test_a_patient_has_one_version(client, sign_in, chart):
    a = chart["a"]
    sign_in(client, a["clinician"])
    p = a["patient"].pk
    body = _valid(client.get(f"{BASE}Patient/{p}/_history"))
    Bundle.model_validate(body)
    assert [e["resource"]["meta"]["versionId"] for e in body["entry"]] == ["1"]
    assert _valid(client.get(f"{BASE}Patient/{p}/_history/1"))["id"] == str(p)
    assert client.get(f"{BASE}Patient/{p}/_history/2").status_code == 404


def test_history_and_vread_are_reads_with_their_access_event(client, sign_in, chart):
    a = chart["a"]
    sign_in(client, a["clinician"])
    old, new = _correct(a["observation"], a["clinician"])
    for url, record in ((f"{_url(old)}/_history", new), (f"{_url(old)}/_history/1", old)):
        last = Event.objects.order_by("-id").values_list("id", flat=True).first()
        assert client.get(url).status_code == 200
        events = list(Event.objects.filter(id__gt=last))
        assert [(e.kind, e.attrs.get("record")) for e in events] == [("record.read", record.pk)]


def test_another_hospitals_history_is_404(client, sign_in, chart):
    a, b = chart["a"], chart["b"]
    _correct(b["observation"], b["clinician"])
    sign_in(client, a["clinician"])
    before = Event.objects.count()
    urls = [
        f"{BASE}Patient/{b['patient'].pk}/_history",
        f"{BASE}Patient/{b['patient'].pk}/_history/1",
    ]
    for key in RECORD_KEYS:
        urls += [f"{_url(b[key])}/_history", f"{_url(b[key])}/_history/1"]
    urls += [f"{BASE}Observation/999999/_history", f"{BASE}Observation/999999/_history/1",
             f"{BASE}AuditEvent/1/_history", f"{BASE}Nothing/1/_history"]  # fmt: skip
    for url in urls:
        response = client.get(url)
        assert response.status_code == 404, url
        assert json.loads(response.content)["resourceType"] == "OperationOutcome"
    assert Event.objects.count() == before
