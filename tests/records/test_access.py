"""One access rule (portal.records.access), asked by every interface alike.

Each grant shape of `every_grant` (tests/conftest.py: the hospital-wide group, a department
group's consent, consents whole and in part, expired, scheduled and revoked ones, live and
ended break-glass, a proxy, a care team on a restricted chart, a grant on a restricted note)
goes through the module itself, the patient lists, the chart page, the API, FHIR and
`has_perm`: all must give the module's answer.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext

from portal.ids import row_id
from portal.records import access
from portal.records.categories import CATEGORY_CODES
from portal.records.models import ClinicalNote, Observation
from portal.tenancy.scoping import unscoped

FHIR = "/fhir/R4/"


def _module(user, patient):
    """The module's answer: (opens, categories, can_change)."""
    with unscoped():
        chart = access.chart_opened_for(user=user, patient=patient)
    if chart is None:
        return False, frozenset(), False
    categories = CATEGORY_CODES if chart.categories is None else chart.categories
    return True, frozenset(categories), chart.can_change


def _listed(client) -> set[int]:
    found = set()
    for url in ("/api/v1/patients/", "/api/v1/shared/"):
        response = client.get(url)
        if response.status_code == 200:
            found |= {row["id"] for row in response.json()["results"]}
    return found


def _interfaces(client, user, patient):
    """What each interface shows `user` of `patient` (signed in already)."""
    page = client.get(f"/provider/patients/{patient.pk}/").status_code == 200
    api = client.get(f"/api/v1/patients/{patient.pk}/chart/")
    categories: frozenset[str] = frozenset()
    if api.status_code == 200:
        shown = api.json()["access"]["categories"]
        categories = frozenset(CATEGORY_CODES if shown is None else shown)
    fhir = client.get(f"{FHIR}Patient/{patient.pk}").status_code == 200
    observations = None
    if fhir:
        bundle = client.get(f"{FHIR}Observation", {"patient": patient.pk}).json()
        # The matches: a partial chart's answer also has an OperationOutcome entry.
        entries = bundle.get("entry", [])
        observations = len([e for e in entries if e["search"]["mode"] == "match"])
    adds = client.get(f"/provider/patients/{patient.pk}/observations/new/").status_code == 200
    return {
        "page": page,
        "api": api.status_code == 200,
        "fhir": fhir,
        "listed": patient.pk in _listed(client),
        "categories": categories,
        "adds": adds,
        "observations": observations,
    }


def test_every_grant_shape_gets_the_modules_answer_everywhere(client, sign_in, every_grant):
    w, users = every_grant
    seen = set()
    for name, user in users.items():
        sign_in(client, user)
        for patient in (w["patient"], w["other"]):
            where = (name, patient.mrn)
            opens, categories, changes = _module(user, patient)
            shown = _interfaces(client, user, patient)
            assert shown["page"] is shown["api"] is opens, (where, shown)
            # FHIR also serves patients (issue 17): their own registrations, as the patient
            # portal opens them (tests/fhir/test_patient_access.py); staff as the module says.
            assert shown["fhir"] is (opens or patient.user_id == user.pk), (where, shown)
            assert shown["listed"] is opens, (where, shown)
            assert shown["categories"] == categories, where
            assert shown["adds"] is changes, where
            with unscoped():
                assert visible_now(user, patient) is opens, where
                assert (user.has_perm("records.view_patient", patient)) is opens, where
                if opens:
                    opened = access.access_patient(user, patient.pk)
                    expected = access.chart_records(chart=opened, model=Observation).count()
                    assert shown["observations"] == expected, where
                    assert (opened.categories or CATEGORY_CODES) == categories, where
                else:
                    with pytest.raises(Http404):
                        access.access_patient(user, patient.pk)
            seen.add((opens, changes, categories))
        client.logout()
    # The matrix covered no access, a part of a chart, a whole chart and writing.
    assert (False, False, frozenset()) in seen
    assert any(o and c and c != CATEGORY_CODES for o, _, c in seen)
    assert (True, True, CATEGORY_CODES) in seen


def visible_now(user, patient) -> bool:
    return access.visible_patients(user=user).filter(pk=patient.pk).exists()


