"""What the patient portal tells patients is true (issue 16, item 3): who read their records,
through what and for what, from which hospital; what a tab's name promises; the last day a
consent covers; a carer's reads; and their own documents, downloadable. Each case makes the
request over HTTP, as the patient (or the reader) would."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from consent import services
from consent.models import Consent
from ledger.models import Event
from portal.records import services as record_services
from portal.records.models import Document
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories

pytestmark = pytest.mark.django_db


def _log(client) -> str:
    return client.get(reverse("patient:access_log")).content.decode()


def _rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    return re.findall(r"<tr.*?</tr>", body, flags=re.S)


def _proxy(consent_world, make_patient_user, *, categories=None):
    w = consent_world
    carer, _ = make_patient_user(w["b"], given_name="Cara", family_name="Carer")
    carer.first_name, carer.last_name = "Cara", "Carer"
    carer.save()
    invitation = services.proxy_invite(
        grantor=w["account"], proxy_username=carer.username, relationship="carer",
        scope_all=categories is None, categories=categories or [],
    )  # fmt: skip
    return carer, services.proxy_accept(invitation=invitation, actor=carer)


# -- who, through what, for what ---------------------------------------------------------------


def test_an_admins_read_shows_the_recorded_purpose_and_channel(client, sign_in, consent_world):
    w = consent_world
    sign_in(client, w["admin_a"])
    assert client.get(f"/admin/records/patient/{w['patient'].pk}/change/").status_code == 200
    event = Event.objects.get(kind="chart.read")
    assert event.attrs["purpose"] == "HSYSADMIN" and event.attrs["via"] == "admin"
    sign_in(client, w["account"])
    [row] = _rows(_log(client))
    assert "Treatment" not in row
    assert "Hospital administration" in row and "the administration site" in row
    verify = client.get(reverse("patient:event_verify", args=[event.event_id])).content.decode()
    assert "Hospital administration" in verify and "the administration site" in verify
    assert "Treatment" not in verify


def test_an_auditors_read_is_not_shown_as_from_the_patients_hospital(
    client, sign_in, consent_world
):
    w = consent_world
    auditor = factories.UserFactory(is_superuser=True, is_staff=True, first_name="Aud")
    factories.TOTPDeviceFactory(user=auditor)
    sign_in(client, auditor)
    assert client.get(f"/admin/records/patient/{w['patient'].pk}/change/").status_code == 200
    sign_in(client, w["account"])
    [row] = _rows(_log(client))
    cells = re.findall(r"<td>(.*?)</td>", row, flags=re.S)
    # When, Who, From, Your records at: an auditor reads from no hospital.
    assert "St Mary" not in cells[2] and "St Mary" in cells[3]


def test_a_treatment_read_says_treatment_and_through_what(client, sign_in, consent_world):
    w = consent_world
    sign_in(client, w["clinician_a"])
    client.get(f"/provider/patients/{w['patient'].pk}/")
    sign_in(client, w["account"])
    [row] = _rows(_log(client))
    assert "Treatment" in row and "the hospital&#x27;s own staff" in row


def test_a_locum_reading_at_the_charts_hospital_is_shown_under_that_hospital(
    client, sign_in, consent_world, make_staff
):
    """A clinician who works at both hospitals and has Riverside chosen opens a St Mary's
    chart, which St Mary's membership opens: the read is St Mary's staff's, not Riverside's."""
    w = consent_world
    locum = make_staff(w["b"], Role.CLINICIAN, first_name="Lou", last_name="Cum")
    with unscoped():
        factories.MembershipFactory(user=locum, hospital=w["a"], role=Role.CLINICIAN)
    sign_in(client, locum)
    session = client.session
    from portal.tenancy.middleware import SESSION_KEY

    session[SESSION_KEY] = w["b"].pk
    session.save()
    assert client.get(f"/provider/patients/{w['patient'].pk}/").status_code == 200
    event = Event.objects.get(kind="chart.read")
    assert event.actor_hospital_id == w["a"].pk and event.attrs["role"] == Role.CLINICIAN
    sign_in(client, w["account"])
    [row] = _rows(_log(client))
    cells = re.findall(r"<td>(.*?)</td>", row, flags=re.S)
    assert "Lou Cum" in cells[1] and "St Mary" in cells[2]


# -- what a tab's name promises ------------------------------------------------------------


def test_the_notes_tab_holds_no_restricted_note_and_the_owner_sees_it_under_its_own_heading(
    client, sign_in, consent_world
):
    w = consent_world
    sign_in(client, w["account"])
    html = client.get("/patient/records/?category=notes").content.decode()
    main = html.split("<main", 1)[1]
    notes, _, restricted = main.partition('id="restricted-notes"')
    assert "Visit" in notes and "Therapy" not in notes and "Psychotherapy" not in notes
    assert "Restricted notes" in restricted and "Therapy" in restricted


def test_a_proxy_never_sees_a_restricted_note(client, sign_in, consent_world, make_patient_user):
    carer, grant = _proxy(consent_world, make_patient_user)
    sign_in(client, carer)
    html = client.get(f"/patient/proxies/{grant.row_uuid}/records/?category=notes").content
    assert b"Visit" in html and b"Therapy" not in html and b"Restricted notes" not in html


# -- the last day of a consent ---------------------------------------------------------------


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Tokyo"])
def test_a_consents_end_date_is_shown_as_chosen(client, sign_in, consent_world, settings, zone):
    settings.TIME_ZONE = zone
    w = consent_world
    sign_in(client, w["account"])
    response = client.post(
        reverse("patient:consent_new"),
        {"registration": w["patient"].pk, "grantee_kind": "practitioner",
         "grantee_user": w["clinician_b"].pk, "scope_all": "all", "purpose": "TREAT",
         "period_end": "2027-01-31"},
    )  # fmt: skip
    assert response.status_code == 302, response.content
    consent = Consent.objects.get()
    # Through the end of 31 January in the site's time zone, not a moment longer.
    site = timezone.get_default_timezone()
    assert consent.period_end == dt.datetime(2027, 2, 1, tzinfo=site)
    page = client.get(reverse("patient:consents")).content.decode()
    assert "31 Jan 2027" in page and "2027-02-01" not in page and "1 Feb 2027" not in page
    sign_in(client, w["clinician_b"])
    chart = client.get(f"/provider/patients/{w['patient'].pk}/").content.decode()
    assert "31 Jan 2027" in chart and "2027-02-01" not in chart
    admin = w["admin_a"]
    sign_in(client, admin)
    listing = client.get("/admin/consent/consent/").content.decode()
    assert "31 Jan 2027" in listing and "2027-02-01" not in listing


# -- a carer's reads -------------------------------------------------------------------------


def test_a_proxys_reads_are_in_the_patients_access_log(
    client, sign_in, consent_world, make_patient_user
):
    w = consent_world
    carer, grant = _proxy(consent_world, make_patient_user)
    sign_in(client, carer)
    assert client.get(f"/patient/proxies/{grant.row_uuid}/records/").status_code == 200
    event = Event.objects.get(kind="chart.read")
    assert event.actor_id == carer.pk and event.attrs["via"] == "proxy"
    assert event.patient_id == w["patient"].pk and event.actor_hospital_id is None
    sign_in(client, w["account"])
    [row] = _rows(_log(client))
    assert "Cara Carer" in row and "your carer" in row.lower()
    assert "Treatment" not in row
    verify = client.get(reverse("patient:event_verify", args=[event.event_id]))
    assert verify.status_code == 200 and b"Cara Carer" in verify.content
    home = client.get(reverse("patient:home")).content.decode()
    assert "Cara Carer (proxy access)" in home


def test_the_owners_own_reads_are_not_in_their_access_log(client, sign_in, consent_world):
    w = consent_world
    sign_in(client, w["account"])
    client.get("/patient/records/?category=notes")
    assert not Event.objects.filter(kind__in=["chart.read", "record.read"]).exists()


# -- their own documents ---------------------------------------------------------------------


@pytest.fixture
def documents(consent_world):
    w = consent_world
    with unscoped():
        mine = record_services.record_create(
            actor=w["clinician_a"], patient=w["patient"], model=Document, title="Discharge letter",
            content_type="application/pdf", size=8, sha256="0" * 64, content=b"%PDF-1.4",
        )  # fmt: skip
        theirs = record_services.record_create(
            actor=w["clinician_a"], patient=w["other"], model=Document, title="Olga's scan",
            content_type="image/png", size=4, sha256="1" * 64, content=b"\x89PNG",
        )  # fmt: skip
    return mine, theirs


def test_a_patient_downloads_their_own_document(client, sign_in, consent_world, documents):
    w = consent_world
    mine, theirs = documents
    sign_in(client, w["account"])
    page = client.get("/patient/records/?category=documents").content.decode()
    url = reverse("patient:document_download", args=[mine.pk])
    assert url in page and "Discharge letter" in page
    response = client.get(url)
    assert response.status_code == 200 and response.content == b"%PDF-1.4"
    assert response["Content-Type"] == "application/pdf"
    assert re.search(r'attachment; filename="[^"/]+\.pdf"', response["Content-Disposition"])
    assert response["X-Content-Type-Options"] == "nosniff"
    # The owner's own downloads are not access by anyone else: not logged.
    assert not Event.objects.filter(kind="document.read").exists()
    # Another patient's document, a missing one, a bad id: the same 404.
    for pk in (theirs.pk, 999999, "x"):
        assert client.get(f"/patient/documents/{pk}/").status_code == 404


def test_a_proxy_downloads_documents_only_if_the_grant_covers_them(
    client, sign_in, consent_world, documents, make_patient_user
):
    w = consent_world
    mine, theirs = documents
    carer, grant = _proxy(consent_world, make_patient_user, categories=["documents"])
    narrow_carer, narrow = _proxy(consent_world, make_patient_user, categories=["vitals"])
    url = reverse("patient:proxy_document_download", args=[grant.row_uuid, mine.pk])
    sign_in(client, carer)
    page = client.get(f"/patient/proxies/{grant.row_uuid}/records/?category=documents")
    assert url in page.content.decode()
    response = client.get(url)
    assert response.status_code == 200 and response.content == b"%PDF-1.4"
    assert response["Content-Disposition"].endswith('.pdf"')
    event = Event.objects.get(kind="document.read")
    assert (event.actor_id, event.attrs["via"]) == (carer.pk, "proxy")
    other = reverse("patient:proxy_document_download", args=[grant.row_uuid, theirs.pk])
    assert client.get(other).status_code == 404
    sign_in(client, narrow_carer)
    for u in (
        reverse("patient:proxy_document_download", args=[narrow.row_uuid, mine.pk]),
        reverse("patient:proxy_document_download", args=[grant.row_uuid, mine.pk]),
        reverse("patient:document_download", args=[mine.pk]),
    ):
        assert client.get(u).status_code == 404, u
    sign_in(client, w["account"])
    rows = _rows(_log(client))
    assert any("Cara Carer" in r and "document" in r.lower() for r in rows)


def test_a_patient_of_another_hospital_gets_404_for_a_document(
    client, sign_in, consent_world, documents, make_patient_user
):
    mine, _ = documents
    stranger, _ = make_patient_user(consent_world["b"])
    sign_in(client, stranger)
    assert client.get(reverse("patient:document_download", args=[mine.pk])).status_code == 404


def test_the_log_and_the_documents_tab_run_constant_queries(
    client, sign_in, consent_world, documents, make_patient_user
):
    """Admin, carer and staff reads in the log, documents in the tab: no query per row."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    w = consent_world
    carer, grant = _proxy(consent_world, make_patient_user)

    def reads():
        sign_in(client, w["admin_a"])
        client.get(f"/admin/records/patient/{w['patient'].pk}/change/")
        sign_in(client, carer)
        client.get(f"/patient/proxies/{grant.row_uuid}/records/?category=documents")
        sign_in(client, w["clinician_a"])
        client.get(f"/provider/patients/{w['patient'].pk}/")
        with unscoped():
            record_services.record_create(
                actor=w["clinician_a"], patient=w["patient"], model=Document, title="Scan",
                content_type="image/png", size=4, sha256="2" * 64, content=b"\x89PNG",
            )  # fmt: skip

    def count(user, url):
        sign_in(client, user)
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx)

    pages = [
        (w["account"], reverse("patient:access_log")),
        (w["account"], "/patient/records/?category=documents"),
        (carer, f"/patient/proxies/{grant.row_uuid}/records/?category=documents"),
    ]
    reads()
    before = [count(user, url) for user, url in pages]
    for _ in range(3):
        reads()
    assert [count(user, url) for user, url in pages] == before
