"""The SMART JavaScript client (fhirclient, from npm: tests/browser/package.json, vendored
for the demo app under portal/static/vendor/fhirclient) in Debian's chromium through
Playwright, against the live server: the demo app's standalone patient launch and an EHR
launch from the provider chart."""

from __future__ import annotations

import pytest

from portal.smart.services import smart_app_register
from tests import factories
from tests.conftest import current_code
from tests.provider.test_browser import watch_csp

pytestmark = pytest.mark.django_db(transaction=True)


def _register(live_server, *, ehr: bool = False):
    redirect = f"{live_server.url}/smart-demo/app/"
    app = smart_app_register(
        name="Demo SMART app", redirect_uris=[redirect],
        launch_url=f"{live_server.url}/smart-demo/" if ehr else "",
    )  # fmt: skip
    if ehr:
        app.application.smart_app.launch_url = (
            f"{live_server.url}/smart-demo/?client_id={app.client_id}"
        )
        app.application.smart_app.save()
    return app


def _sign_in(page, user, *, code: str | None = None) -> None:
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if code is not None:
        page.wait_for_url("**/accounts/login/verify/**")
        page.get_by_label("6-digit code").fill(code)
        page.get_by_role("button", name="Continue").click()


def _shown_observations(page) -> set[str]:
    page.wait_for_selector("body[data-observations=loaded]")
    return {
        page.locator("li.observation").nth(i).get_attribute("data-id")
        for i in range(page.locator("li.observation").count())
    }


def test_standalone_patient_launch_reads_own_observations_only(
    live_server,
    browser_page,
    world,
):
    a = world["a"]
    app = _register(live_server)
    page = browser_page
    violations = watch_csp(page)
    page.goto(f"{live_server.url}/smart-demo/?client_id={app.client_id}")
    page.wait_for_url("**/accounts/login/**")
    _sign_in(page, a["user"])
    page.wait_for_url("**/oauth/authorize/**")
    assert "Demo SMART app wants to connect" in page.inner_text("main")
    assert "Read your lab results, vital signs and other observations" in page.inner_text("main")
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url("**/smart-demo/app/**")
    assert _shown_observations(page) == {str(a["lab"].pk), str(a["vital"].pk)}
    page.wait_for_selector("body[data-conditions=refused]")
    assert not violations, violations


def test_ehr_launch_from_the_chart_gives_the_app_the_chart_patient(
    live_server,
    browser_page,
    world,
):
    a = world["a"]
    _register(live_server, ehr=True)
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/")
    _sign_in(page, a["clinician"], code=current_code(a["clinician"]))
    page.wait_for_url("**/provider/")
    page.goto(f"{live_server.url}/provider/patients/{a['patient'].pk}/")
    page.get_by_role("link", name="Launch app").click()
    page.get_by_role("button", name="Launch Demo SMART app").click()
    page.wait_for_url("**/oauth/authorize/**")
    assert "You launched it from the chart of" in page.inner_text("main")
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url("**/smart-demo/app/**")
    assert _shown_observations(page) == {str(a["lab"].pk), str(a["vital"].pk)}
    assert f"Records of patient {a['patient'].pk}." in page.inner_text("#patient")
