"""Issue 17: a Synthea patient's test reports, imaging, care plans and goals on the chart's
timeline and the patient's records page, in a real browser (Debian's chromium): shown in
words, no sideways scrolling at a desktop's or a phone's width, no CSP violation or script
error. Screenshots: tmp_path (REPORTS_SCREENSHOTS=<dir> keeps them)."""

import json
import os
from pathlib import Path

from portal.fhir.services import fhir_bundle_import
from portal.records.models import Patient
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests.fhir.conftest import SYNTHEA_DIR
from tests.provider.test_browser import browser_page, watch_csp  # noqa: F401 - a fixture
from tests.provider.test_chart_browser import _sign_in

# One with reports, care plans, goals and an imaging study.
BUNDLE = "Rudolf_Weber_a4b93263-c55f-4d39-8c4e-31dfba932181.json"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_a_synthea_chart_shows_reports_plans_goals_and_imaging(
    live_server,
    browser_page,  # noqa: F811 - the fixture imported above
    make_staff,
    hospital_a,
    hospital_b,
    tmp_path,
):
    clinician = make_staff(hospital_a, Role.CLINICIAN)
    make_staff(hospital_b, Role.CLINICIAN)
    source = json.loads((SYNTHEA_DIR / BUNDLE).read_text())
    report = fhir_bundle_import(hospital=hospital_a, bundle=source, actor=None)
    with unscoped():
        patient = Patient.objects.get(pk=report.patients[0])
    out = Path(os.environ.get("REPORTS_SCREENSHOTS") or tmp_path)
    page = browser_page
    violations = watch_csp(page)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(page, live_server.url, clinician, totp=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert page.goto(f"{live_server.url}/provider/patients/{patient.pk}/").status == 200
        timeline = page.locator("ol.timeline").inner_text()
        assert "Test report" in timeline
        assert page.evaluate(OVERFLOW) <= 0, f"the chart scrolls sideways at {width} px"
        page.screenshot(path=str(out / f"chart-reports-{width}.png"), full_page=True)
        box = page.locator("ol.timeline").bounding_box()
        assert box is not None
        page.screenshot(
            path=str(out / f"timeline-{width}.png"), full_page=True,
            clip={"x": 0, "y": box["y"] - 40, "width": width, "height": 1000},
        )  # fmt: skip
        for kind in ("Test report", "Care plan", "Imaging study"):
            row = page.locator("ol.timeline li", has_text=kind).first
            if row.count():
                box = row.bounding_box()
                assert box is not None
                page.screenshot(
                    path=str(out / f"timeline-{kind.split()[0].lower()}-{width}.png"),
                    full_page=True,
                    clip={"x": 0, "y": box["y"] - 10, "width": width, "height": 500},
                )  # fmt: skip
    assert not violations, violations
    assert not errors, errors
