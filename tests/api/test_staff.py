"""Staff endpoints: what they answer, the access events they record, validation, and the
cross-tenant / cross-patient negatives of each; list endpoints run a constant number of
queries whatever the rows."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from consent.models import AccessRequest, BreakGlass
from ledger.models import Event
from portal.records import services
from portal.records.models import Observation, Patient, RecordStatus
from portal.tenancy.scoping import unscoped
from tests import factories


def _events(kind, patient):
    return Event.objects.filter(kind=kind, patient_id=patient.pk).count()


def _ids(response):
    return [row["id"] for row in response.json()["results"]]


def test_patient_list_search_and_other_hospitals(api, api_world):
    a, b = api_world["a"], api_world["b"]
    client = api(a["staff_token"])
    listed = client.get("/api/v1/patients/")
    assert listed.status_code == 200
    # Restricted charts and other hospitals' patients are not listed.
    assert _ids(listed) == [a["patient"].pk]
    assert _ids(client.get("/api/v1/patients/", {"q": "A-100"})) == [a["patient"].pk]
    assert _ids(client.get("/api/v1/patients/", {"q": "Pat JonesA"})) == [a["patient"].pk]
    assert _ids(client.get("/api/v1/patients/", {"q": "B-100"})) == []
    assert _ids(api(b["staff_token"]).get("/api/v1/patients/")) == [b["patient"].pk]
    bad = client.get("/api/v1/patients/", {"cursor": "!!"})
    assert bad.status_code == 400 and bad.json()["detail"] == {"cursor": ["Invalid cursor."]}


def test_patient_list_cursor_pagination_and_constant_queries(api, api_world):
    a = api_world["a"]
    client = api(a["staff_token"])

    def count(params=None):
        with CaptureQueriesContext(connection) as ctx:
            response = client.get("/api/v1/patients/", params or {})
        assert response.status_code == 200
        return len(ctx.captured_queries), response.json()

    count()  # the token's first use of the minute writes last_used_at
    few, _ = count()
    for _ in range(30):
        factories.PatientFactory(hospital=a["hospital"])
    many, page = count()
    assert many == few
    assert len(page["results"]) == 25 and page["next"] and page["previous"] is None
    second = client.get(page["next"]).json()
    assert len(second["results"]) == 6 and second["next"] is None and second["previous"]
    assert not set(_ids(client.get(page["next"]))) & {r["id"] for r in page["results"]}
    back = client.get(second["previous"]).json()
    assert [r["id"] for r in back["results"]] == [r["id"] for r in page["results"]]


def test_register_patient(api, api_world):
    a = api_world["a"]
    client = api(a["staff_token"])
    body = {"mrn": "N-1", "given_name": "New", "family_name": "Born",
            "birth_date": "2001-02-03", "sex": "female", "phone": "+44 1"}  # fmt: skip
    response = client.post("/api/v1/patients/", body)
    assert response.status_code == 201
    assert response.json()["hospital"] == "st-mary"
    created = Patient._base_manager.get(pk=response.json()["id"])
    assert created.hospital_id == a["hospital"].pk
    assert Event.objects.filter(kind="patient.registered", patient_id=created.pk).exists()
    again = client.post("/api/v1/patients/", body)
    assert again.status_code == 400
    assert again.json()["detail"]["mrn"] == ["A patient with this MRN is already registered here."]
    bad = client.post("/api/v1/patients/", {**body, "mrn": "bad mrn!", "birth_date": "2999-01-01"})
    assert set(bad.json()["detail"]) == {"mrn", "birth_date"}
    assert client.post("/api/v1/patients/", ["not", "an", "object"]).status_code == 400
    # The same MRN at hospital B is B's own registration.
    assert api(api_world["b"]["staff_token"]).post("/api/v1/patients/", body).status_code == 201


@pytest.mark.parametrize("suffix", ["", "chart/", "records/observation/"])
def test_chart_reads_record_access_events(api, api_world, suffix):
    a = api_world["a"]
    patient = a["patient"]
    before = _events("chart.read", patient)
    response = api(a["staff_token"]).get(f"/api/v1/patients/{patient.pk}/{suffix}")
    assert response.status_code == 200
    assert _events("chart.read", patient) == before + 1
    event = Event.objects.filter(kind="chart.read", patient_id=patient.pk).latest("id")
    assert event.actor_id == a["clinician"].pk and event.hospital_id == a["hospital"].pk
    assert event.actor_hospital_id == a["hospital"].pk  # the hospital the token acted in


@pytest.mark.parametrize("suffix", ["", "chart/", "records/observation/", "records/condition/"])
def test_chart_endpoints_are_404_across_tenants_and_for_restricted_charts(api, api_world, suffix):
    a, b = api_world["a"], api_world["b"]
    for token, patient in (
        (a["staff_token"], b["patient"]),  # another hospital's chart
        (a["staff_token"], a["restricted"]),  # a chart of the hospital it may not open
        (b["staff_token"], a["patient"]),
        (a["staff_token"], Patient._base_manager.order_by("-id").first()),  # ... or missing
    ):
        response = api(token).get(f"/api/v1/patients/{patient.pk}/{suffix}")
        assert response.status_code == 404, (suffix, patient)
        assert response.json() == {"error": "Not found.", "detail": {}}
    assert api(a["staff_token"]).get("/api/v1/patients/999999/").status_code == 404
    assert api(a["staff_token"]).get("/api/v1/patients/1/records/nothing/").status_code == 404
    # Patients are not staff.
    assert api(a["patient_token"]).get(f"/api/v1/patients/{a['patient'].pk}/").status_code == 403


def test_chart_summary(api, api_world):
    a = api_world["a"]
    chart = api(a["staff_token"]).get(f"/api/v1/patients/{a['patient'].pk}/chart/").json()
    assert chart["can_change"] is True
    assert chart["access"] == {"categories": None, "break_glass": False, "shared": False,
                               "purpose": "TREAT"}  # fmt: skip
    assert [p["display"] for p in chart["problems"]] == ["Diabetes mellitus type 2"]
    assert chart["series"][0]["code"] == "8867-4"
    assert chart["series"][0]["truncated"] is False  # every value is there
    assert {t["type"] for t in chart["timeline"]} >= {"observation", "condition", "document"}


def test_records_list_pagination_and_constant_queries(api, api_world):
    a = api_world["a"]
    client = api(a["staff_token"])
    url = f"/api/v1/patients/{a['patient'].pk}/records/observation/"

    def count():
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url)
        assert response.status_code == 200
        return len(ctx.captured_queries), response.json()

    count()
    few, _ = count()
    with unscoped():
        for i in range(60):
            services.observation_create(
                actor=a["clinician"], patient=a["patient"], code="8867-4", display="Heart rate",
                value=Decimal(60 + i % 40), unit="/min",
                effective_at=timezone.now() - dt.timedelta(minutes=i + 5),
            )  # fmt: skip
    many, page = count()
    assert many == few
    assert len(page["results"]) == 50 and page["next"]
    rest = client.get(page["next"]).json()
    assert len(rest["results"]) == 11 and rest["next"] is None
    assert rest["results"][0]["data"]["value"]


def test_record_detail_and_document_read(api, api_world):
    a, b = api_world["a"], api_world["b"]
    client = api(a["staff_token"])
    before = _events("document.read", a["patient"])
    doc = client.get(f"/api/v1/records/document/{a['document'].pk}/")
    assert doc.status_code == 200
    assert doc.json()["data"]["content_base64"] == "aGVsbG8="
    assert _events("document.read", a["patient"]) == before + 1
    before = _events("record.read", a["patient"])
    obs = client.get(f"/api/v1/records/observation/{a['observation'].pk}/").json()
    assert obs["data"]["value"] == "71.000" and obs["display"] == "Heart rate"
    assert _events("record.read", a["patient"]) == before + 1
    # Cross-tenant, cross-patient (restricted chart), wrong type, missing: all 404.
    for url in (
        f"/api/v1/records/observation/{b['observation'].pk}/",
        f"/api/v1/records/observation/{a['vip_observation'].pk}/",
        f"/api/v1/records/condition/{b['condition'].pk}/",
        "/api/v1/records/observation/987654/",
        "/api/v1/records/patient/1/",
    ):
        assert client.get(url).status_code == 404, url


def test_record_create(api, api_world):
    a, b = api_world["a"], api_world["b"]
    client = api(a["staff_token"])
    url = f"/api/v1/patients/{a['patient'].pk}/records/"
    now = timezone.now().replace(microsecond=0)
    obs = {"code": "8310-5", "value": "37.2", "unit": "Cel",
           "effective_at": (now - dt.timedelta(minutes=5)).isoformat()}  # fmt: skip
    created = client.post(url + "observation/", obs)
    assert created.status_code == 201, created.content
    assert created.json()["data"]["category"] == "vital-signs"
    assert created.json()["display"] == "Body temperature"
    assert Observation._base_manager.filter(pk=created.json()["id"], recorded_by=a["clinician"])
    # The provider forms' rules: unknown code, wrong unit, implausible value, future time.
    bad = client.post(url + "observation/", {**obs, "code": "0000-0"}).json()
    assert bad["detail"]["code"] == ["Unknown code: choose a measurement from the list."]
    bad = client.post(url + "observation/", {**obs, "unit": "kg"}).json()
    assert bad["detail"]["unit"] == ["Body temperature is recorded in Cel."]
    bad = client.post(url + "observation/", {**obs, "value": 99}).json()
    assert "outside the plausible range" in bad["detail"]["value"][0]
    future = (now + dt.timedelta(days=1)).isoformat()
    bad = client.post(url + "observation/", {**obs, "effective_at": future}).json()
    assert bad["detail"]["effective_at"] == ["This time is in the future."]
    cond = {"code": "38341003", "display": "Hypertension", "clinical_status": "active"}
    assert client.post(url + "condition/", cond).status_code == 201
    note = client.post(url + "clinicalnote/", {"title": "T", "text": "x", "restricted": True})
    assert note.status_code == 201
    assert client.post(url + "document/", {}).status_code == 404
    # Another hospital's chart, a restricted chart: 404, nothing written.
    for patient in (b["patient"], a["restricted"]):
        response = client.post(f"/api/v1/patients/{patient.pk}/records/condition/", cond)
        assert response.status_code == 404


def test_record_correct(api, api_world):
    a, b = api_world["a"], api_world["b"]
    client = api(a["staff_token"])
    url = f"/api/v1/records/observation/{a['observation'].pk}/correct/"
    response = client.post(url, {"value": "72", "correction_reason": "Misread"})
    assert response.status_code == 201, response.content
    new = response.json()
    assert new["version"] == 2 and new["replaces"] == a["observation"].pk
    assert new["data"]["value"] == "72.000" and new["data"]["unit"] == "/min"
    old = Observation._base_manager.get(pk=a["observation"].pk)
    assert old.status == RecordStatus.ENTERED_IN_ERROR
    again = client.post(url, {"value": "73", "correction_reason": "Again"})
    assert again.status_code == 400
    assert "already been corrected" in again.json()["detail"]["non_field_errors"][0]
    cond = client.post(f"/api/v1/records/condition/{a['condition'].pk}/correct/",
                       {"display": "Type 2 diabetes", "correction_reason": "Wording"})  # fmt: skip
    assert cond.status_code == 201 and cond.json()["data"]["code"] == "44054006"
    bad = client.post(f"/api/v1/records/observation/{new['id']}/correct/",
                      {"value": 1000, "correction_reason": "Typo"})  # fmt: skip
    assert bad.status_code == 400
    for record_url in (
        f"/api/v1/records/observation/{b['observation'].pk}/correct/",
        f"/api/v1/records/observation/{a['vip_observation'].pk}/correct/",
        f"/api/v1/records/document/{a['document'].pk}/correct/",
    ):
        response = client.post(record_url, {"value": "70", "correction_reason": "x"})
        assert response.status_code == 404, record_url


def test_shared_access_request_and_break_glass(api, api_world):
    a, b = api_world["a"], api_world["b"]
    client = api(b["staff_token"])
    assert client.get("/api/v1/shared/").json()["results"] == []
    # Ask for access: the same answer whether or not the details match (no probing).
    asked = client.post("/api/v1/access-requests/", {"hospital": "st-mary", "mrn": "A-100",
                        "birth_date": "1970-02-03", "purpose": "TREAT"})  # fmt: skip
    unknown = client.post("/api/v1/access-requests/", {"hospital": "st-mary", "mrn": "NOPE",
                          "birth_date": "1970-02-03", "purpose": "TREAT"})  # fmt: skip
    assert asked.status_code == unknown.status_code == 202
    assert set(asked.json()) == set(unknown.json())
    assert asked.json()["patient"] is None and asked.json()["status"] == "pending"
    assert AccessRequest.objects.get(row_uuid=asked.json()["id"]).addressee_id == a["patient"].pk
    listed = client.get("/api/v1/access-requests/").json()["results"]
    assert {r["id"] for r in listed} == {asked.json()["id"], unknown.json()["id"]}
    assert api(a["staff_token"]).get("/api/v1/access-requests/").json()["results"] == []
    bad = client.post("/api/v1/access-requests/", {"hospital": "nowhere", "mrn": "A-100",
                      "birth_date": "1970-02-03", "purpose": "TREAT"})  # fmt: skip
    assert bad.status_code == 400 and "hospital" in bad.json()["detail"]
    # Break-glass: wrong details are refused, right ones grant 4 hours, flagged.
    wrong = client.post("/api/v1/break-glass/", {"hospital": "st-mary", "mrn": "A-100",
                        "birth_date": "1999-01-01", "reason": "Unconscious in A&E"})  # fmt: skip
    assert wrong.status_code == 400
    assert client.get(f"/api/v1/patients/{a['patient'].pk}/chart/").status_code == 404
    opened = client.post("/api/v1/break-glass/", {"hospital": "st-mary", "mrn": "A-100",
                         "birth_date": "1970-02-03", "reason": "Unconscious in A&E"})  # fmt: skip
    assert opened.status_code == 201 and opened.json()["break_glass"] is True
    assert BreakGlass.objects.filter(user=b["clinician"], patient=a["patient"]).exists()
    chart = client.get(f"/api/v1/patients/{a['patient'].pk}/chart/").json()
    assert chart["access"]["break_glass"] is True and chart["can_change"] is False
    event = Event.objects.filter(kind="chart.read", patient_id=a["patient"].pk).latest("id")
    assert event.attrs["break_glass"] is True and event.attrs["purpose"] == "ETREAT"
    assert _ids(client.get("/api/v1/shared/")) == [a["patient"].pk]
    # Still no write access to the other hospital's chart.
    url = f"/api/v1/patients/{a['patient'].pk}/records/condition/"
    body = {"code": "1", "display": "x", "clinical_status": "active"}
    assert client.post(url, body).status_code == 404
    # A patient token is not staff.
    assert api(a["patient_token"]).get("/api/v1/shared/").status_code == 403
    assert api(a["patient_token"]).post("/api/v1/break-glass/", {}).status_code == 403


def test_shared_list_query_count_is_constant(api, api_world, make_patient_user):
    b = api_world["b"]
    client = api(b["staff_token"])
    client.get("/api/v1/shared/")
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/api/v1/shared/").status_code == 200
    few = len(ctx.captured_queries)
    from consent import services as consent_services

    with unscoped():
        for i in range(5):
            user, (reg,) = make_patient_user(api_world["a"]["hospital"], mrn=f"S-{i}")
            consent_services.consent_grant(
                patient=reg, actor=user, grantee_kind="hospital",
                grantee_hospital=b["hospital"],
            )  # fmt: skip
    with CaptureQueriesContext(connection) as ctx:
        response = client.get("/api/v1/shared/")
    assert len(response.json()["results"]) == 5
    assert len(ctx.captured_queries) == few
