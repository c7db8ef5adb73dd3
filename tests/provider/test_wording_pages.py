"""Pages speak to people (issue 16, item 4): record types by name, values without trailing
zeros and units as people write them, times to the minute in the user's own time zone, staff
by name and role, event kinds in words, the header's name, what an upload accepts, and a
download's filename with its extension. Over HTTP, with a second hospital."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.test import override_settings

from ledger.models import Event
from portal.records import services
from portal.records.models import Observation
from portal.tenancy.scoping import unscoped

pytestmark = pytest.mark.django_db

WHEN = dt.datetime(2026, 12, 6, 5, 5, tzinfo=dt.UTC)


def _named(user, first, last):
    user.first_name, user.last_name = first, last
    user.save(update_fields=["first_name", "last_name"])
    return user


@pytest.fixture
def spo2(world):
    a = world["a"]
    with unscoped():
        return services.observation_create(
            actor=a["clinician"], patient=a["patient"], code="59408-5",
            display="Oxygen saturation", value=Decimal("97.000"), unit="%", effective_at=WHEN,
        )  # fmt: skip


@pytest.fixture
def bp(world):
    a = world["a"]
    with unscoped():
        return services.observation_create(
            actor=a["clinician"], patient=a["patient"], code="8480-6",
            display="Systolic blood pressure", value=Decimal("120.00"), unit="mm[Hg]",
            effective_at=WHEN - dt.timedelta(days=1),
        )  # fmt: skip


def _text(response) -> str:
    """The page's text without tags (a value and its unit may sit in different elements)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_timeline_names_record_types_and_writes_values_as_people_do(
    client, sign_in, world, spo2, bp
):
    sign_in(client, world["a"]["clinician"])
    response = client.get(f"/provider/patients/{world['a']['patient'].pk}/")
    assert response.status_code == 200
    # The timeline (the trend charts above it are another part's).
    text = _text(response).split("Timeline", 1)[1]
    assert "Clinical note" in text and "Measurement" in text
    assert "Clinicalnote" not in text and "Clinical Note" not in text
    assert "97 %" in text and "97.000" not in text
    assert "120 mmHg" in text and "mm[Hg]" not in text
    assert "70 /min" in text


def test_times_are_shown_to_the_minute_in_the_users_time_zone(client, sign_in, world, spo2):
    sign_in(client, world["a"]["clinician"])
    url = f"/provider/records/observation/{spo2.pk}/"
    utc = _text(client.get(url))
    assert "6 Dec 2026, 05:05" in utc and "Times are shown in the UTC time zone" in utc
    client.cookies["portal_tz"] = "Asia/Tokyo"
    tokyo = _text(client.get(url))
    assert "6 Dec 2026, 14:05" in tokyo and "Asia/Tokyo" in tokyo
    assert "2026-12-06" not in tokyo
    chart = _text(client.get(f"/provider/patients/{world['a']['patient'].pk}/"))
    assert "6 Dec 2026, 14:05" in chart
    # A name outside the zone database is ignored, never loaded: the site's zone.
    client.cookies["portal_tz"] = "../../etc/passwd"
    assert "6 Dec 2026, 05:05" in _text(client.get(url))


def test_record_page_names_its_type_author_and_unit(client, sign_in, world, spo2):
    clinician = _named(world["a"]["clinician"], "Ana", "Silva")
    sign_in(client, clinician)
    text = _text(client.get(f"/provider/records/observation/{spo2.pk}/"))
    assert "Measurement (version 1)" in text
    assert "Ana Silva, Clinician" in text and clinician.username not in text.split("Sign out")[1]
    assert "Value 97 %" in text and "97.000" not in text and "Unit" not in text
    note = world["a"]["note"]
    text = _text(client.get(f"/provider/records/clinicalnote/{note.pk}/"))
    assert "Clinical note (version 1)" in text
    # The other hospital's record is the same 404 as a missing one.
    other = world["b"]["note"]
    assert client.get(f"/provider/records/clinicalnote/{other.pk}/").status_code == 404


def test_record_page_says_yes_and_no(client, sign_in, world):
    sign_in(client, world["a"]["clinician"])
    note = world["a"]["note"]
    text = _text(client.get(f"/provider/records/clinicalnote/{note.pk}/"))
    assert "Restricted No" in text
    assert "False" not in text and "True" not in text


