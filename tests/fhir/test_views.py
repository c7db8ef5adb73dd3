"""/fhir/R4/: reads, searches, $everything, import, errors, access events, cross-tenant 404."""

import json

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome

from ledger.anchoring import ledger_anchor_pending
from ledger.models import Event
from portal.fhir import resources
from portal.records.models import Patient
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests.fhir.conftest import SYNTHEA_DIR
from tests.fhir.test_import import _tiny_bundle
from tests.fhir.test_resources import RECORD_KEYS

BASE = "/fhir/R4/"
NO_UUID = "00000000-0000-0000-0000-000000000000"
TYPES = ["Encounter", "Observation", "Condition", "MedicationRequest", "AllergyIntolerance",
         "Immunization", "Procedure", "DocumentReference"]  # fmt: skip


def fhir_urls(c):
    """Every FHIR URL that names something of chart `c`."""
    p = c["patient"].pk
    urls = [
        f"{BASE}Patient/{p}",
        f"{BASE}Patient/{p}/$everything",
        f"{BASE}Patient?identifier={c['patient'].mrn}",
        f"{BASE}AuditEvent?patient={p}",
        f"{BASE}Provenance?target=Observation/{c['observation'].pk}",
        *(f"{BASE}{t}?patient={p}" for t in TYPES),
    ]
    for key in RECORD_KEYS:
        record = c[key]
        urls.append(f"{BASE}{resources.resource_type_of(record)}/{resources.fhir_id(record)}")
    return urls


def _json(response):
    assert response["Content-Type"].startswith("application/fhir+json"), response["Content-Type"]
    return json.loads(response.content)


def _valid(response, status=200):
    assert response.status_code == status, response.content[:500]
    body = _json(response)
    resources.validate_resource(body)
    return body


def test_own_hospital_urls_work_and_validate(client, sign_in, chart):
    a = chart["a"]
    sign_in(client, a["clinician"])
    for url in fhir_urls(a):
        body = _valid(client.get(url))
        if body["resourceType"] == "Bundle" and "Patient?" not in url:
            assert url.startswith(f"{BASE}AuditEvent") or body["entry"], url


def test_other_hospitals_ids_are_404_everywhere(client, sign_in, chart):
    ledger_anchor_pending()
    sign_in(client, chart["a"]["clinician"])
    events_before = Event.objects.count()
    for url in fhir_urls(chart["b"]):
        response = client.get(url)
        if "Patient?identifier" in url:  # a search: found nothing
            assert _valid(response)["total"] == 0, url
            continue
        assert response.status_code == 404, url
        OperationOutcome.model_validate(_json(response))
    # The other hospital's ledger events: neither AuditEvent nor Provenance.
    theirs = Event.objects.filter(hospital=chart["b"]["hospital"]).first()
    for rtype in ("AuditEvent", "Provenance"):
        assert client.get(f"{BASE}{rtype}/{theirs.event_id}").status_code == 404
    assert Event.objects.count() == events_before  # no access event for what was not shown


def test_unknown_things_are_404_operation_outcomes(client, sign_in, chart):
    sign_in(client, chart["a"]["clinician"])
    for url in [f"{BASE}Patient/999999", f"{BASE}Patient/abc", f"{BASE}Observation/999999",
                f"{BASE}DocumentReference/7", f"{BASE}DocumentReference/note-x",
                f"{BASE}Claim/1", f"{BASE}Nonsense", f"{BASE}Patient/1/$nothing/x",
                f"{BASE}AuditEvent/not-a-uuid", f"{BASE}Provenance/{NO_UUID}"]:  # fmt: skip
        response = client.get(url)
        assert response.status_code == 404, url
        OperationOutcome.model_validate(_json(response))


def test_bad_requests_are_400_operation_outcomes(client, sign_in, chart):
    sign_in(client, chart["a"]["clinician"])
    for url in [f"{BASE}Observation", f"{BASE}Patient", f"{BASE}Patient?birthdate=tomorrow",
                f"{BASE}Provenance?target=nothing"]:  # fmt: skip
        response = client.get(url)
        assert response.status_code == 400, url
        OperationOutcome.model_validate(_json(response))
    response = client.delete(f"{BASE}Patient/1")
    assert response.status_code == 405
    OperationOutcome.model_validate(_json(response))


def test_authentication(client, sign_in, chart, make_patient_user, hospital_a):
    url = f"{BASE}Patient/{chart['a']['patient'].pk}"
    assert client.get(url).status_code == 401
    sign_in(client, chart["a"]["clinician"], verified=False)
    assert client.get(url).status_code == 401
    # A patient is admitted now (tests/fhir/test_patient_access.py), but someone else's
    # chart is a 404 to them, as anything they may not see.
    sign_in(client, make_patient_user(hospital_a)[0])
    response = client.get(url)
    assert response.status_code == 404
    OperationOutcome.model_validate(_json(response))
    # The CapabilityStatement is public.
    client.logout()
    CapabilityStatement.model_validate(_valid(client.get(f"{BASE}metadata")))


