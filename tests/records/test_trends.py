"""The trend charts' scales and drawing (records.trends), without a database: round value
ticks, date ticks in the reader's time zone, one blood-pressure figure, hospitals told apart."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from portal import wording
from portal.records import trends

NOW = dt.datetime(2026, 12, 6, 14, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (70, 135, [60, 80, 100, 120, 140]),
        (36.2, 37.9, [36, 36.5, 37, 37.5, 38]),
        (0.1, 0.25, [0.1, 0.15, 0.2, 0.25]),
        (5.8, 6.1, [5.8, 5.9, 6, 6.1]),
        (97, 97, [94, 96, 98, 100]),  # one value: a close scale around it
        (0, 0, [-1, -0.5, 0, 0.5, 1]),
    ],
)
def test_value_ticks_are_round_and_cover_the_values(low, high, ticks):
    found, decimals = trends.nice_ticks(low, high)
    assert found == ticks
    assert found[0] <= low and found[-1] >= high and 3 <= len(found) <= trends.Y_TICKS
    labels = [trends._value_label(v, decimals) for v in found]
    assert all(not label.endswith(".0") for label in labels)  # "36", not "36.0"


@pytest.mark.parametrize(
    ("span", "labels"),
    [
        (dt.timedelta(hours=3), [("12:00", "6 Dec"), ("13:00", ""), ("14:00", "")]),
        (
            dt.timedelta(hours=30),
            [("12:00", "5 Dec"), ("18:00", ""), ("00:00", "6 Dec"), ("06:00", ""), ("12:00", "")],
        ),
        (dt.timedelta(days=8), [("29 Nov", "2026"), ("1 Dec", ""), ("3 Dec", ""), ("5 Dec", "")]),
        (dt.timedelta(days=20), [("23 Nov", "2026"), ("30 Nov", "")]),  # Mondays
        (dt.timedelta(days=200), [("Jul", "2026"), ("Sep", ""), ("Nov", "")]),
        (dt.timedelta(days=400), [("Jan", "2026"), ("Apr", ""), ("Jul", ""), ("Oct", "")]),
        (dt.timedelta(days=3000), [("2020", ""), ("2022", ""), ("2024", ""), ("2026", "")]),
    ],
)
def test_date_ticks_fall_on_round_times_and_say_the_day_or_year_once(span, labels):
    ticks = trends.date_ticks(NOW - span, NOW, dt.UTC)
    assert [(label, context) for _, label, context in ticks] == labels
    assert all(NOW - span <= when <= NOW for when, _, _ in ticks)


def test_a_year_boundary_is_said_where_it_falls():
    start = dt.datetime(2026, 12, 20, tzinfo=dt.UTC)
    ticks = trends.date_ticks(start, start + dt.timedelta(days=20), dt.UTC)
    assert [(label, context) for _, label, context in ticks] == [
        ("21 Dec", "2026"), ("28 Dec", ""), ("4 Jan", "2027"),
    ]  # fmt: skip


def test_date_ticks_are_in_the_readers_time_zone():
    from zoneinfo import ZoneInfo

    lisbon_summer = dt.datetime(2026, 7, 1, 9, 0, tzinfo=dt.UTC)  # 10:00 in Lisbon (WEST)
    ticks = trends.date_ticks(lisbon_summer, lisbon_summer + dt.timedelta(hours=3), ZoneInfo(
        "Europe/Lisbon"
    ))  # fmt: skip
    assert [label for _, label, _ in ticks] == ["10:00", "11:00", "12:00", "13:00"]
    assert ticks[0][0] == lisbon_summer


def _series(code, values, *, hospitals=None, unit="mm[Hg]", step=dt.timedelta(days=1)):
    points = [(NOW - step * (len(values) - 1 - i), Decimal(v)) for i, v in enumerate(values)]
    return {
        "display": wording.measure_label(code), "unit": unit, "points": points,
        "hospitals": hospitals or [1] * len(values), "truncated": False,
    }  # fmt: skip


def test_blood_pressure_is_one_figure_with_both_pressures_and_a_legend():
    series = {
        "8867-4": _series("8867-4", ["72", "75"], unit="/min"),
        "8480-6": _series("8480-6", ["128", "131.5"]),
        "8462-4": _series("8462-4", ["82", "84"]),
    }
    with timezone.override("UTC"):
        page = trends.render_trends(series, {1: "St Mary's Hospital"})
    assert page.count("<figure") == 2
    assert 'data-code="8480-6"' not in page and 'data-code="8462-4"' not in page
    bp = page[page.index('data-code="85354-9"') :]
    assert bp.startswith('data-code="85354-9"><figcaption>Blood pressure</figcaption>')
    assert '<polyline points="' in bp and 'class="line sys"' in bp and 'class="line dia"' in bp
    legend = re.search(r'<ul class="trend-legend">(.*?)</ul>', bp).group(1)
    assert re.findall(r"</svg>(\w+)</li>", legend) == ["Systolic", "Diastolic"]
    assert "Latest: <strong>131.5/84 mmHg</strong>" in bp
    assert '<th scope="col">Systolic mmHg</th><th scope="col">Diastolic mmHg</th>' in bp
    row = '<th scope="row"><span class="nowrap">6 Dec 2026,</span> 14:05</th><td>131.5</td>'
    assert row + "<td>84</td>" in bp
    assert 'aria-label="Blood pressure in mmHg: 2 readings from 5 Dec 2026 to 6 Dec 2026;' in bp
    # One hospital: no hospital legend, no hospital column.
    assert "St Mary" not in page and "by-hospital" not in page


def test_values_from_two_hospitals_have_their_own_marker_and_a_legend():
    series = {"8867-4": _series("8867-4", ["72", "90", "74", "88"], hospitals=[1, 2, 1, 2])}
    names = {1: "St Mary's Hospital", 2: "Riverside General"}
    page = trends.render_trends(series, names)
    assert 'class="trend by-hospital"' in page
    legend = re.search(r'<ul class="trend-legend">(.*?)</ul>', page).group(1)
    assert "<circle" in legend and "<rect" in legend  # shapes, not only colours
    assert re.findall(r"</svg>([^<]+)</li>", legend) == ["St Mary&#x27;s Hospital", names[2]]
    plot = page[page.index('<svg viewBox="0 0 340') : page.index("</svg><p")]
    assert plot.count('class="mk h0"') >= 2 and plot.count('class="mk h1"') >= 2
    assert 'class="line one h0"' in plot and 'class="line one h1"' in plot  # a line each
    assert "<td>90</td><td>Riverside General</td>" in page
    assert "from St Mary&#x27;s Hospital and Riverside General" in page  # the summary


def test_text_and_labels_are_escaped():
    series = {"X-1": _series("X-1", ["1", "2"], unit="<b>")}
    series["X-1"]["display"] = "<script>alert(1)</script>"
    page = trends.render_trends(series, {1: "A & <B>", 2: "C"})
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page and "A &amp; &lt;B&gt;" in page


def test_the_vocabulary_of_charts():
    assert wording.measure_label("2339-0", "Glucose [Mass/volume] in Blood") == "Blood glucose"
    assert wording.measure_label("1234-5", "Something else") == "Something else"
    assert wording.short_date_label(NOW) == "6 Dec"
    assert wording.clock_label(NOW) == "14:05"
    assert wording.reading_time_label(NOW) == "6 Dec 2026, 14:05"
