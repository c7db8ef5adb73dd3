"""Issue 17: test reports, imaging studies, care plans and goals over FHIR: their searches
(`[type]?patient=`), reads (`[type]/{id}`), $everything and the CapabilityStatement; another
hospital's are 404 like missing ones; a partial chart (a consent without "reports" and
"careplans") withholds them and says so."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.bundle import Bundle

from portal.fhir.resources import validate_resource
from portal.fhir.services import fhir_bundle_import
from portal.tenancy.scoping import unscoped
from tests.fhir.test_import_reports import _bundle_with_everything, _targets
from tests.partial_chart import partial_world

pytestmark = pytest.mark.django_db
BASE = "/fhir/R4/"
NEW_TYPES = ("DiagnosticReport", "CarePlan", "Goal", "ImagingStudy")


@pytest.fixture
def two(hospital_a, hospital_b, clinician_a, clinician_b):
    """The same bundle imported at both hospitals: each its own rows."""
    out = {}
    for key, hospital, clinician in (("a", hospital_a, clinician_a), ("b", hospital_b,
                                                                         clinician_b)):  # fmt: skip
        report = fhir_bundle_import(
            hospital=hospital, bundle=_bundle_with_everything(), actor=clinician
        )
        ids = {t: _targets(hospital, t, {"DiagnosticReport": "r1", "CarePlan": "cp1",
                                         "Goal": "g1", "ImagingStudy": "i1"}[t])[0]
               for t in NEW_TYPES}  # fmt: skip
        out[key] = {"patient": report.patients[0], "ids": ids, "clinician": clinician}
    return out


def _json(response):
    assert response.status_code == 200, response.content[:400]
    return json.loads(response.content)


def test_search_and_read_each_type(client, sign_in, two, django_assert_max_num_queries):
    a = two["a"]
    sign_in(client, a["clinician"])
    for rtype in NEW_TYPES:
        with django_assert_max_num_queries(40):
            bundle = _json(client.get(f"{BASE}{rtype}?patient={a['patient']}"))
        Bundle.model_validate(bundle)
        (entry,) = bundle["entry"]
        assert entry["resource"]["id"] == str(a["ids"][rtype])
        read = _json(client.get(f"{BASE}{rtype}/{a['ids'][rtype]}"))
        validate_resource(read)
        assert read == entry["resource"]


def test_another_hospitals_are_404_like_missing_ones(client, sign_in, two):
    sign_in(client, two["a"]["clinician"])
    for rtype in NEW_TYPES:
        theirs = client.get(f"{BASE}{rtype}/{two['b']['ids'][rtype]}")
        missing = client.get(f"{BASE}{rtype}/99999999")
        assert theirs.status_code == missing.status_code == 404, rtype
        assert theirs.content == missing.content
        assert client.get(f"{BASE}{rtype}?patient={two['b']['patient']}").status_code == 404


def test_everything_and_the_capability_statement_name_them(client, sign_in, two):
    a = two["a"]
    sign_in(client, a["clinician"])
    bundle = _json(client.get(f"{BASE}Patient/{a['patient']}/$everything"))
    served = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]}
    for rtype in NEW_TYPES:
        assert (rtype, str(a["ids"][rtype])) in served
    statement = _json(client.get(f"{BASE}metadata"))
    described = {r["type"] for r in statement["rest"][0]["resource"]}
    assert set(NEW_TYPES) <= described


def test_a_partial_chart_withholds_reports_and_plans(client, sign_in, consent_world, make_staff):
    w = partial_world(consent_world, make_staff)
    sign_in(client, w["clinician_b"])  # vital signs and laboratory results only
    p = w["patient"].pk
    for rtype in ("DiagnosticReport", "CarePlan"):
        bundle = _json(client.get(f"{BASE}{rtype}?patient={p}"))
        matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
        (outcome,) = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
        assert matches == []
        assert outcome["issue"][0]["severity"] == "warning"
    everything = client.get(f"{BASE}Patient/{p}/$everything").content.decode()
    assert "Lipid panel" not in everything and "Diabetic diet" not in everything
    for rtype, record in (("DiagnosticReport", w["report"]), ("CarePlan", w["careplan"])):
        assert client.get(f"{BASE}{rtype}/{record.pk}").status_code == 404
    # The whole-chart consent shows them.
    sign_in(client, w["whole"])
    everything = client.get(f"{BASE}Patient/{p}/$everything").content.decode()
    assert "Lipid panel" in everything and "Diabetic diet" in everything
    with unscoped():
        assert _json(client.get(f"{BASE}DiagnosticReport/{w['report'].pk}"))["id"] == str(
            w["report"].pk
        )
