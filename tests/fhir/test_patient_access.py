"""Patients on FHIR (issue 17, item 5): a patient's own token or portal session reads their
own registrations through /fhir/R4/ with the patient portal's rules (the owner sees all of
it, restricted notes included; a proxy only the categories granted, never a restricted
note), nothing of anyone else (404), and writes nothing. The caller's limits (an app's
types, categories and launch patient) only ever narrow what the access module opens."""

import dataclasses
import datetime as dt
import json
from decimal import Decimal

import pytest
from django.utils import timezone
from fhir.resources.R4B.operationoutcome import OperationOutcome

from consent import services as consent_services
from consent.selectors import access_log_for_owner
from ledger.models import Event
from portal.api.services import token_issue
from portal.fhir import callers, resources
from portal.records import access, audit, services
from portal.records.access import PURPOSE_FAMILY, access_patient_as_owner, chart_narrowed
from portal.records.categories import CATEGORY_CODES
from portal.records.models import (
    AllergyIntolerance,
    ClinicalNote,
    Condition,
    Document,
    Encounter,
    Immunization,
    MedicationRequest,
    Observation,
    Patient,
    Procedure,
)
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories
from tests.fhir.test_import import _tiny_bundle

pytestmark = pytest.mark.django_db

BASE = "/fhir/R4/"
TYPES = ["Encounter", "Observation", "Condition", "MedicationRequest", "AllergyIntolerance",
         "Immunization", "Procedure", "DocumentReference"]  # fmt: skip


def _fill(clinician, patient, *, label):
    """One record of every type (and a restricted note) on a registration."""
    when = timezone.now() - dt.timedelta(days=2)
    make = dict(actor=clinician, patient=patient)
    return {
        "encounter": services.record_create(
            **make, model=Encounter, class_code="AMB", type_code="185349003",
            type_display="Check up", reason="Check-up", period_start=when,
            period_end=when + dt.timedelta(minutes=30),
        ),
        "observation": services.observation_create(
            **make, code="8867-4", display="Heart rate", value=Decimal(70), unit="/min",
            effective_at=when,
        ),
        "condition": services.record_create(
            **make, model=Condition, code="38341003", display="Hypertension",
            onset_date=dt.date(2019, 1, 2),
        ),
        "medicationrequest": services.record_create(
            **make, model=MedicationRequest, code="316049", display="Hydrochlorothiazide",
            dosage="1 daily", authored_on=when,
        ),
        "allergyintolerance": services.record_create(
            **make, model=AllergyIntolerance, code="300913006", display="Shellfish allergy",
            criticality="low", reaction="Hives", recorded_date=when,
        ),
        "immunization": services.record_create(
            **make, model=Immunization, vaccine_code="140", display="Influenza",
            occurrence=when,
        ),
        "procedure": services.record_create(
            **make, model=Procedure, code="430193006", display="Reconciliation",
            performed_at=when,
        ),
        "clinicalnote": services.record_create(
            **make, model=ClinicalNote, title="Visit", text=f"Feels well {label}.",
        ),
        "restricted": services.record_create(
            **make, model=ClinicalNote, title="Private", text="psychotherapy",
            restricted=True,
        ),
        "document": services.record_create(
            **make, model=Document, title="Letter", content_type="text/plain", size=5,
            sha256="0" * 64, content=b"hello",
        ),
    }  # fmt: skip


@pytest.fixture
def world(make_staff, hospital_a, hospital_b):
    """Me: registered at both hospitals, with records at each. Another patient at each
    hospital, with records too. A clinician at each hospital, with a staff token."""
    out = {"hospital_a": hospital_a, "hospital_b": hospital_b}
    me = factories.UserFactory()
    out["me"] = me
    for key, hospital in (("a", hospital_a), ("b", hospital_b)):
        clinician = make_staff(hospital, Role.CLINICIAN)
        other = factories.UserFactory()
        with unscoped():
            mine = services.patient_register(
                hospital=hospital, mrn=f"{key.upper()}-1", given_name="Ada",
                family_name="Lovelace", birth_date=dt.date(1970, 1, 2), user=me, actor=clinician,
            )  # fmt: skip
            theirs = services.patient_register(
                hospital=hospital, mrn=f"{key.upper()}-2", given_name="Grace",
                family_name="Hopper", birth_date=dt.date(1960, 3, 4), user=other,
                actor=clinician,
            )  # fmt: skip
            out[key] = {
                "clinician": clinician, "other": other, "mine": mine, "theirs": theirs,
                "my": _fill(clinician, mine, label=f"me-{key}"),
                "their": _fill(clinician, theirs, label=f"them-{key}"),
                "staff_token": token_issue(
                    user=clinician, name="ci", audience="staff", two_factor=True
                )[1],
            }  # fmt: skip
    out["token"] = token_issue(user=me, name="app", audience="patient", two_factor=False)[1]
    return out


