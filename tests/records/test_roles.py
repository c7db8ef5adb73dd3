"""Issue 16, item 2: roles mean something.

Every role and action of records.access's table (ROLE_ACTIONS), walked over HTTP in the
provider portal: what the table allows is offered and works, anything else is answered as a
chart that does not exist (404; break-glass and access-request pages: 403, as before). The
README's table "Who may do what" must say the same as the module, and this test's own copy
of the table too, so adding a role or an action fails here until all three agree. Samples of
the same rule through the REST API and FHIR, and a second hospital whose clinician may do
nothing on the first hospital's chart without a grant.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from portal.records import access, services
from portal.records.access import ROLE_ACTIONS, Action
from portal.records.models import (
    AllergyIntolerance,
    CarePlan,
    ClinicalNote,
    Condition,
    DiagnosticReport,
    Document,
    Encounter,
    Goal,
    ImagingStudy,
    Immunization,
    MedicationRequest,
    Observation,
    Procedure,
)
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped

ROOT = Path(__file__).resolve().parent.parent.parent
ROLES = [Role.CLINICIAN, Role.NURSE, Role.RECORDS_CLERK, Role.HOSPITAL_ADMIN]
A = Action
# This test's copy of the table: a change to the module must be a change here too.
EXPECTED: dict[str, set[Action]] = {
    Role.CLINICIAN: set(Action),
    Role.NURSE: {
        A.VIEW, A.CHANGE, A.RECORD_OBSERVATION, A.RECORD_NOTE, A.RECORD_ALLERGY,
        A.RECORD_IMMUNIZATION, A.RECORD_DOCUMENT, A.RECORD_CARE_PLAN, A.RECORD_GOAL,
        A.PATIENT_LIST, A.REGISTER, A.BREAK_GLASS, A.REQUEST_ACCESS,
    },
    Role.RECORDS_CLERK: {
        A.VIEW, A.CHANGE, A.RECORD_ENCOUNTER, A.RECORD_DOCUMENT, A.PATIENT_LIST, A.REGISTER,
    },
    Role.HOSPITAL_ADMIN: set(),  # VIEW only through a grant naming them: see below
}  # fmt: skip
README_ROLES = {
    "Clinician": Role.CLINICIAN,
    "Nurse": Role.NURSE,
    "Records clerk": Role.RECORDS_CLERK,
    "Hospital admin": Role.HOSPITAL_ADMIN,
}


def _readme_table() -> dict[str, dict[str, bool]]:
    """{role: {action value: allowed}} from README's "Who may do what"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Who may do what", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    table: dict[str, dict[str, bool]] = {README_ROLES[name]: {} for name in header[1:]}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        (value,) = re.findall(r"\(`([a-z_.]+)`\)\s*$", cells[0])
        for name, cell in zip(header[1:], cells[1:], strict=True):
            table[README_ROLES[name]][value] = cell.startswith("yes")
    return table


def test_the_table_covers_every_role_and_action_and_the_readme_says_the_same():
    assert set(ROLE_ACTIONS) == set(Role.values)
    for role in ROLES:
        granted = set(ROLE_ACTIONS[role])
        if role == Role.HOSPITAL_ADMIN:
            granted -= {Action.VIEW}
        assert granted == EXPECTED[role], role
    readme = _readme_table()
    assert set(readme) == set(Role.values)
    for role in ROLES:
        assert set(readme[role]) == {a.value for a in Action}, role
        assert {v for v, yes in readme[role].items() if yes} == {
            a.value for a in ROLE_ACTIONS[role]
        }, role


# --- the world: two hospitals, every role at the first, a clinician at the second ---------