def test_reads_record_access_events_like_the_provider_portal(client, sign_in, chart):
    a = chart["a"]
    sign_in(client, a["clinician"])
    p = a["patient"].pk

    def kinds_after(url):
        last = Event.objects.order_by("-id").values_list("id", flat=True).first()
        assert client.get(url).status_code == 200
        return [(e.kind, e.attrs.get("record_type")) for e in Event.objects.filter(id__gt=last)]

    assert kinds_after(f"{BASE}Patient/{p}") == [("chart.read", None)]
    assert kinds_after(f"{BASE}Observation?patient={p}") == [("chart.read", None)]
    assert kinds_after(f"{BASE}Observation/{a['observation'].pk}") == [
        ("record.read", "observation")
    ]
    assert kinds_after(f"{BASE}DocumentReference/doc-{a['document'].pk}") == [
        ("document.read", "document")
    ]
    assert kinds_after(f"{BASE}Patient/{p}/$everything") == [
        ("chart.read", None), ("document.read", "document")
    ]  # fmt: skip
    assert kinds_after(f"{BASE}Patient?family={a['patient'].family_name}") == []
    # The clinician's own reads, as AuditEvents.
    audit = _valid(client.get(f"{BASE}AuditEvent?patient={p}"))
    # No total: the ledger decides per event who sees it (not a COUNT).
    assert "total" not in audit
    assert len([e for e in audit["entry"] if e["search"]["mode"] == "match"]) >= 5
    one = audit["entry"][0]["resource"]
    _valid(client.get(f"{BASE}AuditEvent/{one['id']}"))


def test_restricted_chart_is_404_for_who_is_not_on_the_care_team(
    client, sign_in, chart, make_staff, hospital_a
):
    from portal.records import services

    a = chart["a"]
    nurse = make_staff(hospital_a, Role.NURSE)
    with unscoped():
        services.patient_set_restricted(patient=a["patient"], restricted=True, actor=a["clinician"])
    sign_in(client, nurse)
    for url in fhir_urls(a):
        response = client.get(url)
        if "Patient?identifier" in url:
            assert _valid(response)["total"] == 0
        else:
            assert response.status_code == 404, url


def test_patient_search(client, sign_in, chart):
    a = chart["a"]
    sign_in(client, a["clinician"])
    pid = str(a["patient"].pk)
    system = resources.mrn_system("st-mary")
    for query in [f"identifier={a['patient'].mrn}", f"identifier={system}|A-100",
                  "name=ada lovelacea", "family=LovelaceA", "given=ada&birthdate=1970-12-10",
                  "name=LovelaceA&birthdate=eq1970-12-10"]:  # fmt: skip
        body = _valid(client.get(f"{BASE}Patient?{query}"))
        assert [e["resource"]["id"] for e in body["entry"]] == [pid], query
    for query in [
        "identifier=other|A-100",
        "family=Nobody",
        "family=LovelaceA&birthdate=1970-12-11",
    ]:
        assert _valid(client.get(f"{BASE}Patient?{query}"))["total"] == 0, query


def test_provenance_over_http(client, sign_in, chart):
    a = chart["a"]
    ledger_anchor_pending()
    sign_in(client, a["clinician"])
    found = _valid(client.get(f"{BASE}Provenance?target=Observation/{a['observation'].pk}"))
    (entry,) = found["entry"]
    assert entry["resource"]["signature"][0]["sigFormat"] == "application/json"
    # The clinician created the record, so the ledger lets them read the event itself.
    _valid(client.get(f"{BASE}Provenance/{entry['resource']['id']}"))


def test_post_a_bundle_imports_into_the_active_hospital(client, sign_in, chart):
    a = chart["a"]
    sign_in(client, a["clinician"])
    source = (sorted(SYNTHEA_DIR.glob("*.json")))[0].read_text()
    response = client.post(BASE, source, content_type="application/fhir+json")
    body = _valid(response)
    # A transaction answers a transaction-response (issue 17), one entry per request entry;
    # what the portal does not keep (Claim) says so in its entry's outcome.
    assert body["type"] == "transaction-response"
    assert len(body["entry"]) == len(json.loads(source)["entry"])
    assert "Claim is not kept" in json.dumps(body)
    with unscoped():
        imported = Patient.objects.exclude(pk__in=[a["patient"].pk, chart["b"]["patient"].pk])
        (patient,) = imported
    assert patient.hospital_id == a["hospital"].pk
    everything = _valid(client.get(f"{BASE}Patient/{patient.pk}/$everything"))
    Bundle.model_validate(everything)
    assert len(everything["entry"]) > 10


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ("{ not json", 400, "not JSON"),
        (json.dumps({"resourceType": "Patient"}), 400, "takes a Bundle"),
        (json.dumps({"resourceType": "Bundle", "type": "document"}), 422, "Bundle.type"),
    ],
)
def test_post_bad_bundles(client, sign_in, chart, body, status, text):
    sign_in(client, chart["a"]["clinician"])
    before = Event.objects.count()
    response = client.post(BASE, body, content_type="application/fhir+json")
    assert response.status_code == status
    assert text in json.dumps(_valid(response, status))
    assert Event.objects.count() == before


def test_post_a_broken_bundle_writes_nothing(client, sign_in, chart):
    sign_in(client, chart["a"]["clinician"])
    bundle = _tiny_bundle()
    bundle["entry"][1]["resource"]["subject"]["reference"] = "urn:uuid:nobody"
    before = Event.objects.count()
    response = client.post(BASE, json.dumps(bundle), content_type="application/fhir+json")
    body = _valid(response, 422)
    assert "does not resolve to a Patient" in body["issue"][0]["diagnostics"]
    assert Event.objects.count() == before