def _get(client, url, token=None, **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return client.get(url, headers=headers)


def _json(response):
    assert response["Content-Type"].startswith("application/fhir+json"), response["Content-Type"]
    return json.loads(response.content)


def _valid(response, status=200):
    assert response.status_code == status, response.content[:500]
    body = _json(response)
    resources.validate_resource(body)
    return body


def _ids(bundle):
    """The bundle's resources as "Type/id" (ids are per type: Patient 1 and Condition 1)."""
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") != "outcome"
    }


def _ref(record):
    if isinstance(record, Patient):
        return f"Patient/{record.pk}"
    return f"{resources.resource_type_of(record)}/{resources.fhir_id(record)}"


def _own_urls(world, key="a"):
    p = world[key]["mine"].pk
    my = world[key]["my"]
    urls = [f"{BASE}Patient/{p}", f"{BASE}Patient/{p}/$everything",
            f"{BASE}AuditEvent?patient={p}", f"{BASE}Consent?patient={p}",
            f"{BASE}Provenance?target=Observation/{my['observation'].pk}",
            *(f"{BASE}{t}?patient={p}" for t in TYPES)]  # fmt: skip
    for record in my.values():
        urls.append(f"{BASE}{resources.resource_type_of(record)}/{resources.fhir_id(record)}")
    return urls


def _their_urls(world, key):
    p = world[key]["theirs"].pk
    their = world[key]["their"]
    urls = [f"{BASE}Patient/{p}", f"{BASE}Patient/{p}/$everything",
            f"{BASE}AuditEvent?patient={p}", f"{BASE}Consent?patient={p}",
            f"{BASE}Provenance?target=Observation/{their['observation'].pk}",
            *(f"{BASE}{t}?patient={p}" for t in TYPES)]  # fmt: skip
    for record in their.values():
        urls.append(f"{BASE}{resources.resource_type_of(record)}/{resources.fhir_id(record)}")
    return urls


# --- the owner -------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["token", "session"])
def test_a_patient_reads_their_own_chart_every_type(client, sign_in, world, by):
    token = world["token"] if by == "token" else None
    if by == "session":
        sign_in(client, world["me"])
    p = world["a"]["mine"].pk
    for url in _own_urls(world):
        body = _valid(_get(client, url, token))
        if body["resourceType"] == "Bundle" and "AuditEvent" not in url and "Consent" not in url:
            assert _ids(body), url
    found = set()
    for rtype in TYPES:
        found |= _ids(_valid(_get(client, f"{BASE}{rtype}?patient={p}", token)))
    expected = {_ref(r) for r in world["a"]["my"].values()}
    assert found == expected  # every record, the restricted note included (the owner)


def test_everything_has_the_whole_chart_with_the_restricted_note_and_consents(client, world):
    a = world["a"]
    with unscoped():
        consent = consent_services.consent_grant(
            patient=a["mine"], actor=world["me"], grantee_kind="hospital",
            grantee_hospital=world["hospital_b"],
        )  # fmt: skip
    body = _valid(_get(client, f"{BASE}Patient/{a['mine'].pk}/$everything", world["token"]))
    ids = _ids(body)
    assert {_ref(r) for r in a["my"].values()} <= ids
    assert _ref(a["my"]["restricted"]) in ids
    assert _ref(a["mine"]) in ids and f"Consent/{consent.row_uuid}" in ids
    assert not ids & {_ref(r) for r in a["their"].values()}
    consent_read = _valid(_get(client, f"{BASE}Consent/{consent.row_uuid}", world["token"]))
    assert consent_read["resourceType"] == "Consent"


