"""Issue 13, item 2: a token keeps the audience it was issued for.

The attack: a patient signed in with a password only, made an API token on the "API tokens"
page, and was then given a staff membership by a hospital admin; the old token then read
charts through the API and FHIR without any second factor. A token now records whom it acts
as and whether two factors were used when it was issued: staff endpoints (the REST API's and
FHIR) take only staff tokens issued after two factors, a later membership never widens a
token, and a staff token does not act as a patient either. (Since issue 17 FHIR also
serves patients, a patient token as the patient it is: only their own registrations.)
"""

from __future__ import annotations

import datetime as dt
import importlib
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.utils import timezone

from ledger.models import Event
from portal.accounts.models import TOTPDevice
from portal.api.models import ApiToken
from portal.api.services import token_issue
from portal.records import services as records_services
from portal.records.models import Patient
from portal.tenancy.models import Membership, Role
from portal.tenancy.scoping import unscoped
from portal.tenancy.services import membership_create, membership_update
from tests import factories
from tests.conftest import login_through_forms

TOKENS_PAGE = "/accounts/api-tokens/"


@pytest.fixture
def charts(make_staff, hospital_a, hospital_b):
    """A chart with a heart rate at each hospital, their clinicians and hospital A's admin."""
    out = SimpleNamespace(
        hospital_a=hospital_a, hospital_b=hospital_b,
        clinician_a=make_staff(hospital_a, Role.CLINICIAN),
        clinician_b=make_staff(hospital_b, Role.CLINICIAN),
        admin_a=make_staff(hospital_a, Role.HOSPITAL_ADMIN),
    )  # fmt: skip
    with unscoped():
        for key, hospital, clinician in (
            ("a", hospital_a, out.clinician_a), ("b", hospital_b, out.clinician_b),
        ):  # fmt: skip
            chart = records_services.patient_register(
                hospital=hospital, mrn=f"AUD-{key}", given_name="Ada", family_name=f"Chart{key}",
                birth_date=dt.date(1950, 5, 6), actor=clinician,
            )  # fmt: skip
            observation = records_services.observation_create(
                actor=clinician, patient=chart, code="8867-4", display="Heart rate",
                value=Decimal(64), unit="/min", effective_at=timezone.now(),
            )  # fmt: skip
            setattr(out, f"chart_{key}", chart)
            setattr(out, f"observation_{key}", observation)
    return out


