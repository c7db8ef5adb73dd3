"""Forms that catch mistakes (issue 16, item 7), over HTTP: an end before its start, a select
left on "Choose…", codes picked from the vendored lists (or free text), and a correction's
reason, which the record's history shows."""

import datetime as dt

import pytest
from django.db import connection

from ledger.models import Event
from portal.fhir import resources
from portal.ops import demo
from portal.records import codelists
from portal.records.catalog import MEASURES
from portal.records.models import (
    Condition,
    Encounter,
    MedicationRequest,
    Observation,
    Patient,
    RecordStatus,
)
from portal.tenancy.scoping import unscoped

pytestmark = pytest.mark.django_db


def _count(model):
    with unscoped():
        return model.objects.count(), Event.objects.count()


def _new(patient, record_type):
    return f"/provider/patients/{patient.pk}/records/{record_type}/new/"


@pytest.mark.parametrize(
    ("record_type", "model", "data", "names"),
    [
        ("condition", Condition,
         {"display": "Asthma (SNOMED CT 195967001)", "clinical_status": "active",
          "onset_date": "2022-05-10", "abatement_date": "2022-05-01"},
         ("abatement date (2022-05-01)", "onset date (2022-05-10)")),
        ("encounter", Encounter,
         {"class_code": "AMB", "type_display": "Check-up", "period_start": "2024-02-02T10:00",
          "period_end": "2024-02-02T09:30"},
         ("period end (2024-02-02 09:30)", "period start (2024-02-02 10:00)")),
        ("medicationrequest", MedicationRequest,
         {"display": "amlodipine 5 MG Oral Tablet (RxNorm 197361)", "dosage": "once daily",
          "request_status": "active", "authored_on": "2024-01-02T09:00",
          "valid_until": "2023-12-31T09:00"},
         ("end (valid until) (2023-12-31 09:00)", "start (authored on) (2024-01-02 09:00)")),
    ],
)  # fmt: skip
def test_an_end_before_its_start_is_refused_naming_both_fields(
    client, sign_in, world, record_type, model, data, names
):
    a = world["a"]
    sign_in(client, a["clinician"])
    before = _count(model)
    response = client.post(_new(a["patient"], record_type), data)
    assert response.status_code == 400
    page = response.content.decode()
    for name in names:
        assert name in page
    assert "it must be the same or later" in page
    assert 'class="field has-error"' in page  # on the field, not only at the top
    assert _count(model) == before