def test_the_owner_sees_who_read_their_chart(client, world):
    a = world["a"]
    p = a["mine"].pk
    assert _get(client, f"{BASE}Patient/{p}", a["staff_token"]).status_code == 200
    staff_read = Event.objects.filter(patient_id=p, kind="chart.read").latest("id")
    bundle = _valid(_get(client, f"{BASE}AuditEvent?patient={p}", world["token"]))
    assert f"AuditEvent/{staff_read.event_id}" in _ids(bundle)
    one = _valid(_get(client, f"{BASE}AuditEvent/{staff_read.event_id}", world["token"]))
    assert one["resourceType"] == "AuditEvent"


def test_the_owners_own_reads_are_not_access_events(client, world):
    """As in the patient portal: nobody else read anything."""
    before = Event.objects.count()
    for url in _own_urls(world):
        assert _get(client, url, world["token"]).status_code == 200, url
    assert Event.objects.count() == before


def test_a_patient_at_two_hospitals_finds_both_registrations(
    client, world, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12):
        body = _valid(_get(client, f"{BASE}Patient", world["token"]))
    assert _ids(body) == {_ref(world["a"]["mine"]), _ref(world["b"]["mine"])}
    for key in ("a", "b"):
        _valid(_get(client, f"{BASE}Observation?patient={world[key]['mine'].pk}", world["token"]))
    by_mrn = _valid(_get(client, f"{BASE}Patient?identifier=B-1", world["token"]))
    assert _ids(by_mrn) == {_ref(world["b"]["mine"])}


def test_a_search_of_a_list_costs_the_same_whatever_its_length(
    client, world, django_assert_max_num_queries
):
    p = world["a"]["mine"].pk
    with django_assert_max_num_queries(14):
        _valid(_get(client, f"{BASE}Observation?patient={p}", world["token"]))
    with unscoped():
        for _ in range(10):
            services.observation_create(
                actor=world["a"]["clinician"], patient=world["a"]["mine"], code="8867-4",
                display="Heart rate", value=Decimal(60), unit="/min", effective_at=timezone.now(),
            )  # fmt: skip
    with django_assert_max_num_queries(14):
        body = _valid(_get(client, f"{BASE}Observation?patient={p}", world["token"]))
    assert len(_ids(body)) == 11


# --- nobody else ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["a", "b"])  # same hospital, and the other hospital
def test_another_patients_ids_are_404_everywhere(client, world, key):
    before = Event.objects.count()
    for url in _their_urls(world, key):
        response = _get(client, url, world["token"])
        assert response.status_code == 404, url
        OperationOutcome.model_validate(_json(response))
    assert Event.objects.count() == before


@pytest.mark.parametrize("key", ["a", "b"])
def test_their_consents_and_access_events_are_404(client, world, key):
    theirs = world[key]["theirs"]
    with unscoped():
        consent = consent_services.consent_grant(
            patient=theirs, actor=world[key]["other"], grantee_kind="hospital",
            grantee_hospital=world["hospital_a"],
        )  # fmt: skip
    _get(client, f"{BASE}Patient/{theirs.pk}", world[key]["staff_token"])
    event = Event.objects.filter(patient_id=theirs.pk, kind="chart.read").latest("id")
    created = _creation_event(world[key]["their"]["observation"])
    for url in (f"{BASE}Consent/{consent.row_uuid}", f"{BASE}AuditEvent/{event.event_id}",
                f"{BASE}Provenance/{created.event_id}"):  # fmt: skip
        assert _get(client, url, world["token"]).status_code == 404, url


def _creation_event(record):
    return Event.objects.get(
        subject_id=str(record.row_uuid), kind=f"{record._meta.model_name}.created"
    )


def test_the_owner_reads_the_provenance_of_their_records(client, world, carer):
    my = world["a"]["my"]
    created = _creation_event(my["observation"])
    body = _valid(_get(client, f"{BASE}Provenance/{created.event_id}", world["token"]))
    assert body["target"][0]["reference"] == _ref(my["observation"])
    # A proxy: the records' history is the patient's, like their access log.
    assert _get(client, f"{BASE}Provenance/{created.event_id}", carer[1]).status_code == 404


