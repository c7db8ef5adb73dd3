"""Issue 5 end to end in a real browser (Debian's chromium through Playwright) with a real
Celery worker anchoring the ledger: a patient grants a riverside clinician access, the
clinician opens the chart, the patient sees that access under "who accessed my records" and
verifies its receipt, the patient revokes, and the clinician is denied."""

import datetime as dt
import os
import shutil
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.records import services
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories
from tests.conftest import current_code
from tests.provider.test_browser import ARGS, CHROMIUM, watch_csp


@pytest.fixture
def two_browsers(tmp_path):
    """One browser, two separate sessions (patient and clinician side by side)."""
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: `make test` installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed; `make test` installs it")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pages = []
        for _ in range(2):
            page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            page.set_default_timeout(20_000)
            pages.append(page)
        yield pages
        for i, page in enumerate(pages):
            page.screenshot(path=str(tmp_path / f"last-{i}.png"), full_page=True)
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def _sign_in(page, base, user, *, totp=False):
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if totp:
        page.wait_for_url("**/accounts/login/verify/")
        page.get_by_label("6-digit code").fill(current_code(user))
        page.get_by_role("button", name="Continue").click()


def test_patient_grants_sees_verifies_and_revokes(
    live_server, two_browsers, start_worker, make_staff, hospital_a, hospital_b
):
    start_worker()  # anchors the ledger, as in production
    base = live_server.url
    make_staff(hospital_a, Role.CLINICIAN)
    clinician = make_staff(hospital_b, Role.CLINICIAN, first_name="Rui", last_name="Costa")
    account = factories.UserFactory(username="pat.e2e")
    with unscoped():
        patient = services.patient_register(
            hospital=hospital_a, mrn="SM-E2E", given_name="Pat", family_name="Jones",
            birth_date=dt.date(1970, 2, 3), user=account,
        )  # fmt: skip
        services.observation_create(
            actor=None, patient=patient, code="8867-4", display="Heart rate", value=Decimal(72),
            unit="/min", effective_at=timezone.now() - dt.timedelta(hours=1),
        )  # fmt: skip
    me, doctor = two_browsers
    violations = {"patient": watch_csp(me), "clinician": watch_csp(doctor)}
    chart_url = f"{base}/provider/patients/{patient.pk}/"

    # The riverside clinician cannot open the chart yet.
    _sign_in(doctor, base, clinician, totp=True)
    doctor.wait_for_url("**/provider/")
    assert doctor.goto(chart_url).status == 404

    # The patient shares all records with that clinician.
    _sign_in(me, base, account)
    me.wait_for_url("**/patient/")
    me.get_by_role("link", name="My consents").first.click()
    me.get_by_role("link", name="Share my records").click()
    me.get_by_label("One practitioner").check()
    me.get_by_label("Practitioner", exact=True).select_option(label="Rui Costa")
    me.get_by_role("button", name="Save").click()
    me.wait_for_url("**/patient/consents/")
    assert "Consent given" in me.inner_text("main")
    assert "Rui Costa" in me.inner_text("table")

    # The clinician finds it under "Shared with me" and opens the chart.
    doctor.goto(f"{base}/provider/")
    doctor.get_by_role("link", name="Shared with me").click()
    doctor.get_by_role("link", name="Jones, Pat").click()
    doctor.wait_for_url(chart_url)
    assert "Shared with you by the patient's consent" in doctor.inner_text("main")

    # The patient sees the access and verifies its receipt (once the worker anchored it).
    me.get_by_role("link", name="Who accessed my records").first.click()
    row = me.locator("tr", has_text="Rui Costa")
    assert "Opened your chart" in row.inner_text()
    row.get_by_role("link", name="Verify").click()
    me.wait_for_url("**/verify/")
    for _ in range(40):
        if "Verified: entry" in me.inner_text("main"):
            break
        me.wait_for_timeout(250)
        me.reload()
    assert "Verified: entry" in me.inner_text("main")

    # The patient revokes; the clinician's very next request is denied.
    me.get_by_role("link", name="My consents").first.click()
    me.get_by_role("button", name="Revoke").click()
    assert "Consent revoked" in me.inner_text("main")
    assert doctor.goto(chart_url).status == 404
    assert not any(violations.values()), violations  # the site's CSP refused nothing
