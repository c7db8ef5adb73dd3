"""Refusals that explain (issue 16, item 10): a restricted chart, a revoked consent's chart,
a restricted note and a made-up id get the same 404 page, in words, with a way back, and
never Django's technical page, with DEBUG on (the demo) as without; the API and FHIR keep
their machine-readable 404s. A refused form (CSRF) and a bad request get pages too."""

import json
import re

import pytest
from django.test import Client, override_settings

from consent import services as consent_services
from portal.records import services as records_services
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped

pytestmark = pytest.mark.django_db
NOT_AVAILABLE = "This is not available to you"


@pytest.fixture
def refused(consent_world, make_staff):
    """What each of three readers may not open, and a made-up id."""
    w = consent_world
    colleague = make_staff(w["a"], Role.CLINICIAN)  # opens the chart, not the restricted note
    with unscoped():
        consent = consent_services.consent_grant(
            patient=w["patient"], actor=w["account"], grantee_kind="practitioner",
            grantee_user=w["clinician_b"],
        )  # fmt: skip
        consent_services.consent_revoke(consent=consent, actor=w["account"])
        records_services.patient_set_restricted(
            patient=w["other"], restricted=True, actor=w["admin_a"]
        )
    return [
        (colleague, f"/provider/patients/{w['other'].pk}/"),  # a restricted chart
        (w["clinician_b"], f"/provider/patients/{w['patient'].pk}/"),  # a revoked consent
        (colleague, f"/provider/records/clinicalnote/{w['secret'].pk}/"),  # a restricted note
        (colleague, "/provider/patients/999999/"),  # a made-up id
        (colleague, "/provider/records/clinicalnote/999999/"),
        (colleague, "/provider/no-such-page/"),  # a made-up URL
    ]


def _main(response) -> str:
    return re.search(r"<main.*</main>", response.content.decode(), re.S).group(0)


@pytest.mark.parametrize("debug", [True, False])
def test_missing_and_forbidden_get_the_same_page_in_words(client, sign_in, refused, debug):
    with override_settings(DEBUG=debug):
        bodies = set()
        for user, url in refused:
            sign_in(client, user)
            response = client.get(url)
            assert response.status_code == 404, url
            assert response["Content-Type"].startswith("text/html")
            page = response.content.decode()
            assert NOT_AVAILABLE in page and "Go to your start page" in page, url
            # Not Django's technical page: no URL patterns, no exception's words.
            assert "URLconf" not in page and "Page not found" not in page
            assert "No such" not in page and "Therapy" not in page
            bodies.add(_main(response))
        assert len(bodies) == 1  # missing and forbidden read alike


def test_the_page_links_back_to_where_the_person_came_from(client, sign_in, refused):
    user, url = refused[0]
    sign_in(client, user)
    with override_settings(DEBUG=True):
        back = client.get(url, headers={"referer": "http://testserver/provider/"})
        assert 'href="http://testserver/provider/">Go back</a>' in back.content.decode()
        away = client.get(url, headers={"referer": "https://evil.example/"})
        assert "evil.example" not in away.content.decode()


@pytest.mark.parametrize("debug", [True, False])
def test_api_and_fhir_404s_stay_machine_readable(client, sign_in, refused, debug):
    user, _ = refused[0]
    sign_in(client, user)
    with override_settings(DEBUG=debug):
        for url in ("/api/v1/patients/999999/chart/", "/api/v1/no-such-thing/"):
            response = client.get(url)
            assert response.status_code == 404, url
            assert response.json() == {"error": "Not found.", "detail": {}}
        for url in ("/fhir/R4/Patient/999999", "/fhir/R4/Nothing/1", "/fhir/no-such-thing"):
            response = client.get(url)
            assert response.status_code == 404, url
            assert response["Content-Type"].startswith("application/fhir+json")
            assert json.loads(response.content)["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("debug", [True, False])
def test_a_refused_form_says_what_to_do(sign_in, clinician_a, debug):
    client = Client(enforce_csrf_checks=True)
    sign_in(client, clinician_a)
    with override_settings(DEBUG=debug):
        response = client.post("/provider/patients/new/", {"mrn": "X-1"})
    assert response.status_code == 403
    page = response.content.decode()
    assert "This form could not be sent" in page and "Nothing was saved" in page
    assert "CSRF" not in page


@pytest.mark.parametrize("debug", [True, False])
def test_a_bad_request_gets_a_page_in_words(client, sign_in, clinician_a, debug):
    sign_in(client, clinician_a)
    too_many = {f"field{i}": "x" for i in range(1100)}  # over DATA_UPLOAD_MAX_NUMBER_FIELDS
    with override_settings(DEBUG=debug):
        response = client.post("/provider/patients/new/", too_many)
    assert response.status_code == 400
    page = response.content.decode()
    assert "This request could not be understood" in page
    assert "Traceback" not in page and "TooManyFieldsSent" not in page
