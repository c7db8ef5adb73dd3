"""End to end in a real browser (Playwright driving Debian's chromium, never a download):
a clinician signs in with TOTP, finds a patient, records a blood pressure and sees it on
the chart, and the site's Content-Security-Policy refuses nothing on the way."""

import datetime as dt
import json
import os
import shutil

import pytest

from portal.records import services
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories
from tests.conftest import current_code

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


# Reports each CSP violation of every document a page loads as a console line (a line survives
# the navigation that follows, where a list kept on window would not).
RECORD_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("csp-violation " + JSON.stringify({
    page: location.pathname, directive: e.violatedDirective, blocked: e.blockedURI,
    sample: e.sample, source: e.sourceFile, line: e.lineNumber,
  }));
});
"""


def watch_csp(page) -> list[dict]:
    """The CSP violations of every document `page` loads from now on (a live list)."""
    violations: list[dict] = []

    def on_console(message) -> None:
        if message.text.startswith("csp-violation "):
            violations.append(json.loads(message.text.removeprefix("csp-violation ")))

    page.on("console", on_console)
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    return violations


@pytest.fixture
def browser_page(tmp_path):
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: `make test` installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed; `make test` installs it")
    # Playwright's sync API runs an event loop in this thread; the ORM calls made by the test
    # itself between browser steps are ordinary synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(15_000)
        yield page
        page.screenshot(path=str(tmp_path / "last.png"), full_page=True)
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def test_clinician_records_a_blood_pressure_and_sees_it(
    live_server, browser_page, make_staff, hospital_a, hospital_b
):
    clinician = make_staff(hospital_a, Role.CLINICIAN, username="dr.browser")
    make_staff(hospital_b, Role.CLINICIAN)
    with unscoped():
        patient = services.patient_register(
            hospital=hospital_a, mrn="E2E-42", given_name="Edith", family_name="Endtoend",
            birth_date=dt.date(1961, 6, 1),
        )  # fmt: skip
        services.patient_register(
            hospital=hospital_b, mrn="E2E-43", given_name="Other", family_name="Hospital",
            birth_date=dt.date(1961, 6, 1),
        )  # fmt: skip
    page = browser_page
    violations = watch_csp(page)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(clinician.username)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/accounts/login/verify/")
    page.get_by_label("6-digit code").fill(current_code(clinician))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/provider/")
    assert "St Mary" in page.inner_text("header")

    page.get_by_label("Find a patient").fill("E2E-42")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Endtoend, Edith").click()
    page.wait_for_url(f"**/provider/patients/{patient.pk}/")

    page.get_by_role("link", name="Record blood pressure").click()
    page.get_by_label("Systolic").fill("128")
    page.get_by_label("Diastolic").fill("82")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"**/provider/patients/{patient.pk}/")
    assert "Blood pressure 128/82 mmHg recorded." in page.inner_text("main")
    # One blood-pressure chart with both pressures (issue 16), in mmHg as people write it.
    pressure = page.locator('figure[data-code="85354-9"]')
    assert "Latest: 128/82 mmHg" in pressure.inner_text()
    assert pressure.locator("svg[role=img]").count() == 1
    assert pressure.locator("svg[role=img] polyline.line").count() == 2
    assert page.locator('figure[data-code="8480-6"], figure[data-code="8462-4"]').count() == 0
    assert not violations, violations
