"""The trend charts in a real browser (Debian's chromium) at a desktop's and a phone's width:
the clinician's chart and the patient's own records page fit the screen without sideways
scrolling, their axis text is at least 12 px as shown, blood pressure is one chart with its
legend, hospitals are named, and the values table opens. Screenshots: tmp_path."""

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from portal.records import services
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories
from tests.conftest import current_code
from tests.provider.test_browser import browser_page, watch_csp  # noqa: F401 - a fixture

WIDTHS = (1280, 390)
# Each chart's smallest text as shown (its font-size times the SVG's scale), and how far the
# page is wider than the window.
MEASURE = """() => {
  const sizes = [];
  for (const svg of document.querySelectorAll('svg.trend-svg')) {
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    for (const t of svg.querySelectorAll('text')) {
      sizes.push(parseFloat(getComputedStyle(t).fontSize) * scale);
    }
  }
  return {
    overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    smallest: Math.min(...sizes), texts: sizes.length,
    charts: document.querySelectorAll('svg.trend-svg').length,
  };
}"""


def _sign_in(page, base, user, *, totp: bool) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if totp:
        page.wait_for_url("**/accounts/login/verify/")
        page.get_by_label("6-digit code").fill(current_code(user))
        page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()


def _check_widths(page, url, tmp_path, name, charts) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        assert page.goto(url).status == 200
        found = page.evaluate(MEASURE)
        assert found["charts"] == charts, found
        assert found["overflow"] <= 0, f"{name} at {width} px scrolls sideways: {found}"
        assert found["smallest"] >= 12, f"{name} at {width} px has text below 12 px: {found}"
        bp = page.locator('figure[data-code="85354-9"]')
        assert bp.locator(".trend-legend").inner_text().split("\n")[:2] == ["Systolic", "Diastolic"]
        assert (
            bp.locator("svg[role=img]")
            .get_attribute("aria-label")
            .startswith("Blood pressure in mmHg:")
        )
        # The values table opens and still fits.
        bp.locator("summary").click()
        assert bp.locator("table.trend-table tbody tr").first.is_visible()
        assert page.evaluate(MEASURE)["overflow"] <= 0
        page.screenshot(path=str(tmp_path / f"{name}-{width}.png"), full_page=True)


def test_charts_read_well_on_a_desktop_and_a_phone(
    live_server,
    browser_page,  # noqa: F811 - the fixture imported above
    make_staff,
    make_patient_user,
    hospital_a,
    hospital_b,
    tmp_path,
):
    clinician = make_staff(hospital_a, Role.CLINICIAN)
    other = make_staff(hospital_b, Role.CLINICIAN)
    user, (at_a, at_b) = make_patient_user(hospital_a, hospital_b)
    start = timezone.now() - dt.timedelta(days=60)
    with unscoped():
        for i in range(12):
            reg, actor = (at_a, clinician) if i % 3 else (at_b, other)
            when = start + dt.timedelta(days=5 * i, hours=i % 5)
            for code, value, unit in (
                ("8480-6", 118 + (i * 7) % 20, "mm[Hg]"),
                ("8462-4", 74 + (i * 5) % 14, "mm[Hg]"),
                ("8867-4", 64 + (i * 11) % 25, "/min"),
                ("8310-5", Decimal("36.4") + Decimal((i * 3) % 9) / 10, "Cel"),
            ):
                services.observation_create(
                    actor=actor, patient=reg, code=code, display=code, value=Decimal(value),
                    unit=unit, effective_at=when,
                )  # fmt: skip
    page = browser_page
    violations = watch_csp(page)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    base = live_server.url

    _sign_in(page, base, clinician, totp=True)
    _check_widths(page, f"{base}/provider/patients/{at_a.pk}/", tmp_path, "chart", charts=3)

    # The patient, in a fresh session: their records at both hospitals, told apart.
    context = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    mine = context.new_page()
    mine_violations = watch_csp(mine)
    mine.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(mine, base, user, totp=False)
    url = f"{base}/patient/records/?category=vitals"
    _check_widths(mine, url, tmp_path, "my-records", charts=3)
    legend = mine.locator('figure[data-code="85354-9"] .trend-legend').inner_text()
    assert "St Mary's Hospital" in legend and "Riverside General" in legend
    context.close()
    assert not violations and not mine_violations, violations + mine_violations
    assert not errors, errors
