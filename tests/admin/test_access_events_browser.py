"""The access events at 1280 x 800 in a real browser (Debian's chromium): the table fits
the screen (no horizontal scroll), the page breaks no CSP rule; a screenshot is kept."""

from __future__ import annotations

import os

from tests import factories
from tests.admin.conftest import _read
from tests.conftest import current_code
from tests.provider import test_browser
from tests.provider.test_browser import watch_csp

browser_page = test_browser.browser_page  # the fixture (Debian's chromium, never a download)

SHOTS = os.environ.get("PORTAL_SCREENSHOTS", "")


def _sign_in(page, base: str, user) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/accounts/login/verify/")
    page.get_by_label("6-digit code").fill(current_code(user))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()


def _overflow(page) -> int:
    return page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def test_access_events_fit_a_1280_px_screen(live_server, browser_page, world, auditor):
    for _ in range(3):  # a few more rows, with a reader from the other hospital
        _read(patient=world["patient_a"], actor=world["clinician_b"], from_hospital=world["b"])
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 800})
    violations = watch_csp(page)
    _sign_in(page, live_server.url, auditor)
    for name, query in (("list", ""), ("search", "?q=Doc+TorA"), ("bad-date", "?from=2026-13-45")):
        page.goto(f"{live_server.url}/admin/ledger/accessevent/{query}")
        assert _overflow(page) <= 0, name
        if SHOTS:
            page.screenshot(path=os.path.join(SHOTS, f"access-events-{name}.png"), full_page=True)
    assert "Not a date" in page.inner_text("body")
    assert not violations, violations


def test_provider_home_search_and_recent_patients_in_a_browser(
    live_server,
    browser_page,
    world,
):
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 800})
    violations = watch_csp(page)
    clinician = world["clinician_a"]
    _sign_in(page, live_server.url, clinician)
    page.goto(f"{live_server.url}/provider/patients/{world['patient_a'].pk}/")
    page.goto(f"{live_server.url}/provider/")
    assert "Smithfield, Jeremiah" in page.locator(".recent-patients").inner_text()
    page.get_by_label("Find a patient").fill("smithf, jer")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    assert page.get_by_role("link", name="Smithfield, Jeremiah").count() == 1
    assert _overflow(page) <= 0
    if SHOTS:
        page.goto(f"{live_server.url}/provider/")
        page.screenshot(path=os.path.join(SHOTS, "provider-home.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=os.path.join(SHOTS, "provider-home-phone.png"), full_page=True)
        assert _overflow(page) <= 0
    assert not violations, violations