@pytest.mark.parametrize("name", ["expired", "scheduled", "revoked", "break_glass_ended", "proxy"])
def test_a_grant_outside_its_window_or_for_the_patient_portal_opens_nothing_anywhere(
    name, client, sign_in, every_grant
):
    w, users = every_grant
    user = users[name]
    sign_in(client, user)
    shown = _interfaces(client, user, w["patient"])
    assert not any(shown[k] for k in ("page", "api", "fhir", "listed", "adds")), shown
    assert client.get(f"/provider/records/clinicalnote/{w['secret'].pk}/").status_code == 404
    with unscoped():
        assert access.chart_opened_for(user=user, patient=w["patient"]) is None
        assert not visible_now(user, w["patient"])
        assert not user.has_perm("records.view_clinicalnote", w["secret"])


def test_restricted_notes_open_only_through_a_live_grant_on_the_note(every_grant):
    w, users = every_grant
    secret = w["secret"].pk
    with unscoped():
        for name, expect in (
            ("note_granted", True),  # granted on the note itself
            ("home_clinician", True),  # its author (record_create grants it on the note)
            ("care_team", False),  # a colleague: the whole chart, but not the note
            ("consent_all", False),  # a consent to the whole chart: not its restricted notes
            ("expired", False),  # an expired grant on the note
        ):
            chart = access.chart_opened_for(user=users[name], patient=w["patient"])
            if chart is None:
                assert not expect, name
                continue
            notes = access.chart_records(chart=chart, model=ClinicalNote)
            assert notes.filter(pk=secret).exists() is expect, name
            try:
                access.access_record(users[name], "clinicalnote", secret)
                opened = True
            except Http404:
                opened = False
            assert opened is expect, name
        # The proxy's grant on the note shows it in no portal: never in a staff chart, and
        # in the patient portal a proxy sees no restricted note.
        proxy = access.access_patient_as_owner(users["proxy"], w["patient"].pk)
        assert not access.chart_records(chart=proxy, model=ClinicalNote).filter(pk=secret).exists()
        owner = access.access_patient_as_owner(w["account"], w["patient"].pk)
        assert access.chart_records(chart=owner, model=ClinicalNote).filter(pk=secret).exists()


def test_how_the_chart_was_opened_is_carried_with_it(every_grant):
    w, users = every_grant
    with unscoped():
        home = access.access_patient(users["home_clinician"], w["patient"].pk)
        consent = access.access_patient(users["consent_labs"], w["patient"].pk)
        glass = access.access_patient(users["break_glass"], w["patient"].pk)
        team = access.access_patient(users["department"], w["patient"].pk)
    assert home.via == "staff" and home.can_change and home.withheld == frozenset()
    assert home.purpose == "TREAT" and not home.shared and not home.break_glass
    assert consent.via == "consent" and consent.shared and not consent.can_change
    assert consent.categories == {"labs"} and "vitals" in consent.withheld
    assert glass.via == "breakglass" and glass.purpose == "ETREAT" and glass.until is not None
    assert team.categories == {"vitals", "notes"} and team.shared  # a group's consent
    with pytest.raises(Http404):
        access.access_patient(users["consent_all"], w["patient"].pk, codename="change_patient")


def test_missing_and_forbidden_are_the_same_404(every_grant, client, sign_in):
    w, users = every_grant
    sign_in(client, users["other_hospital"])
    missing = client.get("/provider/patients/999999999/")
    forbidden = client.get(f"/provider/patients/{w['patient'].pk}/")
    assert missing.status_code == forbidden.status_code == 404
    for bad in (2**63, 10**30, -(2**63) - 1):
        assert client.get(f"/provider/patients/{bad}/").status_code == 404
    assert row_id(2**63) is None and row_id(-(2**63)) == -(2**63)
    assert row_id("12x") is None and row_id(None) is None


def test_opening_a_chart_is_one_query(every_grant):
    """The patient, its hospital, the reader's live grants and which record types the chart
    holds come back in one statement, whatever the number of grants."""
    w, users = every_grant
    for name in ("home_clinician", "department", "break_glass", "care_team"):
        patient = w["other"] if name == "care_team" else w["patient"]
        with unscoped(), CaptureQueriesContext(connection) as ctx:
            opened = access.access_patient(users[name], patient.pk)
            assert opened.patient.hospital.name  # loaded with it
        assert len(ctx.captured_queries) == 1, (name, ctx.captured_queries)
        assert opened.present and "observation" in opened.present