@pytest.fixture
def roles_world(make_staff, hospital_a, hospital_b):
    staff = {role: make_staff(hospital_a, role) for role in ROLES}
    clinician_b = make_staff(hospital_b, Role.CLINICIAN)
    when = timezone.now() - dt.timedelta(days=2)
    clinician = staff[Role.CLINICIAN]
    with unscoped():
        patient = services.patient_register(
            hospital=hospital_a, mrn="A-1", given_name="Ada", family_name="Role",
            birth_date=dt.date(1970, 1, 2), actor=clinician,
        )  # fmt: skip
        own_b = services.patient_register(
            hospital=hospital_b, mrn="B-1", given_name="Bea", family_name="Other",
            birth_date=dt.date(1980, 1, 2), actor=clinician_b,
        )  # fmt: skip
        make = {"actor": clinician, "patient": patient}
        records = {
            "observation": services.observation_create(
                **make, code="8867-4", display="Heart rate", value=Decimal(70), unit="/min",
                effective_at=when,
            ),
            "encounter": services.record_create(
                **make, model=Encounter, class_code="AMB", type_display="Check-up",
                reason="Check-up", period_start=when, period_end=when + dt.timedelta(hours=1),
            ),
            "condition": services.record_create(
                **make, model=Condition, code="38341003", display="Hypertension",
                onset_date=dt.date(2019, 1, 2),
            ),
            "medicationrequest": services.record_create(
                **make, model=MedicationRequest, code="316049", display="HCTZ 25 MG",
                dosage="1 daily", authored_on=when,
            ),
            "allergyintolerance": services.record_create(
                **make, model=AllergyIntolerance, code="91936005", display="Penicillin allergy",
                criticality="high", reaction="Anaphylaxis", recorded_date=when,
            ),
            "immunization": services.record_create(
                **make, model=Immunization, vaccine_code="140", display="Influenza",
                occurrence=when,
            ),
            "procedure": services.record_create(
                **make, model=Procedure, code="80146002", display="Appendectomy",
                performed_at=when,
            ),
            "clinicalnote": services.record_create(
                **make, model=ClinicalNote, title="Visit", text="Well."
            ),
            "document": services.record_create(
                **make, model=Document, title="Scan", content_type="text/plain", size=5,
                sha256="0" * 64, content=b"hello",
            ),
            "diagnosticreport": services.diagnostic_report_create(
                **make, code={"text": "Lipid panel"}, effective_at=when,
            ),
            "imagingstudy": services.imaging_study_create(
                **make, started=when, series=[{"uid": "1.2.3", "modality": {
                    "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "DX"}}],
            ),
            "careplan": services.care_plan_create(
                **make, period_start=when, category=[{"text": "Diabetes self management plan"}],
            ),
            "goal": services.goal_create(**make, description={"text": "HbA1c below 7.0"}),
        }  # fmt: skip
    return {
        "staff": staff, "clinician_b": clinician_b, "patient": patient, "own_b": own_b,
        "records": records, "a": hospital_a, "b": hospital_b,
    }  # fmt: skip


# What each action is over HTTP in the provider portal: (method, url, allowed statuses). A
# POST of an invalid form is the form's own 400 for a role that may, 404 for one that may
# not (nothing is written either way).
def _probes(w) -> dict[Action, list[tuple[str, str, set[int]]]]:
    p = w["patient"].pk
    r = w["records"]
    chart = f"/provider/patients/{p}/"

    def new(record_type):
        return [("get", f"{chart}records/{record_type}/new/", {200}),
                ("post", f"{chart}records/{record_type}/new/", {400})]  # fmt: skip

    def correct(record_type):
        url = f"/provider/records/{record_type}/{r[record_type].pk}/correct/"
        return [("get", url, {200})]

    return {
        Action.VIEW: [("get", chart, {200})],
        Action.RECORD_OBSERVATION: [
            ("get", f"{chart}observations/new/", {200}),
            ("post", f"{chart}observations/new/", {400}),
            ("get", f"{chart}blood-pressure/new/", {200}),
            ("post", f"{chart}blood-pressure/new/", {400}),
            ("get", f"/provider/records/observation/{r['observation'].pk}/correct/", {200}),
        ],
        Action.RECORD_NOTE: [
            ("get", f"{chart}notes/new/", {200}),
            ("post", f"{chart}notes/new/", {400}),
            *correct("clinicalnote"),
        ],
        Action.RECORD_CONDITION: [*new("condition"), *correct("condition")],
        Action.RECORD_MEDICATION: [*new("medicationrequest"), *correct("medicationrequest")],
        Action.RECORD_ALLERGY: [*new("allergyintolerance"), *correct("allergyintolerance")],
        Action.RECORD_IMMUNIZATION: [*new("immunization"), *correct("immunization")],
        Action.RECORD_PROCEDURE: [*new("procedure"), *correct("procedure")],
        Action.RECORD_ENCOUNTER: [*new("encounter"), *correct("encounter")],
        Action.RECORD_DOCUMENT: [
            ("get", f"{chart}documents/new/", {200}),
            ("post", f"{chart}documents/new/", {400}),
        ],
        Action.CARE_TEAM: [
            ("get", f"{chart}care-team/", {200}),
            ("post", f"{chart}care-team/", {400}),
        ],
        Action.REGISTER: [
            ("get", "/provider/patients/new/", {200}),
            ("post", "/provider/patients/new/", {400}),
        ],
        # No forms: these come from FHIR imports (test_imported_types_follow_the_table).
        **{action: [] for action in IMPORTED},
    }


REFUSED = {Action.BREAK_GLASS: 403, Action.REQUEST_ACCESS: 403}
# Types without a form in the provider portal: written by FHIR imports, which ask the same
# table (records.access: OpenedChart.can_write).
IMPORTED = {
    Action.RECORD_REPORT: ("DiagnosticReport", DiagnosticReport),
    Action.RECORD_IMAGING: ("ImagingStudy", ImagingStudy),
    Action.RECORD_CARE_PLAN: ("CarePlan", CarePlan),
    Action.RECORD_GOAL: ("Goal", Goal),
}
IMPORTED_RESOURCES = {
    "DiagnosticReport": {
        "resourceType": "DiagnosticReport", "id": "rep-1", "status": "final",
        "code": {"text": "Lipid panel"}, "subject": {"reference": "urn:uuid:pat-1"},
        "effectiveDateTime": "2020-01-02T03:04:05+00:00",
    },
    "ImagingStudy": {
        "resourceType": "ImagingStudy", "id": "img-1", "status": "available",
        "subject": {"reference": "urn:uuid:pat-1"}, "started": "2020-01-02T03:04:05+00:00",
    },
    "CarePlan": {
        "resourceType": "CarePlan", "id": "cp-1", "status": "active", "intent": "plan",
        "subject": {"reference": "urn:uuid:pat-1"},
        "period": {"start": "2020-01-02T03:04:05+00:00"},
    },
    "Goal": {
        "resourceType": "Goal", "id": "goal-1", "lifecycleStatus": "active",
        "description": {"text": "Walk daily"}, "subject": {"reference": "urn:uuid:pat-1"},
    },
}  # fmt: skip


def _counts() -> dict[str, int]:
    with unscoped():
        return {
            m.__name__: m._base_manager.count()
            for m in (Observation, Encounter, Condition, MedicationRequest, AllergyIntolerance,
                      Immunization, Procedure, ClinicalNote, Document, DiagnosticReport,
                      ImagingStudy, CarePlan, Goal)
        }  # fmt: skip


def _walk(client, probes):
    # A POST carries one unknown field: the form is bound (and invalid), never written.
    return [
        (method, url, getattr(client, method)(url, {"probe": "1"} if method == "post" else {})
         .status_code, ok)
        for method, url, ok in probes
    ]  # fmt: skip


@pytest.mark.parametrize("action", [a for a in Action if a is not Action.CHANGE], ids=str)
@pytest.mark.parametrize("role", ROLES, ids=str)
def test_every_role_and_action_over_http(client, sign_in, roles_world, role, action):
    sign_in(client, roles_world["staff"][role])
    allowed = access.role_may(role=role, action=action) and (
        role != Role.HOSPITAL_ADMIN  # no chart without a grant naming them
    )
    before = _counts()
    if action is Action.PATIENT_LIST:
        page = client.get("/provider/")
        assert page.status_code == 200
        assert (roles_world["patient"].mrn in page.content.decode()) is allowed
        assert (b"Patients at" in page.content) is allowed
        return
    if action in REFUSED:
        url = {
            Action.BREAK_GLASS: "/provider/break-glass/",
            Action.REQUEST_ACCESS: "/provider/access-requests/new/",
        }[action]
        status = client.get(url).status_code
        assert status == (200 if allowed else REFUSED[action])
        return
    if action in IMPORTED:
        rtype, model = IMPORTED[action]
        response = _fhir_post(client, _fhir_bundle("A-1", IMPORTED_RESOURCES[rtype]))
        if allowed:
            assert response.status_code == 200, response.content
            with unscoped():
                assert model._base_manager.filter(recorded_by=roles_world["staff"][role]).exists()
            return
        assert response.status_code in (404, 422), response.content  # refused, nothing written
        assert _counts() == before
        return
    for method, url, status, ok in _walk(client, _probes(roles_world)[action]):
        if allowed:
            assert status in ok, (method, url, status)
        else:
            assert status == 404, (method, url, status)
    assert _counts() == before  # empty forms and refusals write nothing


@pytest.mark.parametrize("role", ROLES, ids=str)
def test_the_chart_offers_what_the_role_may_do_and_shows_what_it_may_read(
    client, sign_in, roles_world, role
):
    sign_in(client, roles_world["staff"][role])
    p = roles_world["patient"].pk
    page = client.get(f"/provider/patients/{p}/")
    if role == Role.HOSPITAL_ADMIN:
        assert page.status_code == 404
        return
    html = page.content.decode()
    links = {
        Action.RECORD_OBSERVATION: "observations/new/",
        Action.RECORD_NOTE: "notes/new/",
        Action.RECORD_CONDITION: "records/condition/new/",
        Action.RECORD_MEDICATION: "records/medicationrequest/new/",
        Action.RECORD_ALLERGY: "records/allergyintolerance/new/",
        Action.RECORD_IMMUNIZATION: "records/immunization/new/",
        Action.RECORD_PROCEDURE: "records/procedure/new/",
        Action.RECORD_ENCOUNTER: "records/encounter/new/",
        Action.RECORD_DOCUMENT: "documents/new/",
        Action.CARE_TEAM: "care-team/",
    }
    for action, link in links.items():
        assert (f"/provider/patients/{p}/{link}" in html) is access.role_may(
            role=role, action=action
        ), action
    # Reads: a clerk sees the demographics, encounters and documents, nothing clinical.
    clinical = role != Role.RECORDS_CLERK
    assert ("Penicillin allergy" in html) is clinical
    assert ("Hypertension" in html) is clinical
    assert ("HCTZ 25 MG" in html) is clinical
    assert "A-1" in html  # the MRN: demographics
    r = roles_world["records"]
    for record_type, record in r.items():
        status = client.get(f"/provider/records/{record_type}/{record.pk}/").status_code
        readable = clinical or record_type in ("encounter", "document")
        assert status == (200 if readable else 404), record_type
    download = client.get(f"/provider/documents/{r['document'].pk}/download/")
    assert download.status_code == 200


def test_a_nurse_records_vitals_and_a_note_but_no_prescription(client, sign_in, roles_world):
    nurse = roles_world["staff"][Role.NURSE]
    sign_in(client, nurse)
    p = roles_world["patient"].pk
    now = timezone.localtime() - dt.timedelta(minutes=5)
    response = client.post(
        f"/provider/patients/{p}/notes/new/", {"title": "Nursing note", "text": "Comfortable."}
    )
    assert response.status_code == 302
    with unscoped():
        assert ClinicalNote._base_manager.filter(recorded_by=nurse).exists()
    before = _counts()
    response = client.post(
        f"/provider/patients/{p}/records/medicationrequest/new/",
        {"code": "316049", "display": "HCTZ", "dosage": "1 daily", "request_status": "active",
         "authored_on": now.strftime("%Y-%m-%dT%H:%M")},
    )  # fmt: skip
    assert response.status_code == 404
    response = client.post(
        f"/provider/patients/{p}/records/condition/new/",
        {"code": "38341003", "display": "Hypertension", "clinical_status": "active"},
    )
    assert response.status_code == 404
    assert _counts() == before


def test_a_hospital_admin_reads_a_chart_only_when_a_grant_names_them(client, sign_in, roles_world):
    admin = roles_world["staff"][Role.HOSPITAL_ADMIN]
    patient = roles_world["patient"]
    sign_in(client, admin)
    assert client.get(f"/provider/patients/{patient.pk}/").status_code == 404
    with unscoped():
        services.care_team_add(
            patient=patient, user=admin, actor=roles_world["staff"][Role.CLINICIAN]
        )
    page = client.get(f"/provider/patients/{patient.pk}/")
    assert page.status_code == 200
    assert b'aria-label="Chart actions"' not in page.content  # to read, never to write
    for _method, url, status, _ok in _walk(
        client, [probe for a, ps in _probes(roles_world).items() if a is not A.VIEW for probe in ps]
    ):
        assert status == 404, url


@pytest.mark.parametrize("action", sorted(access.CHART_WRITES | {Action.VIEW}), ids=str)
def test_another_hospitals_clinician_does_nothing_without_a_grant(
    client, sign_in, roles_world, action
):
    sign_in(client, roles_world["clinician_b"])
    before = _counts()
    for method, url, status, _ok in _walk(client, _probes(roles_world)[action]):
        assert status == 404, (method, url)
    r = roles_world["records"]
    for record_type, record in r.items():
        assert client.get(f"/provider/records/{record_type}/{record.pk}/").status_code == 404
    assert _counts() == before


# --- the same rule through the REST API and FHIR -------------------------------------------


def test_the_api_refuses_what_the_role_may_not_do(client, sign_in, roles_world):
    p, r = roles_world["patient"].pk, roles_world["records"]
    url = f"/api/v1/patients/{p}/records/"
    nurse = roles_world["staff"][Role.NURSE]
    sign_in(client, nurse)
    before = _counts()
    med = {"code": "316049", "display": "HCTZ", "dosage": "1 daily", "request_status": "active"}
    cond = {"code": "38341003", "display": "Hypertension", "clinical_status": "active"}
    for record_type, body in (("medicationrequest", med), ("condition", cond)):
        response = client.post(url + f"{record_type}/", body, content_type="application/json")
        assert response.status_code == 404, record_type
        correct = client.post(
            f"/api/v1/records/{record_type}/{r[record_type].pk}/correct/", body,
            content_type="application/json",
        )  # fmt: skip
        assert correct.status_code == 404
    assert _counts() == before
    now = timezone.now().replace(microsecond=0)
    obs = {"code": "8310-5", "value": "37.2", "unit": "Cel",
           "effective_at": (now - dt.timedelta(minutes=5)).isoformat()}  # fmt: skip
    created = client.post(url + "observation/", obs, content_type="application/json")
    assert created.status_code == 201, created.content
    chart = client.get(f"/api/v1/patients/{p}/chart/").json()
    assert "record.medicationrequest" not in chart["actions"]
    assert "record.observation" in chart["actions"]
    # A records clerk: allergies, problems and medications withheld; encounters theirs.
    sign_in(client, roles_world["staff"][Role.RECORDS_CLERK])
    allergies = client.get(url + "allergyintolerance/")
    assert allergies.status_code == 200
    assert b"Penicillin" not in allergies.content
    assert client.get(f"/api/v1/records/allergyintolerance/{r['allergyintolerance'].pk}/")\
        .status_code == 404  # fmt: skip
    chart = client.get(f"/api/v1/patients/{p}/chart/").json()
    assert chart["allergies"] == [] and chart["problems"] == [] and chart["medications"] == []
    encounters = client.get(url + "encounter/")
    assert b"Check-up" in encounters.content
    response = client.post(url + "clinicalnote/", {"title": "T", "text": "x"},
                           content_type="application/json")  # fmt: skip
    assert response.status_code == 404
    # A hospital admin registers nobody; another hospital's clinician reads nothing.
    sign_in(client, roles_world["staff"][Role.HOSPITAL_ADMIN])
    register = {"mrn": "A-9", "given_name": "New", "family_name": "Person",
                "birth_date": "1990-01-01", "sex": "female"}  # fmt: skip
    response = client.post("/api/v1/patients/", register, content_type="application/json")
    assert response.status_code == 404
    assert client.get(f"/api/v1/patients/{p}/chart/").status_code == 404
    sign_in(client, roles_world["clinician_b"])
    assert client.get(f"/api/v1/patients/{p}/chart/").status_code == 404
    assert client.post(url + "observation/", obs, content_type="application/json")\
        .status_code == 404  # fmt: skip


FHIR = "/fhir/R4/"


def _fhir_bundle(mrn: str, *resources: dict) -> dict:
    patient = {
        "fullUrl": "urn:uuid:pat-1",
        "resource": {
            "resourceType": "Patient", "id": "pat-1",
            "identifier": [{"type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                "value": mrn}],
            "name": [{"family": "Role", "given": ["Ada"]}], "gender": "female",
            "birthDate": "1970-01-02",
        },
        "request": {"method": "POST", "url": "Patient"},
    }  # fmt: skip
    entries = [patient] + [
        {"fullUrl": f"urn:uuid:{res['id']}", "resource": res,
         "request": {"method": "POST", "url": res["resourceType"]}}
        for res in resources
    ]  # fmt: skip
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


MED_REQUEST = {
    "resourceType": "MedicationRequest", "id": "med-1", "status": "active", "intent": "order",
    "medicationCodeableConcept": {"coding": [{
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "316049",
        "display": "Hydrochlorothiazide 25 MG"}]},
    "subject": {"reference": "urn:uuid:pat-1"}, "authoredOn": "2020-01-02T03:04:05+00:00",
}  # fmt: skip
CONDITION = {
    "resourceType": "Condition", "id": "cond-1",
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003",
                         "display": "Hypertension"}]},
    "subject": {"reference": "urn:uuid:pat-1"}, "onsetDateTime": "2010-01-01T00:00:00Z",
}  # fmt: skip


def _fhir_post(client, bundle):
    return client.post(FHIR, json.dumps(bundle), content_type="application/fhir+json")


def test_fhir_refuses_what_the_role_may_not_do(client, sign_in, roles_world):
    sign_in(client, roles_world["staff"][Role.NURSE])
    before = _counts()
    for resource in (MED_REQUEST, CONDITION):
        response = _fhir_post(client, _fhir_bundle("A-1", resource))
        assert response.status_code == 422, response.content
        assert b"your role may not add" in response.content
    assert _counts() == before
    # The clinician may; the clinician of the other hospital may not (no such chart there).
    sign_in(client, roles_world["staff"][Role.CLINICIAN])
    assert _fhir_post(client, _fhir_bundle("A-1", CONDITION)).status_code == 200
    sign_in(client, roles_world["clinician_b"])
    response = _fhir_post(client, _fhir_bundle("B-1", MED_REQUEST))
    assert response.status_code == 200  # their own hospital's chart B-1
    p = roles_world["patient"].pk
    assert client.get(f"{FHIR}AllergyIntolerance?patient={p}").status_code == 404
    # A records clerk: the allergy is withheld, the encounter shown.
    sign_in(client, roles_world["staff"][Role.RECORDS_CLERK])
    found = client.get(f"{FHIR}AllergyIntolerance?patient={p}")
    assert found.status_code == 200
    body = json.loads(found.content)
    assert not [e for e in body.get("entry", [])
                if e["resource"]["resourceType"] == "AllergyIntolerance"]  # fmt: skip
    assert b"Penicillin" not in found.content
    allergy = roles_world["records"]["allergyintolerance"]
    assert client.get(f"{FHIR}AllergyIntolerance/{allergy.pk}").status_code == 404
    encounters = json.loads(client.get(f"{FHIR}Encounter?patient={p}").content)
    assert [e for e in encounters.get("entry", [])
            if e["resource"]["resourceType"] == "Encounter"]  # fmt: skip
