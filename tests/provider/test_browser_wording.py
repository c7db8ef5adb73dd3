"""In a real browser: the portal learns the browser's time zone (portal/static/portal/
timezone.js, a file the CSP allows) and shows times in it; the pages that speak words render
at desktop and phone widths without overflow. Screenshots go to $WORDS_SHOTS if set."""

import datetime as dt
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from portal.records import services
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories
from tests.conftest import current_code
from tests.provider.test_browser import ARGS, CHROMIUM, watch_csp

WHEN = dt.datetime(2026, 12, 6, 5, 5, tzinfo=dt.UTC)


@pytest.fixture
def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip("chromium is not installed; `make test` installs it")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def _shot(page, name: str) -> None:
    folder = os.environ.get("WORDS_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{folder}/{name}.png", full_page=True)


def _overflows(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")


def test_times_follow_the_browsers_time_zone_at_desktop_and_phone_sizes(
    live_server, browser, make_staff, hospital_a, hospital_b
):
    clinician = make_staff(hospital_a, Role.CLINICIAN, first_name="Ana", last_name="Silva")
    make_staff(hospital_b, Role.CLINICIAN)
    with unscoped():
        patient = services.patient_register(
            hospital=hospital_a, mrn="TZ-1", given_name="Tomas", family_name="Zone",
            birth_date=dt.date(1961, 6, 1),
        )  # fmt: skip
        obs = services.observation_create(
            actor=clinician, patient=patient, code="59408-5", display="Oxygen saturation",
            value=Decimal("97.000"), unit="%", effective_at=WHEN,
        )  # fmt: skip
    context = browser.new_context(timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    violations = watch_csp(page)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(clinician.username)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/accounts/login/verify/")
    page.get_by_label("6-digit code").fill(current_code(clinician))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/provider/")
    assert "Ana Silva" in page.inner_text("header")
    assert "Asia/Tokyo" in page.inner_text("footer")

    pages = {
        "chart": f"/provider/patients/{patient.pk}/",
        "record": f"/provider/records/observation/{obs.pk}/",
        "upload": f"/provider/patients/{patient.pk}/documents/new/",
    }
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in pages.items():
            page.goto(f"{live_server.url}{path}")
            main = page.inner_text("main")
            if name != "upload":
                assert "6 Dec 2026, 14:05" in main, name
            assert not _overflows(page), (name, width)
            _shot(page, f"{name}-{width}")
    assert "97 %" in page.goto(f"{live_server.url}{pages['record']}").text()
    assert (
        "PDF, PNG, JPEG or plain text, up to"
        in page.goto(f"{live_server.url}{pages['upload']}").text()
    )
    assert not violations, violations
    context.close()


def test_patient_reads_who_opened_their_records_in_words(
    live_server, browser, client, sign_in, make_staff, make_patient_user, hospital_a, hospital_b
):
    clinician = make_staff(hospital_a, Role.CLINICIAN, first_name="Ana", last_name="Silva")
    owner, (reg, _other) = make_patient_user(hospital_a, hospital_b)
    assert sign_in(client, clinician).get(f"/provider/patients/{reg.pk}/").status_code == 200
    context = browser.new_context(
        timezone_id="Europe/Lisbon", viewport={"width": 390, "height": 900}
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    violations = watch_csp(page)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(owner.username)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/patient/")
    page.goto(f"{live_server.url}/patient/access/")
    assert "Ana Silva, Clinician" in page.inner_text("main")
    assert "Europe/Lisbon" in page.inner_text("footer")
    _shot(page, "patient-access-390")
    page.get_by_role("link", name="Verify").first.click()
    main = page.inner_text("main")
    assert "Opened a chart" in main and "chart.read" not in main
    _shot(page, "patient-verify-390")
    assert not violations, violations
    context.close()
