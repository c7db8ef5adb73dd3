"""Adding and correcting records: clear messages for bad input, nothing saved."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from ledger.models import Event
from portal.records.models import ClinicalNote, Document, Observation, Patient, RecordStatus
from portal.tenancy.scoping import unscoped


def _counts():
    with unscoped():
        return (
            Observation.objects.count(), ClinicalNote.objects.count(), Document.objects.count(),
            Patient.objects.count(), Event.objects.count(),
        )  # fmt: skip


def _now_local():
    return timezone.localtime().strftime("%Y-%m-%dT%H:%M")


def test_record_blood_pressure_shows_on_chart(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    url = f"/provider/patients/{a['patient'].pk}/blood-pressure/new/"
    response = client.post(
        url, {"systolic": "131", "diastolic": "84", "effective_at": _now_local()}
    )
    assert response.status_code == 302
    chart = client.get(f"/provider/patients/{a['patient'].pk}/").content.decode()
    # One blood-pressure chart with both values (issue 16; the two codes are stored apart).
    assert 'data-code="85354-9"' in chart and 'data-code="8480-6"' not in chart
    assert "Latest: <strong>131/84 mmHg</strong>" in chart


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"code": "0000-0", "value": "70", "unit": "/min"}, "Unknown code"),
        ({"code": "8867-4", "value": "70", "unit": "kg"}, "is recorded in /min"),
        ({"code": "8867-4", "value": "7000", "unit": "/min"}, "outside the plausible range"),
        ({"code": "8867-4", "value": "abc", "unit": "/min"}, "Enter a number"),
        ({"code": "8867-4", "value": "70", "unit": "/min", "effective_at": "2999-01-01T10:00"},
         "in the future"),
    ],
)  # fmt: skip
def test_bad_measurements_are_refused_with_a_message(client, sign_in, world, data, message):
    a = world["a"]
    sign_in(client, a["clinician"])
    before = _counts()
    data = {"effective_at": _now_local(), **data}
    response = client.post(f"/provider/patients/{a['patient'].pk}/observations/new/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert _counts() == before


def test_blood_pressure_must_be_plausible(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    before = _counts()
    url = f"/provider/patients/{a['patient'].pk}/blood-pressure/new/"
    response = client.post(
        url, {"systolic": "80", "diastolic": "120", "effective_at": _now_local()}
    )
    assert response.status_code == 400
    assert "lower than the systolic" in response.content.decode()
    assert _counts() == before


def test_correction_keeps_history(client, sign_in, world):
    a = world["a"]
    obs = a["observation"]
    sign_in(client, a["clinician"])
    response = client.post(
        f"/provider/records/observation/{obs.pk}/correct/",
        {
            "value": "75",
            "unit": "/min",
            "effective_at": _now_local(),
            "correction_reason": "Misread",
        },
    )
    assert response.status_code == 302
    with unscoped():
        old = Observation.objects.get(pk=obs.pk)
        new = Observation.objects.get(replaces=old)
    assert old.status == RecordStatus.ENTERED_IN_ERROR
    assert new.version == 2 and new.value == Decimal("75")
    page = client.get(f"/provider/records/observation/{new.pk}/").content.decode()
    assert "Earlier versions" in page and "Version 1" in page
    # The old version cannot be corrected again.
    again = client.post(
        f"/provider/records/observation/{obs.pk}/correct/",
        {"value": "76", "unit": "/min", "effective_at": _now_local(), "correction_reason": "Again"},
    )
    assert again.status_code == 400 and "already been corrected" in again.content.decode()
    kinds = list(Event.objects.order_by("-id").values_list("kind", flat=True)[:4])
    assert "observation.corrected" in kinds and "observation.entered-in-error" in kinds


def test_register_patient_validation(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    before = _counts()
    bad = client.post(
        "/provider/patients/new/",
        {"mrn": a["patient"].mrn, "given_name": "X", "family_name": "Y",
         "birth_date": "1990-01-01", "sex": "female"},
    )  # fmt: skip
    assert bad.status_code == 400 and "already registered" in bad.content.decode()
    future = client.post(
        "/provider/patients/new/",
        {"mrn": "NEW-9", "given_name": "X", "family_name": "Y",
         "birth_date": (dt.date.today() + dt.timedelta(days=3)).isoformat(), "sex": "female"},
    )  # fmt: skip
    assert future.status_code == 400 and "in the future" in future.content.decode()
    assert _counts() == before
    ok = client.post(
        "/provider/patients/new/",
        {"mrn": "NEW-9", "given_name": "Xena", "family_name": "Yang",
         "birth_date": "1990-01-01", "sex": "female"},
    )  # fmt: skip
    assert ok.status_code == 302
    assert client.get(ok.url).status_code == 200  # the new chart is visible at once


@pytest.mark.parametrize(
    ("name", "content", "content_type", "message"),
    [
        ("x.pdf", b"not a pdf at all", "application/pdf", "does not match its type"),
        ("x.exe", b"MZ\x90\x00", "application/x-msdownload", "accepted: PDF, PNG"),
        ("x.txt", b"\xff\xfe\x00bad", "text/plain", "UTF-8"),
    ],
)
def test_bad_uploads_are_refused(client, sign_in, world, name, content, content_type, message):
    a = world["a"]
    sign_in(client, a["clinician"])
    before = _counts()
    upload = SimpleUploadedFile(name, content, content_type=content_type)
    response = client.post(
        f"/provider/patients/{a['patient'].pk}/documents/new/", {"title": "t", "file": upload}
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert _counts() == before


def test_oversized_upload_is_refused(client, sign_in, world, settings):
    settings.DOCUMENT_MAX_BYTES = 1000
    a = world["a"]
    sign_in(client, a["clinician"])
    before = _counts()
    upload = SimpleUploadedFile("big.txt", b"a" * 1001, content_type="text/plain")
    response = client.post(
        f"/provider/patients/{a['patient'].pk}/documents/new/", {"title": "t", "file": upload}
    )
    assert response.status_code == 400 and "the limit is 1,000 bytes" in response.content.decode()
    assert _counts() == before


def test_upload_and_download_a_document(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    pdf = b"%PDF-1.4\n% test\n"
    upload = SimpleUploadedFile("r.pdf", pdf, content_type="application/pdf")
    response = client.post(
        f"/provider/patients/{a['patient'].pk}/documents/new/", {"title": "Report", "file": upload}
    )
    assert response.status_code == 302
    with unscoped():
        doc = Document.objects.latest("id")
    assert doc.title == "Report"
    download = client.get(f"/provider/documents/{doc.pk}/download/")
    assert download.status_code == 200 and download.content == pdf
    assert download["Content-Type"] == "application/pdf"


def test_care_team_management(client, sign_in, world, nurse_a):
    a, b = world["a"], world["b"]
    sign_in(client, a["clinician"])
    url = f"/provider/patients/{a['patient'].pk}/care-team/"
    foreign = client.post(url, {"username": b["clinician"].username})
    assert foreign.status_code == 400 and "works at this hospital" in foreign.content.decode()
    ok = client.post(url, {"username": nurse_a.username})
    assert ok.status_code == 302
    assert nurse_a.username in client.get(url).content.decode()
    removed = client.post(f"{url}{nurse_a.pk}/remove/")
    assert removed.status_code == 302
    assert client.post(f"{url}{nurse_a.pk}/remove/").status_code == 404


@pytest.mark.parametrize(
    ("record_type", "data"),
    [
        ("condition", {"code": "38341003", "display": "Hypertension",
                       "clinical_status": "active", "onset_date": "2021-04-01"}),
        ("medicationrequest", {"code": "197361", "display": "Amlodipine 5 MG",
                               "dosage": "once daily", "request_status": "active",
                               "authored_on": "2024-01-02T09:00"}),
        ("allergyintolerance", {"code": "91936005", "display": "Penicillin allergy",
                                "criticality": "high", "reaction": "rash",
                                "recorded_date": "2023-05-05T10:00"}),
        ("immunization", {"vaccine_code": "140", "display": "Influenza",
                          "occurrence": "2024-10-01T10:00"}),
        ("procedure", {"code": "80146002", "display": "Appendectomy",
                       "performed_at": "2010-03-03T08:00"}),
        ("encounter", {"class_code": "AMB", "type_display": "Check-up", "reason": "annual",
                       "period_start": "2024-02-02T10:00"}),
    ],
)  # fmt: skip
def test_add_and_correct_other_records(client, sign_in, world, record_type, data):
    from portal.records.selectors import RECORD_TYPES

    a = world["a"]
    model = RECORD_TYPES[record_type]
    sign_in(client, a["clinician"])
    url = f"/provider/patients/{a['patient'].pk}/records/{record_type}/new/"
    assert client.post(url, data).status_code == 302
    with unscoped():
        record = model.objects.filter(patient=a["patient"]).latest("id")
    label = "type_display" if record_type == "encounter" else "display"
    fixed = dict(data)
    fixed[label] = fixed[label] + " (corrected)"
    fixed["correction_reason"] = "Wrong wording"
    response = client.post(f"/provider/records/{record_type}/{record.pk}/correct/", fixed)
    assert response.status_code == 302, response.content.decode()[:2000]
    with unscoped():
        new = model.objects.get(replaces=record)
        assert model.objects.get(pk=record.pk).status == RecordStatus.ENTERED_IN_ERROR
    assert getattr(new, label).endswith("(corrected)")


def test_future_dates_and_unknown_types_are_refused(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    before = _counts()
    response = client.post(
        f"/provider/patients/{a['patient'].pk}/records/procedure/new/",
        {"code": "1", "display": "x", "performed_at": "2999-01-01T10:00"},
    )
    assert response.status_code == 400 and "in the future" in response.content.decode()
    unknown = f"/provider/patients/{a['patient'].pk}/records/claim/new/"
    assert client.get(unknown).status_code == 404
    assert _counts() == before
