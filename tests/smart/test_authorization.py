"""The authorization server: the consent screen, PKCE, aud, tokens with launch context,
refresh and revocation, the two-factor rule for staff, and the ledger."""

import re
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from ledger.models import Event
from portal.smart.models import SmartAuthorization
from tests.smart.conftest import (
    FHIR_BASE,
    authorize,
    authorize_params,
    exchange,
    id_token_claims,
    pkce,
)

pytestmark = pytest.mark.django_db

SCOPE = "launch/patient openid fhirUser patient/Observation.rs offline_access"


def test_smart_configuration_names_the_endpoints_and_s256_only(client):
    for url in ("/fhir/R4/.well-known/smart-configuration", "/.well-known/smart-configuration"):
        body = client.get(url).json()
        assert body["authorization_endpoint"] == "http://testserver/oauth/authorize/"
        assert body["token_endpoint"] == "http://testserver/oauth/token/"
        assert body["code_challenge_methods_supported"] == ["S256"]
        assert {"launch-ehr", "launch-standalone", "permission-v2", "sso-openid-connect",
                "context-standalone-patient"} <= set(body["capabilities"])  # fmt: skip
        assert body["issuer"] == "http://testserver/oauth"


def test_patient_standalone_launch_gets_patient_context_and_fhir_user(client, sign_in, world, app):
    sign_in(client, world["a"]["user"])
    code, verifier, response = authorize(client, app, SCOPE)
    assert code, response.content
    token = exchange(client, app, code, verifier)
    assert token.status_code == 200, token.content
    body = token.json()
    patient = world["a"]["patient"]
    assert body["patient"] == str(patient.pk)
    assert body["need_patient_banner"] is True
    assert set(body["scope"].split()) == set(SCOPE.split())
    assert body["refresh_token"]
    claims = id_token_claims(body["id_token"])
    assert claims["fhirUser"] == f"{FHIR_BASE}Patient/{patient.pk}"
    authorization = SmartAuthorization.objects.get()
    assert authorization.patient == patient and authorization.two_factor is False
    event = Event.objects.get(kind="smart.authorized")
    assert event.patient_id == patient.pk and event.attrs["app"] == app.client_id


def test_the_consent_screen_speaks_plainly(client, sign_in, world, app):
    sign_in(client, world["a"]["user"])
    _verifier, challenge = pkce()
    params = authorize_params(app, SCOPE, challenge=challenge)
    page = client.get("/oauth/authorize/?" + urlencode(params))
    text = page.content.decode()
    assert "Sleep Tracker" in text
    assert "Read your lab results, vital signs and other observations" in text
    assert "patient/Observation.rs" not in re.sub(r"<[^>]+>", "", text)  # only in attributes


def test_unticked_permission_is_not_granted(client, sign_in, world, app):
    sign_in(client, world["a"]["user"])
    scope = "launch/patient patient/Observation.rs patient/Condition.rs"
    code, verifier, _ = authorize(client, app, scope, granted=["patient/Observation.rs"])
    body = exchange(client, app, code, verifier).json()
    assert "patient/Condition.rs" not in body["scope"].split()
    assert "refresh_token" not in body  # no offline_access asked for


def test_denied_gives_no_code_and_records_nothing(client, sign_in, world, app):
    sign_in(client, world["a"]["user"])
    code, _, response = authorize(client, app, SCOPE, allow=False)
    assert code is None and "access_denied" in response.url
    assert not SmartAuthorization.objects.exists()


@pytest.mark.parametrize("method", ["plain", None])
def test_pkce_missing_or_plain_is_refused(client, sign_in, world, app, method):
    sign_in(client, world["a"]["user"])
    verifier, challenge = pkce()
    params = authorize_params(app, SCOPE, challenge=verifier if method else challenge)
    if method:
        params["code_challenge_method"] = method
    else:
        del params["code_challenge"], params["code_challenge_method"]
    response = client.get("/oauth/authorize/?" + urlencode(params))
    assert response.status_code in (302, 400)
    if response.status_code == 302:
        assert "code=" not in response.url and "error=" in response.url


def test_token_exchange_without_the_verifier_is_refused(client, sign_in, world, app):
    sign_in(client, world["a"]["user"])
    code, _, _ = authorize(client, app, SCOPE)
    response = exchange(client, app, code, "x" * 50)
    assert response.status_code == 400


def test_wrong_aud_is_refused(client, sign_in, world, app):
    sign_in(client, world["a"]["user"])
    code, _, response = authorize(client, app, SCOPE, aud="https://evil.example/fhir")
    assert code is None and response.status_code == 400
    assert "audience" in response.content.decode()


def test_refresh_rotates_and_the_old_refresh_token_is_dead(client, sign_in, world, app):
    sign_in(client, world["a"]["user"])
    code, verifier, _ = authorize(client, app, SCOPE)
    first = exchange(client, app, code, verifier).json()
    refreshed = client.post(
        "/oauth/token/",
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
         "client_id": app.client_id},
    )  # fmt: skip
    assert refreshed.status_code == 200, refreshed.content
    body = refreshed.json()
    assert body["refresh_token"] != first["refresh_token"]
    assert body["patient"] == str(world["a"]["patient"].pk)


def test_staff_without_two_factors_cannot_authorize(client, sign_in, world, confidential_app):
    sign_in(client, world["a"]["clinician"], verified=False)
    code, _, response = authorize(client, confidential_app, "user/*.rs openid fhirUser")
    assert code is None
    assert response.status_code == 302 and "/accounts/login/" in response.url
    assert not SmartAuthorization.objects.exists()


