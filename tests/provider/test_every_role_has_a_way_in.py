"""Issue 16, item 8: every role has a way in.

Hospital admins land on a page that leads into their admin, not on "No patients you may
open"; the header has an Admin link for whoever the admin site lets in (its own
has_permission); break-glass says what it does and can be ended early by the one who
opened it (anyone else, another hospital, an ended one: 404).
"""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from consent.models import BreakGlass, Notification
from ledger.models import Event
from portal.records.models import LiveGrant
from tests import factories

ADMIN_LINK = b'<a href="/admin/">Admin</a>'


def test_a_hospital_admin_lands_on_a_page_that_leads_into_the_admin(client, sign_in, consent_world):
    w = consent_world
    sign_in(client, w["admin_a"])
    home = client.get("/provider/")
    assert home.status_code == 200
    html = home.content.decode()
    assert "No patients you may open" not in html and "SM-100" not in html
    assert "Register a patient" not in html
    links = re.findall(r'<li><a href="(/admin/[^"]+)"', html)
    assert "/admin/tenancy/membership/" in links and "/admin/tenancy/department/" in links
    assert len(links) >= 4
    for link in links:  # every link works for them
        assert client.get(link).status_code == 200, link
    # Clinicians still get their patient list.
    sign_in(client, w["clinician_a"])
    html = client.get("/provider/").content.decode()
    assert "SM-100" in html and "/admin/tenancy/membership/" not in html


def test_the_header_has_an_admin_link_for_those_the_admin_lets_in(client, sign_in, consent_world):
    w = consent_world
    auditor = factories.UserFactory(is_superuser=True, is_staff=True)
    factories.TOTPDeviceFactory(user=auditor)
    for user, shown in (
        (w["admin_a"], True),
        (auditor, True),
        (w["clinician_a"], False),
        (w["account"], False),
    ):
        sign_in(client, user)
        page = client.get("/accounts/two-factor/")
        assert page.status_code == 200
        assert (ADMIN_LINK in page.content) is shown, user
    # Without the second factor the admin does not let them in: no link either.
    sign_in(client, w["admin_a"], verified=False)
    page = client.get("/accounts/two-factor/")
    assert ADMIN_LINK not in page.content


def test_the_break_glass_button_says_what_it_does(client, sign_in, consent_world):
    sign_in(client, consent_world["clinician_b"])
    home = client.get("/provider/").content.decode()
    assert "Open a chart in an emergency" in home
    assert "every read is flagged" in home and "4 hours" in home
    page = client.get("/provider/break-glass/").content.decode()
    assert "Open the chart in an emergency" in page and "4 hours" in page


def _break_glass(client, w):
    details = {"hospital": w["a"].pk, "mrn": "SM-100", "birth_date": "1970-02-03"}
    response = client.post("/provider/break-glass/", {**details, "reason": "Unconscious, no ID"})
    assert response.status_code == 302
    return BreakGlass.objects.get()


@pytest.fixture
def glass_world(consent_world, make_staff):
    from portal.tenancy.models import Role

    w = dict(consent_world)
    w["colleague_b"] = make_staff(w["b"], Role.CLINICIAN)  # same hospital, not the opener
    return w


def test_break_glass_can_be_ended_early_by_the_one_who_opened_it(client, sign_in, glass_world):
    w = glass_world
    chart_url = f"/provider/patients/{w['patient'].pk}/"
    sign_in(client, w["clinician_b"])
    glass = _break_glass(client, w)
    end_url = f"/provider/break-glass/{glass.row_uuid}/end/"
    chart = client.get(chart_url).content.decode()
    assert "End emergency access now" in chart and end_url in chart
    assert client.get(end_url).status_code == 405
    # Anyone else (a colleague, the chart hospital's clinician or admin, the patient): 404,
    # and the access stays.
    for other in (w["colleague_b"], w["clinician_a"], w["admin_a"], w["admin_b"]):
        sign_in(client, other)
        assert client.post(end_url).status_code == 404, other
    sign_in(client, w["account"])
    assert client.post(end_url).status_code in (403, 404)
    assert LiveGrant.objects.filter(source=glass.source).exists()
    # Unknown or malformed ids: the same 404.
    sign_in(client, w["clinician_b"])
    for bad in ("00000000-0000-0000-0000-000000000000", "nope"):
        assert client.post(f"/provider/break-glass/{bad}/end/").status_code == 404
    before_notices = Notification.objects.count()
    response = client.post(end_url)
    assert response.status_code == 302 and response.url == "/provider/"
    # The grant is gone at once, the row says when it ended, the ledger records it.
    assert client.get(chart_url).status_code == 404
    assert not LiveGrant.objects.filter(source=glass.source).exists()
    glass.refresh_from_db()
    assert glass.expires_at <= timezone.now()
    ended = Event.objects.get(kind="breakglass.ended")
    assert (ended.actor_id, ended.patient_id, ended.hospital_id) == (
        w["clinician_b"].pk, w["patient"].pk, w["a"].pk,
    )  # fmt: skip
    assert Event.objects.filter(kind="grant.removed").exists()
    # The patient and the chart hospital's admins are told; the reads stay in the log.
    told = Notification.objects.filter(text__contains="ended")
    assert Notification.objects.count() == before_notices + 2
    assert {n.user_id for n in told} == {w["account"].pk, w["admin_a"].pk}
    sign_in(client, w["account"])
    log = client.get("/patient/access/").content
    assert b"break-glass" in log and b"Rui Costa" in log
    # Ending it again: nothing left to end.
    sign_in(client, w["clinician_b"])
    assert client.post(end_url).status_code == 404
    assert Event.objects.filter(kind="breakglass.ended").count() == 1


def test_a_chart_opened_without_break_glass_offers_no_end_button(client, sign_in, consent_world):
    w = consent_world
    sign_in(client, w["clinician_a"])
    chart = client.get(f"/provider/patients/{w['patient'].pk}/").content
    assert b"End emergency access now" not in chart
