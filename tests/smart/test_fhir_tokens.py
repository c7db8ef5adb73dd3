"""SMART tokens on the FHIR interface: what the scopes and the launch patient allow, nothing
else; revocation at once; the access log names the app."""

from urllib.parse import urlencode

import pytest

from consent.selectors import access_log_for_owner
from portal.smart.models import SmartAuthorization
from portal.smart.services import smart_app_register
from tests.smart.conftest import REDIRECT, authorize, authorize_params, exchange, pkce

pytestmark = pytest.mark.django_db


def _token(client, sign_in, user, app, scope, **kwargs):
    sign_in(client, user)
    code, verifier, response = authorize(client, app, scope, **kwargs)
    assert code, response.content
    body = exchange(client, app, code, verifier).json()
    client.logout()  # the app calls with its token only
    return body


def _get(client, token, path):
    return client.get(f"/fhir/R4/{path}", HTTP_AUTHORIZATION=f"Bearer {token['access_token']}")


def _ids(response):
    return {e["resource"]["id"] for e in response.json().get("entry", []) if
            e["resource"]["resourceType"] != "OperationOutcome"}  # fmt: skip


def test_observation_scope_reads_that_patients_observations_only(client, sign_in, world, app):
    a, b = world["a"], world["b"]
    token = _token(client, sign_in, a["user"], app, "launch/patient patient/Observation.rs")
    found = _get(client, token, f"Observation?patient={a['patient'].pk}")
    assert found.status_code == 200, found.content
    assert _ids(found) == {str(a["lab"].pk), str(a["vital"].pk)}
    assert _get(client, token, f"Observation/{a['lab'].pk}").status_code == 200
    # Another patient (another hospital): 404, as if missing.
    assert _get(client, token, f"Observation?patient={b['patient'].pk}").status_code == 404
    assert _get(client, token, f"Observation/{b['lab'].pk}").status_code == 404
    # Another type: refused.
    assert _get(client, token, f"Condition?patient={a['patient'].pk}").status_code in (403, 404)
    assert _get(client, token, f"Condition/{a['condition'].pk}").status_code in (403, 404)


def test_category_scope_sees_labs_only(client, sign_in, world, app):
    a = world["a"]
    token = _token(
        client, sign_in, a["user"], app,
        "launch/patient patient/Observation.rs?category=laboratory",
    )  # fmt: skip
    found = _get(client, token, f"Observation?patient={a['patient'].pk}")
    assert found.status_code == 200, found.content
    assert _ids(found) == {str(a["lab"].pk)}
    assert _get(client, token, f"Observation/{a['vital'].pk}").status_code == 404


def test_disconnect_stops_the_token_at_once_and_the_log_names_the_app(client, sign_in, world, app):
    a = world["a"]
    token = _token(client, sign_in, a["user"], app, "launch/patient patient/Observation.rs")
    assert _get(client, token, f"Observation?patient={a['patient'].pk}").status_code == 200
    sign_in(client, a["user"])
    page = client.get("/patient/apps/")
    assert "Sleep Tracker" in page.content.decode()
    assert "Read your lab results, vital signs and other observations" in page.content.decode()
    authorization = SmartAuthorization.objects.get()
    response = client.post(f"/patient/apps/{authorization.row_uuid}/disconnect/")
    assert response.status_code == 302
    client.logout()
    assert _get(client, token, f"Observation?patient={a['patient'].pk}").status_code == 401
    whats = [e.what for e in access_log_for_owner(user=a["user"], patients=[a["patient"]])]
    assert "Sleep Tracker was allowed to read your records (see Connected apps)" in whats
    assert "Sleep Tracker's access to your records was withdrawn" in whats
    assert any(w.startswith("Sleep Tracker, an app you connected, read") for w in whats)


def test_another_patients_disconnect_is_404(client, sign_in, world, app):
    _token(client, sign_in, world["a"]["user"], app, "launch/patient patient/Observation.rs")
    authorization = SmartAuthorization.objects.get()
    sign_in(client, world["b"]["user"])
    response = client.post(f"/patient/apps/{authorization.row_uuid}/disconnect/")
    assert response.status_code == 404
    assert SmartAuthorization.objects.get().revoked_at is None


