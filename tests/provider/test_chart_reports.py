"""Issue 17: the chart's timeline shows test reports (name, result values, text), imaging
studies (modality, body site, series), care plans (activities) and goals (status) in words,
with a constant number of queries whatever their number; another hospital's are 404; a
partial chart leaves them out and says so; the record page shows them in words."""

from __future__ import annotations

import base64
import datetime as dt
from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.records import services
from portal.records.models import Observation
from portal.tenancy.scoping import unscoped
from tests.partial_chart import partial_world

LIPIDS = {"coding": [{"system": "http://loinc.org", "code": "57698-3",
                      "display": "Lipid panel"}], "text": "Lipid panel"}  # fmt: skip


def _add(patient, actor, n: int, start: int = 0) -> None:
    with unscoped():
        for i in range(start, start + n):
            when = timezone.now() - dt.timedelta(days=i + 1)
            obs = services.observation_create(
                actor=actor, patient=patient, code="2093-3", display="Total cholesterol",
                value=Decimal(180 + i), unit="mg/dL", effective_at=when,
                category=Observation.Category.LABORATORY,
            )  # fmt: skip
            text = base64.b64encode(f"Report {i}: lipids within range.".encode()).decode()
            services.diagnostic_report_create(
                actor=actor, patient=patient, code=LIPIDS, effective_at=when,
                results=[{"observation": obs.pk, "display": "Total cholesterol"}],
                presented_form=[{"contentType": "text/plain", "data": text}],
            )  # fmt: skip
            services.imaging_study_create(
                actor=actor, patient=patient, started=when, number_of_series=1,
                series=[{"uid": f"1.2.{i}", "modality": {"code": "DX",
                         "display": "Digital Radiography"},
                         "bodySite": {"code": "51299004", "display": "Clavicle"}}],
            )  # fmt: skip
            services.care_plan_create(
                actor=actor, patient=patient, period_start=when,
                category=[{"text": "Diabetes self management plan"}],
                activities=[{"detail": {"code": {"text": "Diabetic diet"},
                                        "status": "in-progress"}}],
            )  # fmt: skip
            services.goal_create(
                actor=actor,
                patient=patient,
                description={"text": "HbA1c below 7.0"},
                achievement_status={"coding": [{"code": "in-progress"}]},
            )


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_the_timeline_shows_them_in_words(client, sign_in, world):
    a = world["a"]
    _add(a["patient"], a["clinician"], 1)
    sign_in(client, a["clinician"])
    html = client.get(f"/provider/patients/{a['patient'].pk}/").content.decode()
    assert "Test report" in html and "Lipid panel" in html
    assert "Total cholesterol <strong>180 mg/dL</strong>" in html
    assert "Report 0: lipids within range." in html
    assert "Imaging study" in html and "Digital Radiography of the clavicle: 1 series" in html
    assert "Care plan" in html and "Diabetic diet" in html and "In progress" in html
    assert "Health goal" in html and "HbA1c below 7.0" in html
    assert "57698-3" not in html  # codes are not words


def test_the_chart_query_count_does_not_grow_per_row(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    url = f"/provider/patients/{a['patient'].pk}/"
    _add(a["patient"], a["clinician"], 1)
    _queries(client, url)  # warms caches
    few = _queries(client, url)
    _add(a["patient"], a["clinician"], 12, start=1)
    assert _queries(client, url) == few


def test_the_record_page_shows_them_in_words(client, sign_in, world):
    a = world["a"]
    _add(a["patient"], a["clinician"], 1)
    sign_in(client, a["clinician"])
    from portal.records.models import CarePlan, DiagnosticReport, Goal, ImagingStudy

    with unscoped():
        rows = {m._meta.model_name: m.objects.get(patient=a["patient"])
                for m in (DiagnosticReport, CarePlan, Goal, ImagingStudy)}  # fmt: skip
    for kind, row in rows.items():
        page = client.get(f"/provider/records/{kind}/{row.pk}/")
        assert page.status_code == 200, kind
        html = page.content.decode()
        assert "{&#x27;" not in html and "[{" not in html, kind  # no Python values
        assert "Correct this record" not in html  # imported types have no correction form
    report = client.get(f"/provider/records/diagnosticreport/{rows['diagnosticreport'].pk}/")
    html = report.content.decode()
    assert "Report 0: lipids within range." in html
    assert "<strong>180 mg/dL</strong>" in html  # its result, with its value
    # Another hospital's clinician: 404 like a missing record.
    sign_in(client, world["b"]["clinician"])
    for kind, row in rows.items():
        assert client.get(f"/provider/records/{kind}/{row.pk}/").status_code == 404


def test_a_partial_chart_leaves_them_out(client, sign_in, consent_world, make_staff):
    w = partial_world(consent_world, make_staff)
    sign_in(client, w["clinician_b"])  # vital signs and laboratory results only
    html = client.get(f"/provider/patients/{w['patient'].pk}/").content.decode()
    assert "Lipid panel" not in html and "Diabetic diet" not in html
    assert "Test reports and imaging" in html and "Care plans and goals" in html  # withheld
    assert client.get(f"/provider/records/diagnosticreport/{w['report'].pk}/").status_code == 404
    sign_in(client, w["whole"])
    html = client.get(f"/provider/patients/{w['patient'].pk}/").content.decode()
    assert "Lipid panel" in html and "Diabetic diet" in html


def test_a_report_shared_without_the_labs_shows_no_values(
    client, sign_in, consent_world, make_staff
):
    """A consent that shares reports but not laboratory results: the report is shown, its
    results' values (laboratory observations) are not."""
    from consent import services as consent_services
    from portal.tenancy.models import Role

    w = partial_world(consent_world, make_staff)
    reader = make_staff(w["b"], Role.CLINICIAN)
    with unscoped():
        consent_services.consent_grant(
            patient=w["patient"], actor=w["account"], grantee_kind="practitioner",
            grantee_user=reader, scope_all=False, categories=["reports"],
        )  # fmt: skip
    sign_in(client, reader)
    html = client.get(f"/provider/patients/{w['patient'].pk}/").content.decode()
    assert "Lipid panel" in html and "Lipids within range." in html
    assert "6.1 %" not in html
    page = client.get(f"/provider/records/diagnosticreport/{w['report'].pk}/").content.decode()
    assert "Hemoglobin A1c" in page and "(not shown)" in page and "6.1 %" not in page