def test_header_shows_the_persons_name(client, sign_in, world):
    clinician = _named(world["a"]["clinician"], "Ana", "Silva")
    sign_in(client, clinician)
    body = client.get("/provider/").content.decode()
    assert '<span class="username">Ana Silva</span>' in body
    unnamed = world["b"]["clinician"]
    body = sign_in(client, unnamed).get("/provider/").content.decode()
    assert f'<span class="username">{unnamed.username}</span>' in body


def test_upload_form_lists_accepted_types_and_size_from_the_rule(client, sign_in, world):
    sign_in(client, world["a"]["clinician"])
    url = f"/provider/patients/{world['a']['patient'].pk}/documents/new/"
    with override_settings(DOCUMENT_MAX_BYTES=10 * 1024 * 1024):
        body = client.get(url).content.decode()
    assert "Accepted: PDF, PNG, JPEG or plain text, up to 10 MB." in body
    assert 'accept="application/pdf,image/png,image/jpeg,text/plain"' in body
    assert "up to 5 MB" in client.get(url).content.decode()


def test_document_download_carries_a_filename_with_its_extension(client, sign_in, world):
    sign_in(client, world["a"]["clinician"])
    doc = world["a"]["document"]
    response = client.get(f"/provider/documents/{doc.pk}/download/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="document-{doc.pk}.txt"'
    other = world["b"]["document"]
    assert client.get(f"/provider/documents/{other.pk}/download/").status_code == 404


def test_care_team_names_staff_by_name_and_role(client, sign_in, world, make_staff, hospital_a):
    from portal.tenancy.models import Role

    sign_in(client, world["a"]["clinician"])
    nurse = _named(make_staff(hospital_a, Role.NURSE), "Nia", "Reyes")
    url = f"/provider/patients/{world['a']['patient'].pk}/care-team/"
    response = client.post(url, {"username": nurse.username})
    assert response.status_code == 302
    text = _text(client.get(url))
    assert "Nia Reyes, Nurse" in text


def test_patient_sees_readers_by_name_and_role_and_kinds_in_words(
    client, sign_in, world, make_patient_user, hospital_a, hospital_b
):
    owner, (reg, _other) = make_patient_user(hospital_a, hospital_b)
    clinician = _named(world["a"]["clinician"], "Ana", "Silva")
    staff = client.__class__()
    sign_in(staff, clinician)
    assert staff.get(f"/provider/patients/{reg.pk}/").status_code == 200
    sign_in(client, owner)
    client.cookies["portal_tz"] = "America/New_York"
    log = _text(client.get("/patient/access/"))
    assert "Ana Silva, Clinician" in log and clinician.username not in log
    assert "America/New_York" in log
    event = Event.objects.filter(kind="chart.read", patient_id=reg.pk).latest("id")
    verify = _text(client.get(f"/patient/access/{event.event_id}/verify/"))
    assert "Kind Opened a chart" in verify and "chart.read" not in verify
    assert "Break-glass No" in verify


def test_patient_records_and_printout_write_values_as_people_do(
    client, sign_in, world, make_patient_user, hospital_a, hospital_b
):
    owner, (reg, _other) = make_patient_user(hospital_a, hospital_b)
    with unscoped():
        services.observation_create(
            actor=world["a"]["clinician"], patient=reg, code="8310-5", display="Body temperature",
            value=Decimal("36.60"), unit="Cel", effective_at=WHEN,
        )  # fmt: skip
    sign_in(client, owner)
    # The table (the trend chart above it is another part's).
    records = _text(client.get("/patient/records/?category=vitals")).split("Date Hospital", 1)[1]
    assert "36.6 °C" in records and "Cel" not in records and "6 Dec 2026, 05:05" in records
    printout = _text(client.get("/patient/export/"))
    assert "36.6 °C" in printout
    export = client.get("/patient/export.json")
    assert re.fullmatch(
        r'attachment; filename="my-records-\d{8}\.json"', export["Content-Disposition"]
    )
    with unscoped():  # stored as UCUM
        assert [o.unit for o in Observation.objects.filter(patient=reg)] == ["Cel"]