def test_ehr_launch_token_reads_the_chart_patient_only(client, sign_in, world, confidential_app):
    from urllib.parse import parse_qs, urlparse

    a, b = world["a"], world["b"]
    sign_in(client, a["clinician"])
    app_row = confidential_app.application.smart_app
    launched = client.post(f"/provider/patients/{a['patient'].pk}/apps/", {"app": app_row.pk})
    launch = parse_qs(urlparse(launched.url).query)["launch"][0]
    code, verifier, _ = authorize(
        client, confidential_app, "launch patient/Observation.rs", launch=launch
    )
    token = exchange(client, confidential_app, code, verifier).json()
    client.logout()
    found = _get(client, token, f"Observation?patient={token['patient']}")
    assert found.status_code == 200, found.content
    assert _ids(found) == {str(a["lab"].pk), str(a["vital"].pk)}
    assert _get(client, token, f"Observation?patient={b['patient'].pk}").status_code == 404
    whats = [e.what for e in access_log_for_owner(user=a["user"], patients=[a["patient"]])]
    assert any(w.endswith("opened your chart in Clinic Dashboard") for w in whats), whats


def test_staff_fhir_user_is_a_readable_practitioner_of_their_own_only(
    client, sign_in, world, confidential_app
):
    from urllib.parse import parse_qs, urlparse

    from portal.fhir.resources import validate_resource
    from tests.smart.conftest import id_token_claims

    a = world["a"]
    sign_in(client, a["clinician"])
    app_row = confidential_app.application.smart_app
    launched = client.post(f"/provider/patients/{a['patient'].pk}/apps/", {"app": app_row.pk})
    launch = parse_qs(urlparse(launched.url).query)["launch"][0]
    code, verifier, _ = authorize(
        client, confidential_app, "launch openid fhirUser patient/Observation.rs", launch=launch
    )
    token = exchange(client, confidential_app, code, verifier).json()
    client.logout()
    fhir_user = id_token_claims(token["id_token"])["fhirUser"]
    own = _get(client, token, fhir_user.removeprefix("http://testserver/fhir/R4/"))
    assert own.status_code == 200, own.content
    validate_resource(own.json())
    other = world["b"]["clinician"]
    assert _get(client, token, f"Practitioner/{other.pk}").status_code == 404


def test_a_confidential_client_introspects_its_token(client, sign_in, world, confidential_app):
    import base64

    basic = base64.b64encode(
        f"{confidential_app.client_id}:{confidential_app.client_secret}".encode()
    ).decode()
    token = _token(client, sign_in, world["a"]["user"], confidential_app,
                   "launch/patient patient/Observation.rs")  # fmt: skip

    def introspect():
        response = client.post(
            "/oauth/introspect/", {"token": token["access_token"]},
            HTTP_AUTHORIZATION=f"Basic {basic}",
        )  # fmt: skip
        assert response.status_code == 200, response.content
        return response.json()

    assert introspect()["active"] is True
    assert introspect()["scope"] == "launch/patient patient/Observation.rs"
    assert "username" not in introspect()
    # Another app learns nothing of it.
    other = smart_app_register(name="Other", redirect_uris=[REDIRECT], confidential=True)
    other_basic = base64.b64encode(f"{other.client_id}:{other.client_secret}".encode()).decode()
    response = client.post(
        "/oauth/introspect/", {"token": token["access_token"]},
        HTTP_AUTHORIZATION=f"Basic {other_basic}",
    )  # fmt: skip
    assert response.json() == {"active": False}
    revoked = client.post(
        "/oauth/revoke_token/", {"token": token["access_token"]},
        HTTP_AUTHORIZATION=f"Basic {basic}",
    )  # fmt: skip
    assert revoked.status_code == 200
    assert introspect()["active"] is False


def test_staff_user_scope_reads_what_the_clinician_may_see_in_their_hospital_only(
    client, sign_in, world, confidential_app
):
    a, b = world["a"], world["b"]
    token = _token(client, sign_in, a["clinician"], confidential_app, "user/Observation.rs")
    found = _get(client, token, f"Observation?patient={a['patient'].pk}")
    assert found.status_code == 200, found.content
    assert _ids(found) == {str(a["lab"].pk), str(a["vital"].pk)}
    assert _get(client, token, f"Observation?patient={b['patient'].pk}").status_code == 404
    assert _get(client, token, f"Condition/{a['condition'].pk}").status_code in (403, 404)


def test_a_patient_with_two_registrations_picks_whose_records(
    client, sign_in, make_patient_user, hospital_a, hospital_b, app
):
    user, (at_a, at_b) = make_patient_user(hospital_a, hospital_b)
    sign_in(client, user)
    page = client.get(
        "/oauth/authorize/?"
        + urlencode(authorize_params(app, "launch/patient patient/*.rs", challenge=pkce()[1]))
    )
    assert "registered at Riverside General" in page.content.decode()
    token = _token(client, sign_in, user, app, "launch/patient patient/*.rs", patient=at_b)
    assert token["patient"] == str(at_b.pk)
    assert _get(client, token, f"Patient/{at_b.pk}").status_code == 200
    assert _get(client, token, f"Patient/{at_a.pk}").status_code == 404
