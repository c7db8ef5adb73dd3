"""Tokens: hash-only storage, expiry, revocation, the portal page, issue_token, X-Hospital,
CSRF, and FHIR with a token."""

import datetime as dt
import hashlib
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from ledger.models import Event
from portal.api.models import ApiToken
from portal.api.services import token_issue
from portal.tenancy.models import Role
from tests import factories


def staff_token(user, name, **kwargs):
    return token_issue(user=user, name=name, audience="staff", two_factor=True, **kwargs)


def test_only_a_hash_is_stored(api_world):
    user = api_world["a"]["clinician"]
    token, raw = staff_token(user, "laptop")
    row = ApiToken.objects.values().get(pk=token.pk)
    assert row["token_hash"] == hashlib.sha256(raw.encode()).hexdigest()
    assert all(raw not in str(value) for value in row.values())
    assert raw.startswith(row["prefix"]) and len(row["prefix"]) < 12
    assert token.expires_at - timezone.now() > dt.timedelta(days=89)


def test_token_use_expiry_and_revocation(api, api_world):
    user = api_world["a"]["clinician"]
    token, raw = staff_token(user, "t", days=1)
    assert api(raw).get("/api/v1/patients/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(1))
    response = api(raw).get("/api/v1/patients/")
    assert response.status_code == 401
    assert response.json()["error"].startswith("The token is not valid")
    assert response["WWW-Authenticate"].startswith("Bearer")
    token2, raw2 = staff_token(user, "t2")
    token2.revoked_at = timezone.now()
    token2.save()
    assert api(raw2).get("/api/v1/patients/").status_code == 401
    assert api("hpt_" + "x" * 43).get("/api/v1/patients/").status_code == 401
    assert api().get("/api/v1/patients/").json() == {
        "error": "Authentication credentials were not provided.", "detail": {}
    }  # fmt: skip


def test_tokens_page_for_staff_needs_a_verified_session(client, sign_in, api_world):
    clinician = api_world["a"]["clinician"]
    sign_in(client, clinician, verified=False)
    assert client.get("/accounts/api-tokens/").status_code == 302
    sign_in(client, clinician)
    assert b"API tokens" in client.get("/provider/").content
    # Staff only (no registration anywhere): nothing to choose, and the page says which.
    page = client.get("/accounts/api-tokens/").content
    assert b"act as <strong>hospital staff</strong>" in page and b'name="audience"' not in page
    response = client.post("/accounts/api-tokens/", {"name": "script", "days": 30})
    assert response.status_code == 200
    raw = response.context["new_token"]
    assert raw.encode() in response.content
    token = ApiToken.objects.get(user=clinician, name="script")
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert (token.audience, token.two_factor) == ("staff", True)
    # Shown once: the list afterwards shows only the prefix.
    assert raw.encode() not in client.get("/accounts/api-tokens/").content
    assert client.post(f"/accounts/api-tokens/{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    # Someone else's token: 404, untouched.
    other, _ = staff_token(api_world["b"]["clinician"], "theirs")
    assert client.post(f"/accounts/api-tokens/{other.pk}/revoke/").status_code == 404
    other.refresh_from_db()
    assert other.revoked_at is None


def test_tokens_page_for_patients(client, sign_in, api_world):
    account = api_world["a"]["account"]
    sign_in(client, account)
    assert b"API tokens" in client.get("/patient/").content
    response = client.post("/accounts/api-tokens/", {"name": "phone app", "days": 90})
    assert response.status_code == 200 and response.context["new_token"]
    token = ApiToken.objects.get(user=account, name="phone app")
    assert (token.audience, token.two_factor) == ("patient", False)
    assert b"act as <strong>a patient</strong>" in response.content
    # With TOTP turned on, the patient's session must be verified.
    factories.TOTPDeviceFactory(user=account)
    sign_in(client, account, verified=False)
    assert client.get("/accounts/api-tokens/").status_code == 302
    assert client.post("/accounts/api-tokens/", {"name": "x", "days": 1}).status_code == 302


def test_issue_token_command(api, api_world):
    out, err = StringIO(), StringIO()
    user = api_world["b"]["clinician"]
    # A staff token from the shell: only when the administrator vouches for two factors.
    with pytest.raises(CommandError, match="--counts-as-two-factor"):
        call_command("issue_token", user.username, "--audience", "staff", stdout=out,
                     stderr=err)  # fmt: skip
    assert not ApiToken.objects.filter(user=user).exclude(name="ci").exists()
    call_command("issue_token", user.username, "--audience", "staff", "--counts-as-two-factor",
                 "--name", "etl", "--days", "7", stdout=out, stderr=err)  # fmt: skip
    raw = out.getvalue().strip()
    assert api(raw).get("/api/v1/patients/").status_code == 200
    token = ApiToken.objects.get(user=user, name="etl")
    assert (token.audience, token.two_factor) == ("staff", True)
    assert dt.timedelta(days=6) < token.expires_at - timezone.now() <= dt.timedelta(days=7)
    # A patient's account gets no staff token, vouched for or not; a patient token it may.
    account = api_world["b"]["account"]
    with pytest.raises(CommandError, match="Only hospital staff"):
        call_command("issue_token", account.username, "--audience", "staff",
                     "--counts-as-two-factor", stdout=StringIO(), stderr=StringIO())  # fmt: skip
    out = StringIO()
    call_command("issue_token", account.username, "--audience", "patient", stdout=out,
                 stderr=StringIO())  # fmt: skip
    raw = out.getvalue().strip()
    assert api(raw).get("/api/v1/me/registrations/").status_code == 200
    assert api(raw).get("/api/v1/patients/").status_code == 403


def test_x_hospital_is_validated_against_own_memberships(
    api, api_world, make_staff, hospital_a, hospital_b
):
    locum = make_staff(hospital_a, Role.CLINICIAN)
    factories.MembershipFactory(user=locum, hospital=hospital_b, role=Role.CLINICIAN)
    raw = staff_token(locum, "locum")[1]

    def mrns(hospital=None):
        response = api(raw, hospital).get("/api/v1/patients/")
        return response.status_code, {p["mrn"] for p in response.json().get("results", [])}

    # Default: the first membership by hospital name (Riverside), as in the portal.
    assert mrns() == (200, {"B-100"})
    assert mrns("st-mary") == (200, {"A-100"})
    assert mrns("riverside") == (200, {"B-100"})
    assert mrns("nowhere")[0] == 403
    clinician_a = api_world["a"]["staff_token"]
    response = api(clinician_a, "riverside").get("/api/v1/patients/")
    assert response.status_code == 403
    assert "X-Hospital" in response.json()["error"]
    b_patient = api_world["b"]["patient"].pk
    assert api(clinician_a, "riverside").get(f"/api/v1/patients/{b_patient}/").status_code == 403


def test_token_requests_need_no_csrf_but_sessions_do(sign_in, api_world):
    strict = Client(enforce_csrf_checks=True)
    body = {"mrn": "Z-9", "given_name": "Z", "family_name": "Y", "birth_date": "1990-01-01",
            "sex": "other"}  # fmt: skip
    response = strict.post(
        "/api/v1/patients/", body, content_type="application/json",
        headers={"Authorization": f"Bearer {api_world['a']['staff_token']}"},
    )  # fmt: skip
    assert response.status_code == 201
    sign_in(strict, api_world["a"]["clinician"])
    assert strict.get("/api/v1/patients/").status_code == 200
    response = strict.post("/api/v1/patients/", {**body, "mrn": "Z-10"},
                           content_type="application/json")  # fmt: skip
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]


def test_unverified_staff_session_is_refused(client, sign_in, api_world):
    sign_in(client, api_world["a"]["clinician"], verified=False)
    assert client.get("/api/v1/patients/").status_code == 403


def test_fhir_accepts_a_token(api, api_world):
    a = api_world["a"]
    patient = a["patient"]
    before = Event.objects.filter(kind="chart.read", patient_id=patient.pk).count()
    response = api(a["staff_token"]).get(f"/fhir/R4/Patient/{patient.pk}")
    assert response.status_code == 200
    assert response.json()["resourceType"] == "Patient"
    assert Event.objects.filter(kind="chart.read", patient_id=patient.pk).count() == before + 1
    # Another hospital's token: 404; a bad token: 401; a patient's token acts as the
    # patient: their own registration (not recorded: their own read), nobody else's.
    assert (
        api(api_world["b"]["staff_token"]).get(f"/fhir/R4/Patient/{patient.pk}").status_code == 404
    )
    assert api("hpt_nope").get(f"/fhir/R4/Patient/{patient.pk}").status_code == 401
    assert api(a["patient_token"]).get(f"/fhir/R4/Patient/{patient.pk}").status_code == 200
    assert Event.objects.filter(kind="chart.read", patient_id=patient.pk).count() == before + 1
    other = a["restricted"].pk
    assert api(a["patient_token"]).get(f"/fhir/R4/Patient/{other}").status_code == 404


def test_fhir_post_with_a_token_needs_no_csrf(api_world):
    strict = Client(enforce_csrf_checks=True)
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": []}
    response = strict.post(
        "/fhir/R4/", bundle, content_type="application/fhir+json",
        headers={"Authorization": f"Bearer {api_world['a']['staff_token']}"},
    )  # fmt: skip
    assert response.status_code != 403, response.content


def test_schema_and_its_ui_need_no_cdn(client, db):
    """Vendored assets only (tests/security/test_api_docs_load_nothing_from_outside.py also
    reads what the pages load, and loads them in a browser)."""
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    for page in ("/api/docs/", "/api/redoc/"):
        body = client.get(page).content.decode()
        assert "http://" not in body and "https://" not in body, page
        assert "cdn." not in body and "unpkg" not in body and "fonts.g" not in body
        assert "<style" not in body and "style=" not in body
        srcs = re.findall(r"<script\b[^>]*\bsrc=\"([^\"]+)\"[^>]*></script>", body)
        assert len(srcs) == body.count("<script"), "every script is a file"
        assert all(src.startswith("/") and not src.startswith("//") for src in srcs)
    docs = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs
    redoc = client.get("/api/redoc/").content.decode()
    assert '<script src="/api/redoc/redoc.standalone.js">' in redoc
    assert b"cdn.redoc.ly" not in client.get("/api/redoc/redoc.standalone.js").content


def test_issue_and_revoke_are_ledger_events_and_a_widened_token_is_named(client, sign_in, db):
    from ledger.anchoring import ledger_anchor_pending
    from ledger.verification import ledger_verify

    user = factories.UserFactory()
    sign_in(client, user)
    response = client.post("/accounts/api-tokens/", {"name": "Phone of Ada", "days": 30})
    raw = response.context["new_token"]
    token = ApiToken.objects.get(user=user)
    issued = Event.objects.get(kind="api_token.issued", subject_id=str(token.pk))
    assert issued.subject_type == "api.apitoken" and issued.hospital_id is None
    assert issued.actor_id == user.pk
    assert issued.attrs == {"user": user.pk, "audience": "patient", "two_factor": False}
    leaf = bytes(issued.leaf).decode()
    assert raw not in leaf and token.token_hash not in leaf and "Ada" not in leaf
    ledger_anchor_pending()
    assert ledger_verify().findings == []
    # Widened in the database behind the application's back: verify_ledger names it.
    ApiToken.objects.filter(pk=token.pk).update(audience="staff", two_factor=True)
    findings = [str(f) for f in ledger_verify().findings]
    assert any(f"api.apitoken {token.pk}" in f and "differs" in f for f in findings), findings
    ApiToken.objects.filter(pk=token.pk).update(audience="patient", two_factor=False)
    assert client.post(f"/accounts/api-tokens/{token.pk}/revoke/").status_code == 302
    revoked = Event.objects.get(kind="api_token.revoked", subject_id=str(token.pk))
    assert revoked.actor_id == user.pk
    ledger_anchor_pending()
    assert ledger_verify().findings == []