def test_a_correction_may_not_put_the_end_before_the_start(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    cond = a["condition"]  # onset 2020-01-01
    before = _count(Condition)
    response = client.post(
        f"/provider/records/condition/{cond.pk}/correct/",
        {"display": "Diabetes mellitus type 2 (SNOMED CT 44054006)", "clinical_status": "resolved",
         "onset_date": "2020-01-01", "abatement_date": "2019-06-30",
         "correction_reason": "Resolved"},
    )  # fmt: skip
    assert response.status_code == 400
    assert "abatement date (2019-06-30) is before the onset date" in response.content.decode()
    assert _count(Condition) == before


def test_the_same_day_is_not_before(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    response = client.post(
        _new(a["patient"], "condition"),
        {"display": "Influenza (SNOMED CT 6142004)", "clinical_status": "resolved",
         "onset_date": "2023-01-05", "abatement_date": "2023-01-05"},
    )  # fmt: skip
    assert response.status_code == 302


@pytest.mark.parametrize(
    ("url", "data", "field"),
    [
        ("/provider/patients/new/",
         {"mrn": "NEW-1", "given_name": "A", "family_name": "B", "birth_date": "1990-01-01"},
         "sex"),
        ("records/allergyintolerance/new/",
         {"display": "Latex allergy (SNOMED CT 300916003)", "reaction": "hives",
          "recorded_date": "2024-01-01T10:00"}, "criticality"),
        ("observations/new/", {"code": "8867-4", "value": "70"}, "unit"),
        ("records/encounter/new/", {"type_display": "Check-up",
                                    "period_start": "2024-02-02T10:00"}, "class_code"),
        ("records/condition/new/", {"display": "Gout (SNOMED CT 90560007)"}, "clinical_status"),
    ],
)  # fmt: skip
def test_a_select_left_on_choose_is_refused(client, sign_in, world, url, data, field):
    a = world["a"]
    sign_in(client, a["clinician"])
    if not url.startswith("/"):
        url = f"/provider/patients/{a['patient'].pk}/{url}"
        data = {"effective_at": dt.datetime.now().strftime("%Y-%m-%dT%H:%M"), **data}
    form = client.get(url).content.decode()
    # The blank option is the one selected: nothing is chosen for the user.
    assert f'name="{field}"' in form
    select = form[form.index(f'name="{field}"') :]
    select = select[: select.index("</select>")]
    assert '<option value="" selected>Choose…</option>' in select
    with unscoped():
        before = Patient.objects.count(), Event.objects.count()
    response = client.post(url, data)
    assert response.status_code == 400
    assert "Choose one from the list." in response.content.decode()
    with unscoped():
        assert (Patient.objects.count(), Event.objects.count()) == before


def test_the_code_lists_hold_the_demo_and_catalogue_codes():
    # The vendored lists are the ones the forms offer; the demo's own codes are in them.
    def codes(name):
        return {c.code for c in codelists.code_list(name)}

    assert set(MEASURES) <= codes("measurements")
    assert {p[0] for p in demo.PROBLEMS} <= codes("conditions")
    assert {p[2] for p in demo.PROBLEMS} <= codes("medications")
    assert {a[0] for a in demo.ALLERGIES} <= codes("allergies")
    assert "185349003" in codes("encounter-types")  # the demo's check-up
    for name in codelists.LISTS:
        assert len(codelists.code_list(name)) >= 10
    total = sum(len(codelists.code_list(n)) for n in codelists.LISTS)
    assert total >= 300


def test_a_code_picked_from_the_list_is_stored_with_its_system(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    form = client.get(_new(a["patient"], "condition")).content.decode()
    # Searchable without a script: an <input list> with its <datalist>.
    assert 'list="codes-conditions"' in form and '<datalist id="codes-conditions">' in form
    assert '<option value="Essential hypertension (SNOMED CT 59621000)">' in form
    assert 'type="hidden" name="code"' in form
    response = client.post(
        _new(a["patient"], "condition"),
        {"code": "", "display": "Essential hypertension (SNOMED CT 59621000)",
         "clinical_status": "active", "onset_date": "2021-04-01"},
    )  # fmt: skip
    assert response.status_code == 302
    with unscoped():
        record = Condition.objects.filter(patient=a["patient"]).latest("id")
    assert (record.code, record.display) == ("59621000", "Essential hypertension")
    coding = resources.to_fhir(record)["code"]["coding"][0]
    assert coding == {
        "system": "http://snomed.info/sct", "code": "59621000", "display": "Essential hypertension"
    }  # fmt: skip
    # The medication list is RxNorm, the vaccine list CVX.
    med = client.get(_new(a["patient"], "medicationrequest")).content.decode()
    assert '<option value="amlodipine 5 MG Oral Tablet (RxNorm 197361)">' in med
    assert "(CVX 208)" in client.get(_new(a["patient"], "immunization")).content.decode()


def test_free_text_is_kept_without_a_code(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    response = client.post(
        _new(a["patient"], "condition"),
        {"code": "", "display": "Itchy rash after hiking", "clinical_status": "active"},
    )
    assert response.status_code == 302
    with unscoped():
        record = Condition.objects.filter(patient=a["patient"]).latest("id")
    assert (record.code, record.display) == ("", "Itchy rash after hiking")
    assert resources.to_fhir(record)["code"] == {"text": "Itchy rash after hiking"}
    chart = client.get(f"/provider/patients/{a['patient'].pk}/").content.decode()
    assert "Itchy rash after hiking" in chart
    # Neither a pick nor text: refused with a message.
    before = _count(Condition)
    empty = client.post(
        _new(a["patient"], "condition"), {"display": "", "clinical_status": "active"}
    )
    assert empty.status_code == 400
    assert "Problem: pick one from the list or describe it." in empty.content.decode()
    assert _count(Condition) == before


def test_a_correction_without_a_reason_is_refused(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    before = _count(Condition), _count(Observation)
    cond = client.post(
        f"/provider/records/condition/{a['condition'].pk}/correct/",
        {"display": "Diabetes mellitus type 1 (SNOMED CT 46635009)", "clinical_status": "active",
         "onset_date": "2020-01-01", "correction_reason": "  "},
    )  # fmt: skip
    assert cond.status_code == 400
    assert "Give the reason for this correction." in cond.content.decode()
    obs = client.post(
        f"/provider/records/observation/{a['observation'].pk}/correct/",
        {"value": "75", "unit": "/min", "effective_at": "2024-01-01T10:00"},
    )
    assert obs.status_code == 400
    assert "Give the reason for this correction." in obs.content.decode()
    assert (_count(Condition), _count(Observation)) == before
    with unscoped():
        assert Condition.objects.get(pk=a["condition"].pk).status == RecordStatus.ACTIVE


def test_the_correction_form_shows_the_code_picked_and_asks_for_a_reason(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    page = client.get(f"/provider/records/condition/{a['condition'].pk}/correct/")
    text = page.content.decode()
    assert 'value="Diabetes mellitus type 2 (SNOMED CT 44054006)"' in text
    assert "Reason for the correction" in text


def test_the_reason_is_shown_in_the_history_encrypted_and_out_of_the_ledger(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    reason = "Wrong patient: entered for the bed next door"
    response = client.post(
        f"/provider/records/condition/{a['condition'].pk}/correct/",
        {"display": "Diabetes mellitus type 1 (SNOMED CT 46635009)", "clinical_status": "active",
         "onset_date": "2020-01-01", "correction_reason": reason},
    )  # fmt: skip
    assert response.status_code == 302
    with unscoped():
        new = Condition.objects.get(replaces=a["condition"])
    assert (new.code, new.correction_reason) == ("46635009", reason)
    page = client.get(f"/provider/records/condition/{new.pk}/").content.decode()
    assert "Earlier versions" in page and reason in page
    # Observations too.
    obs = client.post(
        f"/provider/records/observation/{a['observation'].pk}/correct/",
        {
            "value": "75",
            "unit": "/min",
            "effective_at": "2024-01-01T10:00",
            "correction_reason": "Misread",
        },
    )
    assert obs.status_code == 302
    assert "Misread" in client.get(obs.url).content.decode()
    # Encrypted at rest, and no event's leaf or attributes hold it.
    with connection.cursor() as cursor:
        cursor.execute("SELECT correction_reason FROM records_condition WHERE id = %s", [new.pk])
        (stored,) = cursor.fetchone()
    assert reason.encode() not in bytes(stored)
    with unscoped():
        events = list(Event.objects.order_by("-id")[:6])
    for event in events:
        assert "bed next door" not in repr(event.attrs) and "bed next door" not in repr(
            event.__dict__
        )


def test_another_hospital_cannot_correct_a_record(client, sign_in, world):
    a, b = world["a"], world["b"]
    sign_in(client, b["clinician"])
    before = _count(Condition), _count(Observation)
    for url, data in (
        (f"/provider/records/condition/{a['condition'].pk}/correct/",
         {"display": "x", "clinical_status": "active", "correction_reason": "Because"}),
        (f"/provider/records/observation/{a['observation'].pk}/correct/",
         {"value": "75", "unit": "/min", "effective_at": "2024-01-01T10:00",
          "correction_reason": "x"}),
    ):  # fmt: skip
        assert client.get(url).status_code == 404
        assert client.post(url, data).status_code == 404
    assert (_count(Condition), _count(Observation)) == before