def test_patient_cannot_take_user_scopes(client, sign_in, world, app):
    sign_in(client, world["a"]["user"])
    code, _, response = authorize(client, app, "user/*.rs")
    assert code is None and response.status_code == 403


def test_ehr_launch_binds_the_chart_patient(client, sign_in, world, confidential_app):
    clinician, patient = world["a"]["clinician"], world["a"]["patient"]
    sign_in(client, clinician)
    app_row = confidential_app.application.smart_app
    page = client.get(f"/provider/patients/{patient.pk}/apps/")
    assert "Launch Clinic Dashboard" in page.content.decode()
    launched = client.post(f"/provider/patients/{patient.pk}/apps/", {"app": app_row.pk})
    query = parse_qs(urlparse(launched.url).query)
    assert launched.url.startswith("http://app.example/launch?")
    assert query["iss"] == [FHIR_BASE]
    launch = query["launch"][0]
    code, verifier, response = authorize(
        client, confidential_app, "launch openid fhirUser patient/Observation.rs", launch=launch
    )
    assert code, response.content
    body = exchange(client, confidential_app, code, verifier).json()
    assert body["patient"] == str(patient.pk)
    claims = id_token_claims(body["id_token"])
    assert claims["fhirUser"] == f"{FHIR_BASE}Practitioner/{clinician.pk}"
    assert SmartAuthorization.objects.get().two_factor is True
    # The launch is used once.
    again, _, response = authorize(
        client, confidential_app, "launch patient/Observation.rs", launch=launch
    )
    assert again is None and response.status_code == 400


def test_a_launch_is_only_for_who_launched_it(client, sign_in, world, make_staff, confidential_app):
    patient = world["a"]["patient"]
    sign_in(client, world["a"]["clinician"])
    app_row = confidential_app.application.smart_app
    launched = client.post(f"/provider/patients/{patient.pk}/apps/", {"app": app_row.pk})
    launch = parse_qs(urlparse(launched.url).query)["launch"][0]
    other = make_staff(world["a"]["hospital"])
    client.logout()
    sign_in(client, other)
    code, _, response = authorize(client, confidential_app, "launch patient/*.rs", launch=launch)
    assert code is None and response.status_code == 400


def test_app_revocation_ends_the_authorization_at_once(client, sign_in, world, app):
    sign_in(client, world["a"]["user"])
    code, verifier, _ = authorize(client, app, SCOPE)
    body = exchange(client, app, code, verifier).json()
    response = client.post(
        "/oauth/revoke_token/", {"token": body["access_token"], "client_id": app.client_id}
    )
    assert response.status_code == 200
    assert SmartAuthorization.objects.get().revoked_at is not None
    event = Event.objects.get(kind="smart.revoked")
    assert event.attrs["by"] == "app"
    refreshed = client.post(
        "/oauth/token/",
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
         "client_id": app.client_id},
    )  # fmt: skip
    assert refreshed.status_code == 400
    introspect = client.post(
        "/oauth/introspect/", {"token": body["access_token"]},
        HTTP_AUTHORIZATION="Bearer " + body["access_token"],
    )  # fmt: skip
    assert introspect.status_code in (200, 401, 403)
    if introspect.status_code == 200:
        assert introspect.json()["active"] is False


def test_authorizations_are_accounted_for_by_the_ledger_and_a_widened_one_is_named(
    client, sign_in, world, app
):
    from ledger.anchoring import ledger_anchor_pending
    from ledger.verification import ledger_verify

    sign_in(client, world["a"]["user"])
    code, verifier, _ = authorize(client, app, SCOPE)
    exchange(client, app, code, verifier)
    authorization = SmartAuthorization.objects.get()
    leaf = bytes(Event.objects.get(kind="smart.authorized").leaf).decode()
    assert "Observation" not in leaf and "Sleep" not in leaf  # codes and ids only
    ledger_anchor_pending()
    assert ledger_verify().findings == []
    # Widened behind the application's back: verify_ledger names it.
    SmartAuthorization.objects.filter(pk=authorization.pk).update(scope="patient/*.rs")
    findings = [str(f) for f in ledger_verify().findings]
    assert any("smart.smartauthorization" in f and "differs" in f for f in findings), findings
    SmartAuthorization.objects.filter(pk=authorization.pk).update(scope=authorization.scope)
    sign_in(client, world["a"]["user"])
    client.post(f"/patient/apps/{authorization.row_uuid}/disconnect/")
    ledger_anchor_pending()
    assert ledger_verify().findings == []


def test_connected_apps_lists_in_a_fixed_number_of_queries(
    client, sign_in, world, app, django_assert_max_num_queries
):
    sign_in(client, world["a"]["user"])
    for _ in range(3):
        authorize(client, app, SCOPE)
    with django_assert_max_num_queries(12):
        page = client.get("/patient/apps/")
    assert page.content.decode().count(">Disconnect</button>") == 3


def test_a_rotated_refresh_token_replayed_is_refused(client, sign_in, world, app):
    sign_in(client, world["a"]["user"])
    code, verifier, _ = authorize(client, app, SCOPE)
    first = exchange(client, app, code, verifier).json()
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
               "client_id": app.client_id}  # fmt: skip
    assert client.post("/oauth/token/", refresh).status_code == 200
    assert client.post("/oauth/token/", refresh).status_code == 400


def test_a_code_is_exchanged_once(client, sign_in, world, app):
    sign_in(client, world["a"]["user"])
    code, verifier, _ = authorize(client, app, SCOPE)
    assert exchange(client, app, code, verifier).status_code == 200
    assert exchange(client, app, code, verifier).status_code == 400
