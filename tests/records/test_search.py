"""Finding a patient: names as the list shows them, in either order, partial names and MRNs
(keyed tokens, no names in clear), through the one access rule; recently opened charts; the
admin's patient list by MRN."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consent import services as consent_services
from consent.models import Consent
from portal.records import search_tokens, services
from portal.records.models import PatientSearchToken
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories

HOME = "/provider/"


@pytest.fixture
def people(make_staff, hospital_a, hospital_b):
    """Two hospitals, each with a clinician and patients; St Mary's has "Tom Silva" and
    "Ana-María O'Neil", Riverside a "Ruth Silvano" of its own."""
    clin_a = make_staff(hospital_a, Role.CLINICIAN)
    clin_b = make_staff(hospital_b, Role.CLINICIAN)
    with unscoped():

        def register(hospital, mrn, given, family, actor):
            return services.patient_register(
                hospital=hospital, mrn=mrn, given_name=given, family_name=family,
                birth_date=dt.date(1970, 1, 1), actor=actor,
            )  # fmt: skip

        tom = register(hospital_a, "SM-00417", "Tom", "Silva", clin_a)
        tom.user = factories.UserFactory(username="tom-silva")
        tom.save(update_fields=["user"])
        ana = register(hospital_a, "SM-00923", "Ana-María", "O'Neil", clin_a)
        kim = register(hospital_a, "XY-77", "Kim", "Li", clin_a)
        other = register(hospital_b, "RI-55555", "Ruth", "Silvano", clin_b)
    return {
        "a": hospital_a, "b": hospital_b, "clin_a": clin_a, "clin_b": clin_b,
        "tom": tom, "ana": ana, "kim": kim, "other": other,
    }  # fmt: skip


def _found(client, q: str) -> set[int]:
    response = client.get(HOME, {"q": q})
    assert response.status_code == 200
    return {p.pk for p in response.context["page"].patients}


def test_search_accepts_the_lists_form_either_order_and_prefixes(client, sign_in, people):
    tom, ana, kim = people["tom"], people["ana"], people["kim"]
    sign_in(client, people["clin_a"])
    for q in ("Silva, Tom", "Tom Silva", "silva tom", "  SILVA ,tom ", "Sil", "Tom",
              "tom sil"):  # fmt: skip
        assert _found(client, q) == {tom.pk}, q
    # Accents, case and punctuation do not matter; a hyphen or an apostrophe splits or joins.
    for q in ("ana maria", "María", "O'Neil", "oneil", "oneil, ana", "ana-maria o'ne"):
        assert _found(client, q) == {ana.pk}, q
    # MRNs whole or by a prefix of three or more characters, punctuation ignored.
    assert _found(client, "SM-00417") == {tom.pk}
    assert _found(client, "SM-0") == {tom.pk, ana.pk}
    assert _found(client, "sm009") == {ana.pk}
    # Shorter than three characters: whole name parts only ("Li"), never a prefix ("Si").
    assert _found(client, "li") == {kim.pk}
    assert _found(client, "Si") == set()
    # Every word must match: a word of another patient's name narrows to nobody.
    assert _found(client, "Tom Li") == set()
    assert _found(client, "Silvan") == set()  # Riverside's Ruth Silvano is not St Mary's
    page = client.get(HOME, {"q": "Sil"}).content.decode()
    assert "Silva, Tom" in page


def test_another_hospitals_patients_are_never_found(client, sign_in, people):
    """Riverside's clinician searching St Mary's names and MRNs finds nothing (cross-tenant),
    even where Riverside has a patient with a similar name; their own is found."""
    sign_in(client, people["clin_b"])
    for q in ("Silva, Tom", "Ana", "O'Neil", "SM-0", "SM-00417", "Kim Li"):
        assert _found(client, q) == set(), q
        page = client.get(HOME, {"q": q}).content.decode()
        assert f"/provider/patients/{people['tom'].pk}/" not in page, q
    assert _found(client, "Silva") == {people["other"].pk}  # prefix of Silvano, their own
    # A consent shares Tom's chart with Riverside: it is under "Shared with me", and this
    # hospital's search (Riverside's patients, Riverside's keys) still does not list it.
    with unscoped():
        consent_services.consent_grant(
            patient=people["tom"], actor=people["tom"].user,
            grantee_kind=Consent.GranteeKind.HOSPITAL, grantee_hospital=people["b"],
        )  # fmt: skip
    assert client.get(f"/provider/patients/{people['tom'].pk}/").status_code == 200
    assert _found(client, "SM-0") == set() and _found(client, "Silva, Tom") == set()


def test_search_never_shows_a_chart_the_user_may_not_open(client, sign_in, people, make_staff):
    nurse = make_staff(people["a"], Role.NURSE)
    with unscoped():
        services.care_team_add(patient=people["tom"], user=people["clin_a"], actor=people["clin_a"])
        services.patient_set_restricted(
            patient=people["tom"], restricted=True, actor=people["clin_a"]
        )
    sign_in(client, nurse)
    assert _found(client, "Silva, Tom") == set()
    assert _found(client, "SM-0") == {people["ana"].pk}
    sign_in(client, people["clin_a"])  # the care team
    assert _found(client, "Silva, Tom") == {people["tom"].pk}


def test_search_queries_do_not_grow_with_the_matches(client, sign_in, people):
    sign_in(client, people["clin_a"])

    def count(q: str) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(HOME, {"q": q}).status_code == 200
        return len(ctx.captured_queries)

    factories.PatientFactory(hospital=people["a"], given_name="Jo", family_name="Smith")
    count("Smith")  # warm the caches (content types, keys)
    few, two_words = count("Smith"), count("smi, jo")
    for i in range(20):
        factories.PatientFactory(hospital=people["a"], given_name=f"Jo{i}", family_name="Smith")
    assert len(_found(client, "smi")) == 21
    assert count("Smith") == few
    # (More words, more tokens: in tests each costs a key read, as keys are never committed.)
    assert count("smi, jo") == two_words


def test_tokens_hold_no_name_and_hide_its_length(people):
    with unscoped():
        rows = list(
            PatientSearchToken._base_manager.filter(patient=people["tom"]).values_list(
                "token", flat=True
            )
        )
        kim = PatientSearchToken._base_manager.filter(patient=people["kim"]).count()
    assert rows and len(rows) % search_tokens.PAD == 0 and kim % search_tokens.PAD == 0
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in rows)
    assert not {"tom", "silva", "sil", "sm-00417"} & {t.lower() for t in rows}
    # Keyed per hospital: the same name at another hospital gives other tokens.
    same = search_tokens.patient_tokens(
        hospital_id=people["b"].pk, given_name="Tom", family_name="Silva", mrn="SM-00417"
    )
    assert not set(same) & set(rows)


def test_search_tokens_command_fills_patients_without_tokens(people):
    with unscoped():
        PatientSearchToken._base_manager.filter(patient=people["tom"]).delete()
        call_command("search_tokens", "--missing")
        assert PatientSearchToken._base_manager.filter(patient=people["tom"]).exists()
        before = PatientSearchToken._base_manager.count()
        call_command("search_tokens")  # again: harmless, the same number of rows
        assert PatientSearchToken._base_manager.count() == before


def test_imported_patients_are_searchable_by_prefix(client, sign_in, people):
    from portal.fhir.services import fhir_bundle_import

    bundle = {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [{"fullUrl": "urn:uuid:p1", "resource": {
            "resourceType": "Patient", "id": "p1", "birthDate": "1990-01-01",
            "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": "IMP-4242"}],
            "name": [{"family": "Quixote", "given": ["Alonso"]}],
        }, "request": {"method": "POST", "url": "Patient"}}],
    }  # fmt: skip
    fhir_bundle_import(bundle=bundle, hospital=people["a"], actor=people["clin_a"])
    sign_in(client, people["clin_a"])
    assert len(_found(client, "Quix, Alo")) == 1
    assert len(_found(client, "imp-42")) == 1


def test_recently_opened_charts_are_listed_and_pass_the_access_rule(client, sign_in, people):
    """The charts a clinician opened, newest first, by their chart-read events; a chart
    shared by a consent drops out when the consent is revoked; no PHI in the links."""
    tom, ana = people["tom"], people["ana"]
    with unscoped():
        consent = consent_services.consent_grant(
            patient=tom, actor=tom.user, grantee_kind=Consent.GranteeKind.HOSPITAL,
            grantee_hospital=people["b"],
        )  # fmt: skip
    sign_in(client, people["clin_a"])
    assert client.get(HOME).context["recent"] == []
    for patient in (tom, ana, tom):
        assert client.get(f"/provider/patients/{patient.pk}/").status_code == 200
    response = client.get(HOME)
    assert [p.pk for p in response.context["recent"]] == [tom.pk, ana.pk]
    page = response.content.decode()
    assert "Recently opened" in page and f'href="/provider/patients/{tom.pk}/"' in page
    # Riverside's clinician: a St Mary's chart opened through the consent, then revoked.
    sign_in(client, people["clin_b"])
    assert client.get(f"/provider/patients/{tom.pk}/").status_code == 200
    shown = client.get(HOME)
    assert [p.pk for p in shown.context["recent"]] == [tom.pk]
    assert "St Mary" in shown.content.decode()  # another hospital's chart says whose
    with unscoped():
        consent_services.consent_revoke(consent=consent, actor=tom.user)
    assert client.get(HOME).context["recent"] == []
    assert client.get(f"/provider/patients/{tom.pk}/").status_code == 404


def test_recently_opened_costs_the_same_queries_whatever_the_charts(client, sign_in, people):
    sign_in(client, people["clin_a"])
    client.get(f"/provider/patients/{people['tom'].pk}/")

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(HOME).status_code == 200
        return len(ctx.captured_queries)

    count()
    few = count()
    for _ in range(6):
        patient = factories.PatientFactory(hospital=people["a"])
        client.get(f"/provider/patients/{patient.pk}/")
    many = count()
    assert len(client.get(HOME).context["recent"]) == 7
    assert many == few, (few, many)


def test_the_admins_patient_list_is_searchable_by_mrn(client, sign_in, people, make_staff):
    url = "/admin/records/patient/"
    admin_a = make_staff(people["a"], Role.HOSPITAL_ADMIN)
    admin_b = make_staff(people["b"], Role.HOSPITAL_ADMIN)
    auditor = factories.UserFactory(is_superuser=True, is_staff=True)
    factories.TOTPDeviceFactory(user=auditor)

    def found(q: str) -> set[int]:
        response = client.get(url, {"q": q})
        assert response.status_code == 200
        return {p.pk for p in response.context["cl"].result_list}

    sign_in(client, admin_a)
    assert found("SM-00417") == {people["tom"].pk}
    assert found("sm-00") == {people["tom"].pk, people["ana"].pk}
    assert found("XY-77") == {people["kim"].pk}  # shorter than a prefix: whole only
    assert found("RI-55555") == set()  # another hospital's MRN: nothing (cross-tenant)
    assert found("Silva") == set()  # names are not searched in the admin
    assert b"first 3 or more characters" in client.get(url).content
    sign_in(client, admin_b)
    assert found("SM-00417") == set() and found("RI-5") == {people["other"].pk}
    sign_in(client, auditor)
    assert found("RI-55555") == {people["other"].pk} and found("SM-0041") == {people["tom"].pk}


def test_new_names_replace_the_old_tokens(client, sign_in, people):
    """A service that changes a name or an MRN rewrites the tokens (the old prefix finds the
    patient no more), in the same number of rows whatever the names' lengths (padding)."""
    tom = people["tom"]
    with unscoped():
        tom.family_name, tom.mrn = "Pereira", "SM-99999"
        tom.save(update_fields=["family_name", "mrn", "family_name_index", "mrn_index"])
        services.patient_search_tokens_write(patient=tom)
        rows = PatientSearchToken._base_manager.filter(patient=tom).count()
    assert rows % search_tokens.PAD == 0
    sign_in(client, people["clin_a"])
    assert _found(client, "Silva, Tom") == set() and _found(client, "SM-004") == set()
    assert _found(client, "Pere, Tom") == {tom.pk} and _found(client, "sm-999") == {tom.pk}
