"""The chart page's trends over HTTP: one blood-pressure chart with both pressures and a
legend, axes with round values, the unit as written and dates, a summary and a values table
for screen readers; the other hospital's patient stays out; no query per series."""

import datetime as dt
import re
from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.records import services
from portal.tenancy.scoping import unscoped


def _figure(page: str, code: str) -> str:
    return page[page.index(f'data-code="{code}"') :].split("</figure>")[0]


def _blood_pressures(patient, actor, readings, start):
    with unscoped():
        for i, (systolic, diastolic) in enumerate(readings):
            when = start + dt.timedelta(days=i)
            for code, value in (("8480-6", systolic), ("8462-4", diastolic)):
                services.observation_create(
                    actor=actor, patient=patient, code=code, display=code, value=Decimal(value),
                    unit="mm[Hg]", effective_at=when,
                )  # fmt: skip


def test_blood_pressure_is_one_chart_with_both_pressures(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    # One reading through the form, as a nurse or clinician records it; then five more.
    when = timezone.localtime().replace(second=0, microsecond=0) - dt.timedelta(days=6)
    response = client.post(
        f"/provider/patients/{a['patient'].pk}/blood-pressure/new/",
        {"systolic": "141", "diastolic": "92", "effective_at": when.strftime("%Y-%m-%dT%H:%M")},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    readings = [("128", "82"), ("131", "85"), ("125", "79"), ("122", "80"), ("118.5", "76")]
    _blood_pressures(a["patient"], a["clinician"], readings, when + dt.timedelta(days=1))

    page = client.get(f"/provider/patients/{a['patient'].pk}/").content.decode()
    assert 'data-code="8480-6"' not in page and 'data-code="8462-4"' not in page
    bp = _figure(page, "85354-9")
    assert "<figcaption>Blood pressure</figcaption>" in bp
    assert bp.count("<polyline ") == 2
    assert 'class="line sys"' in bp and 'class="line dia"' in bp
    legend = re.search(r'<ul class="trend-legend">(.*?)</ul>', bp).group(1)
    assert re.findall(r"</svg>([^<]+)</li>", legend) == ["Systolic", "Diastolic"]
    assert "Latest: <strong>118.5/76 mmHg</strong>" in bp
    # The axes: the unit as people write it, round values, dates of the readings' span.
    svg = re.search(r'<svg viewBox="0 0 (\d+) (\d+)" role="img" aria-label="([^"]+)"', bp)
    assert svg.group(3).startswith("Blood pressure in mmHg: 6 readings from ")
    assert "systolic 118.5 to 141; diastolic 76 to 92." in svg.group(3)
    assert '<text x="2" y="14" class="tick unit">mmHg</text>' in bp
    values = [int(v) for v in re.findall(r'text-anchor="end">(\d+)</text>', bp)]
    assert values == sorted(values) and values[0] <= 76 and values[-1] >= 141
    assert all(v % 5 == 0 for v in values) and len(set(values)) >= 3
    dates = re.findall(r'class="tick" text-anchor="middle">([^<]+)</text>', bp)
    assert len(dates) >= 2 and all(re.fullmatch(r"\d{1,2} [A-Z][a-z]{2}", d) for d in dates)
    # Every reading in the values table, newest first, with both pressures on one row.
    rows = re.findall(r'<tr><th scope="row">(.+?)</th><td>([^<]+)</td><td>([^<]+)</td>', bp)
    assert [(s, d) for _, s, d in rows] == [
        ("118.5", "76"),
        *reversed(readings[:-1]),
        ("141", "92"),
    ]
    oldest = f"{when.day} {when:%b %Y}, {when:%H:%M}"
    assert re.sub("<[^>]+>", "", rows[-1][0]) == oldest
    # One hospital: nothing to tell apart.
    assert "by-hospital" not in page and "trend-legend" not in _figure(page, "8867-4")


def test_a_chart_shows_no_other_patients_or_hospitals_values(client, sign_in, world):
    a, b = world["a"], world["b"]
    when = timezone.now() - dt.timedelta(days=2)
    _blood_pressures(b["patient"], b["clinician"], [("177", "111")], when)
    _blood_pressures(a["other"], a["clinician"], [("166", "101")], when)
    _blood_pressures(a["patient"], a["clinician"], [("120", "80")], when)
    sign_in(client, a["clinician"])
    page = client.get(f"/provider/patients/{a['patient'].pk}/").content.decode()
    bp = _figure(page, "85354-9")
    assert "Latest: <strong>120/80 mmHg</strong>" in bp
    for value in ("177", "111", "166", "101"):
        assert f"<td>{value}</td>" not in page and f"{value} mmHg" not in page
    # The other hospital's patient is not found at all (missing and forbidden alike).
    assert client.get(f"/provider/patients/{b['patient'].pk}/").status_code == 404


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_more_series_and_values_cost_no_query(client, sign_in, world):
    """The observations are one query whatever the number of series and values: the blood
    pressure chart, the hospitals and the values table read nothing more."""
    a = world["a"]
    sign_in(client, a["clinician"])
    url = f"/provider/patients/{a['patient'].pk}/"
    _queries(client, url)  # the first request of a process warms caches
    one_series = _queries(client, url)  # the world's heart rate
    start = timezone.now() - dt.timedelta(days=30)
    _blood_pressures(a["patient"], a["clinician"], [("120", "80")] * 3, start)
    with unscoped():
        for i in range(3):
            services.observation_create(
                actor=a["clinician"], patient=a["patient"], code="8310-5", display="Temp",
                value=Decimal("36.8"), unit="Cel", effective_at=start + dt.timedelta(hours=i),
            )  # fmt: skip
    assert _queries(client, url) == one_series
    _blood_pressures(a["patient"], a["clinician"], [("130", "85")] * 10, start)
    page = client.get(url).content.decode()
    assert _queries(client, url) == one_series
    assert page.count("<figure") == 3  # heart rate, blood pressure, temperature
