"""Role routing of every portal, switching hospital, and the cross-tenant cases of each view."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from portal.tenancy.models import Role
from tests import factories


@pytest.fixture
def patient_user(make_patient_user, hospital_a, hospital_b):
    return make_patient_user(hospital_a)[0]


@pytest.fixture
def hospital_admin_a(make_staff, hospital_a, hospital_b):
    return make_staff(hospital_a, Role.HOSPITAL_ADMIN)


@pytest.fixture
def auditor(db):
    user = factories.UserFactory(is_superuser=True, is_staff=True)
    factories.TOTPDeviceFactory(user=user)
    return user


@pytest.mark.parametrize("url", ["/provider/", "/patient/", "/admin/", "/"])
def test_anonymous_users_are_sent_to_log_in(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert "/accounts/login/" in response.url


def test_clinician_routing(client, sign_in, clinician_a):
    sign_in(client, clinician_a)
    assert client.get("/").url == "/provider/"
    assert client.get("/provider/").status_code == 200
    assert client.get("/patient/").status_code == 403
    assert client.get("/admin/").status_code == 403


def test_every_staff_role_reaches_the_provider_portal(
    client, sign_in, make_staff, hospital_a, hospital_b
):
    for role in Role:
        user = make_staff(hospital_a, role)
        sign_in(client, user)
        response = client.get("/provider/")
        assert response.status_code == 200
        assert role.label.encode() in response.content
        assert b"St Mary&#x27;s Hospital" in response.content


def test_patient_routing(client, sign_in, patient_user):
    sign_in(client, patient_user)
    assert client.get("/").url == "/patient/"
    assert client.get("/patient/").status_code == 200
    assert client.get("/provider/").status_code == 403
    assert client.get("/admin/").status_code == 403


def test_staff_without_second_factor_is_sent_back_to_log_in(client, sign_in, clinician_a):
    sign_in(client, clinician_a, verified=False)
    assert client.get("/provider/").status_code == 302


def test_user_without_any_role_gets_403_not_500(client, sign_in, db):
    sign_in(client, factories.UserFactory())
    for url in ["/", "/provider/", "/patient/", "/admin/"]:
        assert client.get(url).status_code == 403, url


def test_auditor_uses_admin_for_every_hospital(client, sign_in, auditor, hospital_a, hospital_b):
    factories.MembershipFactory(hospital=hospital_a)
    factories.MembershipFactory(hospital=hospital_b)
    sign_in(client, auditor)
    assert client.get("/").url == "/admin/"
    page = client.get("/admin/tenancy/membership/")
    assert page.status_code == 200
    assert b"St Mary" in page.content and b"Riverside" in page.content


def test_auditor_without_second_factor_cannot_open_admin(client, sign_in, auditor):
    sign_in(client, auditor, verified=False)
    assert client.get("/admin/").status_code == 302


def test_hospital_admin_sees_only_their_hospital(
    client, sign_in, hospital_admin_a, hospital_a, hospital_b
):
    ours = factories.MembershipFactory(hospital=hospital_a)
    theirs = factories.MembershipFactory(hospital=hospital_b)
    sign_in(client, hospital_admin_a)
    assert client.get("/admin/").status_code == 200
    listing = client.get("/admin/tenancy/membership/")
    assert listing.status_code == 200
    assert ours.user.username.encode() in listing.content
    assert theirs.user.username.encode() not in listing.content
    # Another hospital's membership and hospital cannot be opened: 404, as missing ones.
    assert client.get(f"/admin/tenancy/membership/{ours.pk}/change/").status_code == 200
    assert client.get(f"/admin/tenancy/membership/{theirs.pk}/change/").status_code == 404
    assert client.get(f"/admin/tenancy/hospital/{hospital_b.pk}/change/").status_code == 404
    hospitals = client.get("/admin/tenancy/hospital/")
    assert b"Riverside" not in hospitals.content
    # Users: only their own staff; lockouts are auditors' only.
    users = client.get("/admin/auth/user/")
    assert users.status_code == 200
    assert ours.user.username.encode() in users.content
    assert theirs.user.username.encode() not in users.content
    assert client.get("/admin/axes/accessattempt/").status_code == 403


def test_hospital_admin_cannot_add_staff_to_another_hospital(
    client, sign_in, hospital_admin_a, hospital_a, hospital_b
):
    newcomer = factories.UserFactory()
    sign_in(client, hospital_admin_a)
    response = client.post(
        "/admin/tenancy/membership/add/",
        {"user": newcomer.pk, "hospital": hospital_b.pk, "role": Role.NURSE, "is_active": "on"},
    )
    assert response.status_code == 200  # the form again, with an error
    assert b"Select a valid choice" in response.content
    from portal.tenancy.models import Membership

    assert not Membership._base_manager.filter(user=newcomer).exists()


def test_provider_list_shows_only_the_active_hospital(
    client, sign_in, clinician_a, hospital_a, hospital_b
):
    ours = factories.PatientFactory(hospital=hospital_a, family_name="Ourside")
    theirs = factories.PatientFactory(hospital=hospital_b, family_name="Theirside")
    sign_in(client, clinician_a)
    page = client.get("/provider/")
    assert ours.mrn.encode() in page.content
    assert theirs.mrn.encode() not in page.content


def test_switching_hospital(client, sign_in, hospital_a, hospital_b):
    locum = factories.UserFactory()
    factories.MembershipFactory(user=locum, hospital=hospital_a, role=Role.CLINICIAN)
    factories.MembershipFactory(user=locum, hospital=hospital_b, role=Role.NURSE)
    factories.TOTPDeviceFactory(user=locum)
    a_patient = factories.PatientFactory(hospital=hospital_a)
    b_patient = factories.PatientFactory(hospital=hospital_b)
    sign_in(client, locum)

    page = client.get("/provider/")
    assert b"Switch hospital" in page.content
    # With no choice made yet, the first membership by hospital name is active.
    assert b_patient.mrn.encode() in page.content
    assert client.post("/accounts/hospital/", {"hospital": hospital_a.pk}).status_code == 302
    page = client.get("/provider/")
    assert a_patient.mrn.encode() in page.content
    assert b_patient.mrn.encode() not in page.content
    assert b"Clinician" in page.content

    response = client.post("/accounts/hospital/", {"hospital": hospital_b.pk})
    assert response.status_code == 302
    page = client.get("/provider/")
    assert b_patient.mrn.encode() in page.content
    assert a_patient.mrn.encode() not in page.content
    assert b"Nurse" in page.content


def test_switching_to_a_hospital_without_membership_is_404(
    client, sign_in, clinician_a, hospital_b
):
    sign_in(client, clinician_a)
    assert client.post("/accounts/hospital/", {"hospital": hospital_b.pk}).status_code == 404
    assert client.post("/accounts/hospital/", {"hospital": 999999}).status_code == 404
    bad = client.post("/accounts/hospital/", {"hospital": "x"})
    assert bad.status_code == 302  # a message, not a 500


def test_a_planted_hospital_id_in_the_session_is_ignored(
    client, sign_in, clinician_a, hospital_a, hospital_b
):
    theirs = factories.PatientFactory(hospital=hospital_b)
    sign_in(client, clinician_a)
    session = client.session
    session["active_hospital_id"] = hospital_b.pk
    session.save()
    page = client.get("/provider/")
    assert page.status_code == 200
    assert theirs.mrn.encode() not in page.content
    assert b"Riverside" not in page.content


def test_patient_sees_every_registration_and_nobody_elses(
    client, sign_in, make_patient_user, hospital_a, hospital_b
):
    user, regs = make_patient_user(hospital_a, hospital_b)
    _other_user, other_regs = make_patient_user(hospital_a)
    sign_in(client, user)
    page = client.get("/patient/")
    for reg in regs:
        assert reg.mrn.encode() in page.content
    assert other_regs[0].mrn.encode() not in page.content
    assert b"St Mary" in page.content and b"Riverside" in page.content


# Every view in the URLconf must appear here, with the test(s) that cover its cross-tenant
# case above; a new view without an entry fails this test.
CROSS_TENANT_CASES = {
    "accounts:home": "test_user_without_any_role_gets_403_not_500",
    "accounts:login": "tests/accounts/test_login.py (no tenant data shown)",
    "accounts:totp_verify": "tests/accounts/test_login.py (no tenant data shown)",
    "accounts:totp_setup": "tests/accounts/test_login.py (no tenant data shown)",
    "accounts:logout": "test_log_out_ends_the_session_on_the_server",
    "accounts:switch_hospital": "test_switching_to_a_hospital_without_membership_is_404",
    **{
        f"accounts:{name}": "tests/security/test_second_factor_cannot_be_skipped.py::"
        "test_another_accounts_devices_are_404 (the account's own devices only)"
        for name in ("two_factor", "two_factor_add", "two_factor_remove", "two_factor_off")
    },
    "provider:home": "test_provider_list_shows_only_the_active_hospital",
    **{
        f"provider:{name}": "test_access.py::test_other_hospitals_ids_are_404_everywhere"
        for name in (
            "chart",
            "observation_new",
            "blood_pressure_new",
            "note_new",
            "care_team",
            "care_team_remove",
            "document_upload",
            "document_download",
            "observation_correct",
            "record",
            "record_new",
            "record_correct",
        )
    },
    "provider:patient_new": "test_register_patient_validation (creates at the active hospital)",
    "provider:shared": "tests/consent/test_views.py::test_shared_list_holds_only_granted_charts",
    "provider:access_request_new": "tests/consent/test_views.py::test_access_request_flow",
    "provider:break_glass": "tests/consent/test_views.py::test_break_glass_flow",
    "provider:break_glass_end": "tests/provider/test_every_role_has_a_way_in.py::"
    "test_break_glass_can_be_ended_early_by_the_one_who_opened_it",
    **{
        f"patient:{name}": "tests/consent/test_views.py::test_other_patients_ids_are_404"
        for name in (
            "records",
            "access_log",
            "event_verify",
            "consents",
            "consent_new",
            "consent_revoke",
            "requests",
            "request_decide",
            "proxies",
            "proxy_accept",
            "proxy_revoke",
            "proxy_records",
            "export_json",
            "export_print",
        )
    },
    "patient:home": "test_patient_sees_every_registration_and_nobody_elses",
    "patient:document_download": "tests/patient/test_what_patients_are_told.py::"
    "test_a_patient_downloads_their_own_document (and ..._of_another_hospital_gets_404...)",
    "patient:proxy_document_download": "tests/patient/test_what_patients_are_told.py::"
    "test_a_proxy_downloads_documents_only_if_the_grant_covers_them",
    "healthz": "tests/test_pages.py::test_healthz (no data at all)",
    "ledger:public_key": "tests/ledger/test_views.py (public, no tenant data)",
    "ledger:checkpoint": "tests/ledger/test_views.py (public: size and root only)",
    "ledger:receipt": "test_receipts_of_other_patients_and_hospitals_are_404",
    "ledger:consistency": "test_anonymous_users_get_no_receipts_or_proofs (hashes only)",
    **{
        f"fhir:{name}": "tests/fhir/test_views.py::test_other_hospitals_ids_are_404_everywhere"
        for name in ("patient_read", "patient_everything", "search", "read")
    },
    **{
        f"fhir:{name}": "tests/fhir/test_history.py::test_another_hospitals_history_is_404"
        for name in ("history", "vread")
    },
    # SMART App Launch (portal.smart) and django-oauth-toolkit's endpoints.
    "smart_configuration": "tests/smart/test_authorization.py (public, no tenant data)",
    "oauth2_provider:oidc-connect-discovery-info": "public OpenID configuration, no tenant data",
    "oauth2_provider:jwks-info": "public signing key, no tenant data",
    "oauth2_provider:authorize": "tests/smart/test_fhir_tokens.py::"
    "test_a_patient_with_two_registrations_picks_whose_records (own registrations only)",
    "oauth2_provider:token": "tests/smart/test_authorization.py::test_a_code_is_exchanged_once",
    "oauth2_provider:revoke-token": "tests/smart/test_authorization.py::"
    "test_app_revocation_ends_the_authorization_at_once",
    "oauth2_provider:introspect": "tests/smart/test_fhir_tokens.py::"
    "test_a_confidential_client_introspects_its_token (another app's tokens are inactive)",
    "oauth2_provider:user-info": "tests/smart/test_authorization.py::"
    "test_patient_standalone_launch_gets_patient_context_and_fhir_user (the token's own user)",
    "smart:connected_apps": "tests/smart/test_authorization.py::"
    "test_connected_apps_lists_in_a_fixed_number_of_queries (own apps only)",
    "smart:disconnect": "tests/smart/test_fhir_tokens.py::test_another_patients_disconnect_is_404",
    "smart:ehr_launch": "tests/smart/test_authorization.py::"
    "test_a_launch_is_only_for_who_launched_it",
    "smart:demo_index": "tests/smart/test_browser.py (a static demo app page, no tenant data)",
    "smart:demo_launch": "tests/smart/test_browser.py (a static demo app page, no tenant data)",
    "fhir:patient_search": "test_other_hospitals_ids_are_404_everywhere (finds nothing)",
    "fhir:search_post": "tests/security/test_no_phi_in_server_logs.py::"
    "test_search_by_post_keeps_every_other_rule",
    "fhir:root": "test_post_a_bundle_imports_into_the_active_hospital (the active hospital)",
    "fhir:metadata": "test_authentication (public CapabilityStatement, no tenant data)",
    "fhir:not_found": "test_unknown_things_are_404_operation_outcomes (always 404)",
    "api:schema": "tests/api/test_schemathesis.py (public schema, no tenant data)",
    "api:docs": "tests/api/test_tokens.py::test_schema_and_its_ui_need_no_cdn (no tenant data)",
    "api:redoc": "tests/api/test_tokens.py::test_schema_and_its_ui_need_no_cdn (no tenant data)",
    "api:redoc_bundle": "tests/security/test_api_docs_load_nothing_from_outside.py (static)",
    "api:patients": "tests/api/test_staff.py::test_patient_list_search_and_other_hospitals",
    **{
        f"api:{name}": "tests/api/test_staff.py::"
        "test_chart_endpoints_are_404_across_tenants_and_for_restricted_charts"
        for name in ("patient", "chart", "records")
    },
    "api:record": "tests/api/test_staff.py::test_record_detail_and_document_read",
    "api:record_correct": "tests/api/test_staff.py::test_record_correct",
    **{
        f"api:{name}": "tests/api/test_staff.py::test_shared_access_request_and_break_glass"
        for name in ("shared", "access_requests", "break_glass")
    },
    **{
        f"api:{name}": "tests/api/test_patient.py::test_my_registrations_records_and_access_log"
        for name in ("my_registrations", "my_records", "my_access_log")
    },
    **{
        f"api:{name}": "tests/api/test_patient.py::test_consents_grant_list_revoke"
        for name in ("my_consents", "my_consent_revoke")
    },
    **{
        f"api:{name}": "tests/api/test_patient.py::test_access_requests_list_and_decide"
        for name in ("my_access_requests", "my_access_request_decide")
    },
    **{
        f"api:{name}": "tests/api/test_patient.py::test_proxies_grant_list_revoke"
        for name in ("my_proxies", "my_proxy_accept", "my_proxy_revoke")
    },
    **{
        f"api_tokens:{name}": "tests/api/test_tokens.py::"
        "test_tokens_page_for_staff_needs_a_verified_session (own tokens only)"
        for name in ("list", "revoke")
    },
}


def _names(resolver: URLResolver, prefix: str = "") -> set[str]:
    names: set[str] = set()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.app_name == "admin":
                continue  # covered by the hospital-admin tests above
            ns = f"{prefix}{pattern.namespace}:" if pattern.namespace else prefix
            names |= _names(pattern, ns)
        elif isinstance(pattern, URLPattern) and pattern.name:
            names.add(prefix + pattern.name)
    return names


def test_every_view_has_a_cross_tenant_case():
    assert _names(get_resolver()) == set(CROSS_TENANT_CASES)