def _bearer(raw: str, hospital: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {raw}"}
    if hospital:
        headers["X-Hospital"] = hospital
    return headers


def _issue_on_page(client, **data) -> str:
    response = client.post(TOKENS_PAGE, {"name": "my app", "days": 30, **data})
    assert response.status_code == 200, response.content.decode()[:2000]
    assert response.context["new_token"]
    return response.context["new_token"]


def _staff_answers(client, raw: str, charts, hospital: str | None = None) -> dict[str, int]:
    """Every kind of staff read and write, through the REST API and FHIR, with one token."""
    chart, obs = charts.chart_a, charts.observation_a
    headers = _bearer(raw, hospital)
    new_patient = {"mrn": "AUD-NEW", "given_name": "New", "family_name": "Patient",
                   "birth_date": "1990-01-01", "sex": "other"}  # fmt: skip
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": []}
    requests = {
        "api list": ("get", "/api/v1/patients/", None),
        "api patient": ("get", f"/api/v1/patients/{chart.pk}/", None),
        "api chart": ("get", f"/api/v1/patients/{chart.pk}/chart/", None),
        "api records": ("get", f"/api/v1/patients/{chart.pk}/records/observation/", None),
        "api record": ("get", f"/api/v1/records/observation/{obs.pk}/", None),
        "api shared": ("get", "/api/v1/shared/", None),
        "api requests": ("get", "/api/v1/access-requests/", None),
        "api register": ("post", "/api/v1/patients/", new_patient),
        "fhir patient": ("get", f"/fhir/R4/Patient/{chart.pk}", None),
        "fhir search": ("get", "/fhir/R4/Patient", None),
        "fhir observations": ("get", f"/fhir/R4/Observation?patient={chart.pk}", None),
        "fhir import": ("post", "/fhir/R4/", bundle),
    }
    answers = {}
    for name, (method, url, body) in requests.items():
        if method == "get":
            response = client.get(url, headers=headers)
        else:
            kind = "application/fhir+json" if url.startswith("/fhir/") else "application/json"
            response = client.post(url, body, content_type=kind, headers=headers)
        answers[name] = response.status_code
    return answers


def _refused_staff_data(client, answers: dict[str, int], raw: str, own: list[int]) -> None:
    """A patient token reaches no staff data: the API's staff endpoints refuse it (403);
    FHIR serves it as the patient it is (issue 17): another patient's chart is a 404, a
    Patient search finds only the account's own registrations, an import is a 403."""
    assert {k: v for k, v in answers.items() if k.startswith("api")} == {
        k: 403 for k in answers if k.startswith("api")
    }, answers
    assert answers["fhir patient"] == answers["fhir observations"] == 404, answers
    assert answers["fhir import"] == 403 and answers["fhir search"] == 200, answers
    found = client.get("/fhir/R4/Patient", headers=_bearer(raw)).json()
    assert sorted(int(e["resource"]["id"]) for e in found.get("entry", [])) == sorted(own)


def _reads_of(patient) -> int:
    return Event.objects.filter(patient_id=patient.pk, kind__endswith=".read").count()


def test_a_patient_token_stays_a_patient_token_after_a_staff_membership(
    client, charts, make_patient_user, hospital_a
):
    user, [registration] = make_patient_user(hospital_a)
    # Password only: a patient who has not turned TOTP on.
    assert login_through_forms(client, user).status_code == 302
    assert not TOTPDevice.objects.filter(user=user).exists()
    raw = _issue_on_page(client)
    client.logout()

    # A hospital admin then makes the account a clinician at the chart's hospital.
    membership_create(user=user, hospital=hospital_a, role=Role.CLINICIAN, actor=charts.admin_a)
    reads, patients = _reads_of(charts.chart_a), Patient._base_manager.count()

    answers = _staff_answers(client, raw, charts)
    _refused_staff_data(client, answers, raw, [registration.pk])
    # Nothing was read (no access event) and nothing was written.
    assert _reads_of(charts.chart_a) == reads
    assert Patient._base_manager.count() == patients
    refused = client.get(f"/api/v1/patients/{charts.chart_a.pk}/", headers=_bearer(raw))
    assert "patient token" in refused.json()["error"]
    # Where patients go, it still works as the patient token it was.
    mine = client.get("/api/v1/me/registrations/", headers=_bearer(raw))
    assert mine.status_code == 200
    assert [p["id"] for p in mine.json()["results"]] == [registration.pk]


def test_a_staff_token_cannot_be_issued_without_two_factors(client, charts, make_patient_user):
    clinician = charts.clinician_a
    # The password step alone: the page sends the clinician back to sign in; no token.
    response = client.post(
        "/accounts/login/", {"username": clinician.username, "password": factories.PASSWORD}
    )
    assert response.status_code == 302 and response.url.endswith("/accounts/login/verify/")
    for attempt in (
        client.get(TOKENS_PAGE),
        client.post(TOKENS_PAGE, {"name": "x", "days": 30, "audience": "staff"}),
    ):
        assert attempt.status_code == 302 and "/accounts/login/" in attempt.url
    assert not ApiToken.objects.filter(user=clinician).exists()
    # Nor behind the page: the service that every way in uses refuses it.
    with pytest.raises(ValidationError, match="two factors"):
        token_issue(user=clinician, name="x", audience="staff", two_factor=False)
    assert not ApiToken.objects.filter(user=clinician).exists()

    # A patient signed in with a password only cannot ask for a staff token either.
    user, _ = make_patient_user(charts.hospital_a)
    client.logout()
    assert login_through_forms(client, user).status_code == 302
    client.post(TOKENS_PAGE, {"name": "sneaky", "days": 30, "audience": "staff"})
    assert not ApiToken.objects.filter(user=user, audience="staff").exists()
    assert set(ApiToken.objects.filter(user=user).values_list("audience", flat=True)) <= {"patient"}


def test_a_staff_token_issued_after_two_factors_works_and_only_as_staff(client, charts, hospital_b):
    clinician = charts.clinician_a
    # The clinician is also a patient at the other hospital: they choose, the page says so.
    factories.PatientFactory(hospital=hospital_b, user=clinician)
    assert login_through_forms(client, clinician).status_code == 302
    page = client.get(TOKENS_PAGE).content.decode()
    assert "As hospital staff" in page and "As a patient" in page
    staff_raw = _issue_on_page(client, audience="staff")
    patient_raw = _issue_on_page(client, audience="patient")
    staff_row = ApiToken.objects.get(user=clinician, audience="staff")
    assert staff_row.two_factor is True
    client.logout()

    reads = _reads_of(charts.chart_a)
    answers = _staff_answers(client, staff_raw, charts)
    assert answers["api patient"] == answers["api chart"] == answers["fhir patient"] == 200
    assert answers["api register"] == 201 and answers["fhir import"] == 200
    assert _reads_of(charts.chart_a) > reads
    # The staff token does not act as the patient the clinician also is ...
    assert client.get("/api/v1/me/registrations/", headers=_bearer(staff_raw)).status_code == 403
    assert client.get("/api/v1/me/proxies/", headers=_bearer(staff_raw)).status_code == 403
    # ... and the patient token of the same account reaches no staff data.
    answers = _staff_answers(client, patient_raw, charts)
    own = list(Patient._base_manager.filter(user=clinician).values_list("pk", flat=True))
    _refused_staff_data(client, answers, patient_raw, own)
    assert client.get("/api/v1/me/registrations/", headers=_bearer(patient_raw)).status_code == 200


def test_staff_tokens_stay_in_their_own_hospitals(client, charts):
    raw = token_issue(user=charts.clinician_a, name="ci", audience="staff", two_factor=True)[1]
    # X-Hospital of a hospital that is not the caller's: 403, as before.
    answers = _staff_answers(client, raw, charts, hospital="riverside")
    assert {answers[k] for k in answers if k.startswith("api")} == {403}
    assert answers["fhir patient"] == answers["fhir search"] == 403
    # The other hospital's chart and record by id: 404, as a missing one.
    chart_b, obs_b = charts.chart_b, charts.observation_b
    for url in (
        f"/api/v1/patients/{chart_b.pk}/", f"/api/v1/patients/{chart_b.pk}/chart/",
        f"/api/v1/records/observation/{obs_b.pk}/", f"/fhir/R4/Patient/{chart_b.pk}",
    ):  # fmt: skip
        assert client.get(url, headers=_bearer(raw)).status_code == 404, url
    assert _reads_of(chart_b) == 0


def test_a_staff_token_reaches_nothing_once_the_membership_ends(client, charts):
    raw = token_issue(user=charts.clinician_a, name="ci", audience="staff", two_factor=True)[1]
    url = f"/api/v1/patients/{charts.chart_a.pk}/"
    assert client.get(url, headers=_bearer(raw)).status_code == 200
    membership = Membership._base_manager.get(user=charts.clinician_a)
    membership_update(
        membership=membership, role=membership.role, department=None, is_active=False,
        actor=charts.admin_a,
    )  # fmt: skip
    answers = _staff_answers(client, raw, charts)
    assert answers == dict.fromkeys(answers, 403), answers


def test_existing_tokens_get_the_narrowest_audience(client, charts, make_patient_user):
    """The migration: a token from before audiences were recorded becomes a patient token if
    its account has no membership, else a staff token not known to be two-factor, which
    every endpoint refuses until it is re-issued."""
    patient, _ = make_patient_user(charts.hospital_a)
    patient_raw = token_issue(user=patient, name="old", audience="patient", two_factor=False)[1]
    staff_raw = token_issue(user=charts.clinician_a, name="old", audience="staff",
                            two_factor=True)[1]  # fmt: skip
    # As the rows stood before the migration: no audience known.
    ApiToken.objects.update(audience="patient", two_factor=False)
    migration = importlib.import_module("portal.api.migrations.0002_token_audience_and_two_factor")
    migration.mark_tokens_of_members_staff(apps, None)

    assert ApiToken.objects.get(user=patient).audience == "patient"
    old_staff = ApiToken.objects.get(user=charts.clinician_a)
    assert (old_staff.audience, old_staff.two_factor) == ("staff", False)
    answers = _staff_answers(client, staff_raw, charts)
    assert answers == dict.fromkeys(answers, 403), answers
    refused = client.get("/api/v1/patients/", headers=_bearer(staff_raw)).json()["error"]
    assert "two-factor" in refused and "new one" in refused
    assert client.get("/api/v1/me/registrations/", headers=_bearer(patient_raw)).status_code == 200