def test_searching_patients_by_name_finds_nobody_else(client, world):
    for query in ("name=Grace", "family=Hopper", "identifier=A-2", "birthdate=1960-03-04",
                  "name=Ada"):  # fmt: skip
        body = _valid(_get(client, f"{BASE}Patient?{query}", world["token"]))
        assert not _ids(body) & {_ref(world["a"]["theirs"]), _ref(world["b"]["theirs"])}
    body = _valid(_get(client, f"{BASE}Patient?name=Ada", world["token"]))
    assert _ids(body) == {_ref(world["a"]["mine"]), _ref(world["b"]["mine"])}


def test_a_patient_writes_nothing(client, world):
    before = Patient._base_manager.count()
    response = client.post(
        BASE, json.dumps(_tiny_bundle()), content_type="application/fhir+json",
        headers={"Authorization": f"Bearer {world['token']}"},
    )  # fmt: skip
    assert response.status_code == 403
    OperationOutcome.model_validate(_json(response))
    assert Patient._base_manager.count() == before


def test_a_token_acts_only_as_whom_it_was_issued_for(client, world, make_staff):
    """A staff member who is also a patient: their patient token finds only their own
    registrations; their staff token searches their hospital as staff, never as a patient."""
    nurse = make_staff(world["hospital_a"], Role.NURSE)
    with unscoped():
        own = services.patient_register(
            hospital=world["hospital_b"], mrn="B-9", given_name="Nora", family_name="Nurse",
            birth_date=dt.date(1980, 1, 1), user=nurse, actor=world["b"]["clinician"],
        )  # fmt: skip
    as_patient = token_issue(user=nurse, name="me", audience="patient", two_factor=False)[1]
    as_staff = token_issue(user=nurse, name="ward", audience="staff", two_factor=True)[1]
    assert _ids(_valid(_get(client, f"{BASE}Patient", as_patient))) == {_ref(own)}
    assert _get(client, f"{BASE}Patient/{world['a']['theirs'].pk}", as_patient).status_code == 404
    found = _valid(_get(client, f"{BASE}Patient?family=Hopper", as_staff))
    assert _ids(found) == {_ref(world["a"]["theirs"])}
    # As staff they search: a bare GET Patient is a staff search without parameters.
    assert _get(client, f"{BASE}Patient", as_staff).status_code == 400
    assert _get(client, f"{BASE}Patient/{own.pk}", as_staff).status_code == 404


# --- proxies -----------------------------------------------------------------------------------


@pytest.fixture
def carer(world):
    """A carer (a patient themselves, at the other hospital: proxies are patients) whom I
    granted vitals and notes."""
    carer = factories.UserFactory()
    factories.PatientFactory(hospital=world["hospital_b"], user=carer)
    with unscoped():
        invitation = consent_services.proxy_invite(
            grantor=world["me"], proxy_username=carer.username, relationship="family",
            scope_all=False, categories=["vitals", "notes"],
        )  # fmt: skip
        consent_services.proxy_accept(invitation=invitation, actor=carer)
    return carer, token_issue(user=carer, name="carer", audience="patient", two_factor=False)[1]


def test_a_proxy_sees_the_categories_granted_and_is_told_the_rest(client, world, carer):
    _, token = carer
    a = world["a"]
    p = a["mine"].pk
    observations = _valid(_get(client, f"{BASE}Observation?patient={p}", token))
    assert _ref(a["my"]["observation"]) in _ids(observations)
    outcome = [e for e in observations["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome  # the partial-chart outcome names what is not shared
    conditions = _valid(_get(client, f"{BASE}Condition?patient={p}", token))
    assert not _ids(conditions)
    assert [e for e in conditions["entry"] if e["search"]["mode"] == "outcome"]
    notes = _ids(_valid(_get(client, f"{BASE}DocumentReference?patient={p}", token)))
    assert _ref(a["my"]["clinicalnote"]) in notes
    assert _ref(a["my"]["restricted"]) not in notes
    everything = _ids(_valid(_get(client, f"{BASE}Patient/{p}/$everything", token)))
    assert _ref(a["my"]["restricted"]) not in everything
    assert _ref(a["my"]["condition"]) not in everything
    for record in ("restricted", "condition", "document"):
        url = f"{BASE}{resources.resource_type_of(a['my'][record])}/" + resources.fhir_id(
            a["my"][record]
        )
        assert _get(client, url, token).status_code == 404, record
    # What belongs to the patient rather than to the chart is not shared with a proxy.
    for url in (f"{BASE}Consent?patient={p}", f"{BASE}AuditEvent?patient={p}"):
        assert _get(client, url, token).status_code == 404, url
    # Nobody else's chart: the other patient's at the same hospital.
    assert _get(client, f"{BASE}Patient/{a['theirs'].pk}", token).status_code == 404


def test_a_proxys_reads_are_recorded_as_the_portal_records_them(client, world, carer):
    user, token = carer
    a = world["a"]
    last = Event.objects.order_by("-id").values_list("id", flat=True).first()
    _valid(_get(client, f"{BASE}Observation?patient={a['mine'].pk}", token))
    _valid(_get(client, f"{BASE}Observation/{a['my']['observation'].pk}", token))
    events = list(Event.objects.filter(id__gt=last).order_by("id"))
    assert [e.kind for e in events] == ["chart.read", "record.read"]
    for event in events:
        assert event.actor_id == user.pk and event.patient_id == a["mine"].pk
        assert event.attrs["purpose"] == PURPOSE_FAMILY and event.attrs["via"] == "proxy"
        assert "app" not in event.attrs
    log = access_log_for_owner(user=world["me"], patients=[a["mine"]])
    assert "Your carer" in log[0].what


# --- the caller's limits (an app's scopes, its launch patient) -----------------------------


def _limited(monkeypatch, **limits):
    """Every caller as the credential would limit it (the SMART helper makes such callers
    from an access token)."""
    made = callers.fhir_caller

    def limited(request, **kwargs):
        return dataclasses.replace(made(request, **kwargs), **limits)

    monkeypatch.setattr(callers, "fhir_caller", limited)


def test_a_type_outside_the_scopes_is_403_and_a_record_outside_them_404(client, world, monkeypatch):
    _limited(monkeypatch, resource_types=frozenset({"Observation", "Patient"}))
    p = world["a"]["mine"].pk
    my = world["a"]["my"]
    _valid(_get(client, f"{BASE}Observation?patient={p}", world["token"]))
    response = _get(client, f"{BASE}Condition?patient={p}", world["token"])
    assert response.status_code == 403
    assert "scope" in OperationOutcome.model_validate(_json(response)).issue[0].diagnostics
    assert _get(client, f"{BASE}Condition/{my['condition'].pk}", world["token"]).status_code == 403
    everything = _valid(_get(client, f"{BASE}Patient/{p}/$everything", world["token"]))
    types = {e["resource"]["resourceType"] for e in everything["entry"]}
    assert types <= {"Patient", "Observation", "OperationOutcome"}


def test_a_category_limit_narrows_the_owners_chart_to_a_partial_one(client, world, monkeypatch):
    _limited(monkeypatch, categories=frozenset({"vitals"}))
    p = world["a"]["mine"].pk
    my = world["a"]["my"]
    conditions = _valid(_get(client, f"{BASE}Condition?patient={p}", world["token"]))
    assert not _ids(conditions)
    assert [e for e in conditions["entry"] if e["search"]["mode"] == "outcome"]
    notes = _ids(_valid(_get(client, f"{BASE}DocumentReference?patient={p}", world["token"])))
    assert not notes  # the restricted note too: its category is not in the limit
    assert _get(client, f"{BASE}Condition/{my['condition'].pk}", world["token"]).status_code == 404
    url = f"{BASE}DocumentReference/note-{my['restricted'].pk}"
    assert _get(client, url, world["token"]).status_code == 404
    _valid(_get(client, f"{BASE}Observation/{my['observation'].pk}", world["token"]))


def test_a_launch_patient_is_the_only_chart(client, world, monkeypatch):
    a, b = world["a"], world["b"]
    _limited(monkeypatch, patient_id=a["mine"].pk)
    _valid(_get(client, f"{BASE}Patient/{a['mine'].pk}", world["token"]))
    assert _ids(_valid(_get(client, f"{BASE}Patient", world["token"]))) == {_ref(a["mine"])}
    for url in (f"{BASE}Patient/{b['mine'].pk}", f"{BASE}Observation?patient={b['mine'].pk}",
                f"{BASE}Observation/{b['my']['observation'].pk}"):  # fmt: skip
        assert _get(client, url, world["token"]).status_code == 404, url


def test_an_apps_reads_name_the_app_in_the_patients_access_log(client, sign_in, world, monkeypatch):
    """A patient's own reads are recorded when an app they connected makes them."""
    _limited(monkeypatch, app="Health Diary", client_id="demo-client-1")
    a = world["a"]
    last = Event.objects.order_by("-id").values_list("id", flat=True).first()
    _valid(_get(client, f"{BASE}Observation/{a['my']['observation'].pk}", world["token"]))
    event = Event.objects.get(id__gt=last)
    assert event.attrs["app"] == "demo-client-1" and event.attrs["via"] == "owner"
    entry = access_log_for_owner(user=world["me"], patients=[a["mine"]])[0]
    assert entry.app == "demo-client-1"  # no app registry here: shown by its client id
    assert "an app you connected" in entry.what
    sign_in(client, world["me"])
    page = client.get("/patient/access/")
    assert page.status_code == 200
    assert "through demo-client-1" in page.content.decode()


def test_an_app_acting_for_staff_writes_nothing(client, world, monkeypatch):
    _limited(monkeypatch, app="EHR helper", client_id="ehr-1")
    response = client.post(
        BASE, json.dumps(_tiny_bundle()), content_type="application/fhir+json",
        headers={"Authorization": f"Bearer {world['a']['staff_token']}"},
    )  # fmt: skip
    assert response.status_code == 403


# --- chart_narrowed: never wider -------------------------------------------------------------


def test_chart_narrowed_only_ever_removes_categories(world, carer):
    a = world["a"]
    with unscoped():
        owner = access_patient_as_owner(world["me"], a["mine"].pk)
        proxy = access_patient_as_owner(carer[0], a["mine"].pk)
    assert chart_narrowed(owner, categories=None) is owner
    labs = chart_narrowed(owner, categories=frozenset({"labs"}))
    assert labs.categories == {"labs"} and labs.withheld == CATEGORY_CODES - {"labs"}
    assert labs.owner  # still the owner's chart, narrower
    # A proxy granted vitals and notes, narrowed by a lens that asks for more: no wider.
    wider = chart_narrowed(proxy, categories=frozenset(CATEGORY_CODES))
    assert wider.categories == {"vitals", "notes"}
    assert chart_narrowed(proxy, categories=frozenset({"labs"})).categories == frozenset()
    assert chart_narrowed(proxy, categories=frozenset({"vitals", "labs"})).categories == {"vitals"}
    with pytest.raises(ValueError):
        chart_narrowed(owner, categories=frozenset({"everything"}))
    with pytest.raises(access.ChartNotOpened):
        chart_narrowed(a["mine"], categories=None)


def test_a_narrowed_chart_shows_no_more_records(world):
    a = world["a"]
    with unscoped():
        owner = access_patient_as_owner(world["me"], a["mine"].pk)
        vitals = chart_narrowed(owner, categories=frozenset({"vitals"}))
        for model in (Condition, ClinicalNote, Document, Observation):
            narrow = set(access.chart_records(chart=vitals, model=model).values_list("pk"))
            whole = set(access.chart_records(chart=owner, model=model).values_list("pk"))
            assert narrow <= whole
        assert not access.chart_records(chart=vitals, model=ClinicalNote).exists()
        assert access.chart_shows(chart=owner, record=a["my"]["restricted"])
        assert not access.chart_shows(chart=vitals, record=a["my"]["restricted"])
        assert not access.chart_shows(chart=owner, record=a["their"]["observation"])


def test_staff_charts_narrow_too_and_lose_their_writes(world):
    a = world["a"]
    with unscoped():
        staff = access.access_patient(a["clinician"], a["mine"].pk)
        narrow = chart_narrowed(staff, categories=frozenset({"vitals"}))
    assert staff.can_change and not narrow.can_change
    assert narrow.categories == {"vitals"} and narrow.via is staff.via


def test_the_audit_path_records_an_app_only_when_given(world):
    a = world["a"]
    with unscoped():
        chart = access.access_patient(a["clinician"], a["mine"].pk)
        plain = audit.chart_read_record(reader=a["clinician"], chart=chart)
        through = audit.chart_read_record(reader=a["clinician"], chart=chart, app="ehr-app")
    assert "app" not in plain.attrs and through.attrs["app"] == "ehr-app"
