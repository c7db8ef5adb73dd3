"""Trend charts drawn on the server as SVG: no JavaScript, no CDN, no inline styles (the
site's CSP forbids them; every look is a class in portal/static/portal/site.css).

What makes them readable:
- the SVG's viewBox is about as wide as a chart is shown (a third of a desktop page, a
  phone's width: ~330 px), so its 13 px text stays ~13 px on the screen;
- round y ticks ("nice numbers") with the unit as people write it, date ticks in the reader's
  time zone ("3 Dec", or "14:00" over a short span, the day or year under the first tick and
  wherever it changes), gridlines;
- systolic and diastolic pressure in one chart (solid and dashed lines, a legend);
- when a page's values come from more than one hospital, each hospital's values have their
  own marker shape and colour, named in a legend;
- role="img" with a summary for screen readers, and every drawn value in a table (inside a
  details element) with its time and hospital.

Rendering is string building with f-strings and html.escape (as records.templatetags.charts
explains: a chart draws up to TREND_POINTS values per series, and the chart page is
benchmarked). Every value interpolated is escaped here or is a number formatted here.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import tzinfo as TzInfo
from typing import Any

from django.conf import settings
from django.utils import timezone

from portal import wording
from portal.records.catalog import DIASTOLIC, SYSTOLIC

# The viewBox, in the px the chart is about as wide as on the screen (see the module doc).
W, H = 340, 206
PAD_T, PAD_R, PAD_B = 26, 16, 40  # the unit above the plot; two lines of dates below it
FONT = 13  # .trend-svg text's font-size in site.css (the label widths below estimate it)
CHAR = 7.4  # a digit's advance at FONT px in a sans-serif (0.57 em), for the padding maths
X_TICKS, Y_TICKS = 5, 5  # at most: ~58 px between date labels, ~28 px between value lines
BLOOD_PRESSURE = "85354-9"  # LOINC's blood pressure panel: the combined chart's data-code
BP_PARTS = ((SYSTOLIC.code, "sys"), (DIASTOLIC.code, "dia"))
MARKERS = ("circle", "square", "triangle", "diamond")  # per hospital, with a colour each


@dataclass
class Line:
    """One drawn line: a series, or one half of blood pressure."""

    code: str
    key: str  # the CSS class of its line and markers: "one", "sys" or "dia"
    label: str  # its name in the legend and the values table
    points: Sequence[tuple[datetime, Any]]
    hospitals: Sequence[int]


@dataclass
class _Page:
    """What every figure of a page shares."""

    hospitals: dict[int, str]  # names by id, in the page's order
    order: dict[int, int]  # each hospital's marker and colour (its place in that order)
    by_hospital: bool  # the page's values come from more than one hospital
    tz: TzInfo | None  # the reader's time zone


def render_trends(series: dict[str, dict[str, Any]], hospitals: dict[int, str]) -> str:
    """Every series of a chart page as figures, in the series' order; systolic and diastolic
    pressure as one blood-pressure figure where the first of them was."""
    page = _Page(
        hospitals=hospitals,
        order={hid: i for i, hid in enumerate(hospitals)},
        by_hospital=len(hospitals) > 1,
        tz=timezone.get_current_timezone() if settings.USE_TZ else None,
    )
    sys_s, dia_s = series.get(SYSTOLIC.code), series.get(DIASTOLIC.code)
    merge_bp = sys_s is not None and dia_s is not None and str(sys_s["unit"]) == str(dia_s["unit"])
    out = []
    bp_drawn = False
    for code, s in series.items():
        if merge_bp and code in (SYSTOLIC.code, DIASTOLIC.code):
            if bp_drawn:
                continue
            bp_drawn = True
            parts = [(series[c], c, key) for c, key in BP_PARTS]
            lines = [
                Line(c, key, wording.BLOOD_PRESSURE_LINE_LABELS[c], p["points"], _ids(p))
                for p, c, key in parts
            ]
            title = wording.measure_label(BLOOD_PRESSURE)
            truncated = any(p.get("truncated") for p, _, _ in parts)
            out.append(_figure(BLOOD_PRESSURE, title, str(s["unit"]), lines, truncated, page))
            continue
        title = wording.measure_label(code, s["display"])
        line = Line(code, "one", title, s["points"], _ids(s))
        out.append(_figure(code, title, str(s["unit"]), [line], bool(s.get("truncated")), page))
    return "".join(out)


def _ids(s: dict[str, Any]) -> Sequence[int]:
    # A series made without hospitals (an older caller): one unnamed source.
    return s.get("hospitals") or [0] * len(s["points"])


# --- scales ---------------------------------------------------------------------------------


def nice_ticks(low: float, high: float, most: int = Y_TICKS) -> tuple[list[float], int]:
    """Round tick values covering [low, high] (steps of 1, 2, 2.5 or 5 times a power of ten,
    at most `most` of them) and the decimals their labels need."""
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(low) * 0.03 or 1.0  # a single value: a close scale around it
        low, high = low - pad, high + pad
    raw = (high - low) / max(most - 1, 1)
    for _ in range(4):
        power = 10.0 ** math.floor(math.log10(raw))
        for mult in (1.0, 2.0, 2.5, 5.0, 10.0):
            step = mult * power
            if step >= raw * (1 - 1e-9):
                break
        first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
        if last - first + 1 <= most:
            break
        raw = step * 1.01  # too many once rounded out to whole steps: the next step up
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if mult == 2.5 else 0)
    return [round(i * step, decimals + 2) for i in range(first, last + 1)], decimals


def _value_label(value: float, decimals: int) -> str:
    """A tick's value with the decimals its step needs, none trailing: "36", "36.5"."""
    text = f"{value:.{decimals}f}"
    if decimals:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


# Date steps, smallest first: (unit, count, about how many seconds).
_STEPS = (
    [("hour", n, 3600 * n) for n in (1, 2, 3, 6, 12)]
    + [("day", n, 86400 * n) for n in (1, 2, 3, 7, 14)]
    + [("month", n, 2629746 * n) for n in (1, 2, 3, 6)]
    + [("year", n, 31556952 * n) for n in (1, 2, 5, 10, 20, 50, 100)]
)


def date_ticks(
    start: datetime, end: datetime, tz: TzInfo | None, most: int = X_TICKS
) -> list[tuple[datetime, str, str]]:
    """Ticks on round local times between start and end: (when, label, context), where the
    context (the day under an hour, the year under a day or month) is given on the first
    tick and wherever it changes, else "". Hours "14:00", days "3 Dec", months "Dec"."""
    if tz is not None:
        start, end = start.astimezone(tz), end.astimezone(tz)
    span = (end - start).total_seconds()
    # The smallest step that gives at least two ticks and at most `most` (else one tick).
    chosen: tuple[str, list[datetime]] | None = None
    for unit, n, seconds in _STEPS:
        if span / seconds > most + 1:  # too many for sure
            continue
        ticks = [t for t in _steps(start, end, unit, n, tz) if start <= t <= end]
        if 0 < len(ticks) <= most and (chosen is None or len(ticks) > 1):
            chosen = (unit, ticks)
            if len(ticks) > 1:
                break
    unit, ticks = chosen or ("year", [])
    out = []
    seen = None
    for t in ticks:
        if unit == "hour":
            label, context = wording.clock_label(t), wording.short_date_label(t)
        elif unit == "day":
            label, context = wording.short_date_label(t), str(t.year)
        elif unit == "month":
            label, context = wording.MONTH_ABBREVIATIONS[t.month - 1], str(t.year)
        else:
            label, context = str(t.year), ""
        out.append((t, label, context if context != seen else ""))
        seen = context
    return out


_HOUR, _DAY = timedelta(hours=1), timedelta(days=1)


def _steps(start: datetime, end: datetime, unit: str, n: int, tz) -> Iterable[datetime]:
    """Local wall times on `n`-unit boundaries from before `start` to past `end`."""
    zone = start.tzinfo if tz is not None else None
    limit = end.replace(tzinfo=None) + 2 * _HOUR  # a DST shift at the end is no tick
    y, m = start.year, start.month
    step = None
    if unit == "hour":
        wall = datetime(y, m, start.day, start.hour - start.hour % n)
        step = n * _HOUR
    elif unit == "day":
        wall = datetime(y, m, start.day)
        # Day 1 of the proleptic calendar is a Monday: weeks and fortnights start on one.
        wall -= ((wall.toordinal() - 1) % n) * _DAY
        step = n * _DAY
    elif unit == "month":
        wall = datetime(y, m - (m - 1) % n, 1)
    else:
        wall = datetime(max(y - y % n, 1), 1, 1)
    for _ in range(1000):
        if wall > limit:
            return
        yield wall.replace(tzinfo=zone) if zone is not None else wall
        if step is not None:
            wall += step
        elif unit == "month":
            month = wall.month - 1 + n
            wall = datetime(wall.year + month // 12, month % 12 + 1, 1)
        elif wall.year + n > 9999:
            return
        else:
            wall = datetime(wall.year + n, 1, 1)


# --- drawing --------------------------------------------------------------------------------


def _marker(shape: str, x: float, y: float, r: float, cls: str, tip: str) -> str:
    title = f"<title>{tip}</title>" if tip else ""
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:g}" class="{cls}">{title}</circle>'
    if shape == "square":
        s = r * 0.9
        return (
            f'<rect x="{x - s:.1f}" y="{y - s:.1f}" width="{2 * s:.1f}" height="{2 * s:.1f}" '
            f'class="{cls}">{title}</rect>'
        )
    if shape == "triangle":
        s = r * 1.25
        pts = f"{x:.1f},{y - s:.1f} {x + s:.1f},{y + s * 0.8:.1f} {x - s:.1f},{y + s * 0.8:.1f}"
    else:  # diamond
        s = r * 1.3
        pts = f"{x:.1f},{y - s:.1f} {x + s:.1f},{y:.1f} {x:.1f},{y + s:.1f} {x - s:.1f},{y:.1f}"
    return f'<polygon points="{pts}" class="{cls}">{title}</polygon>'


def _key(line_key: str | None, shape: str | None, marker_cls: str) -> str:
    """A legend's sample: a stretch of line, a marker, or both."""
    parts = []
    if line_key is not None:
        parts.append(f'<line x1="1" y1="7" x2="27" y2="7" class="line {line_key}"/>')
    if shape is not None:
        parts.append(_marker(shape, 14, 7, 4, marker_cls, ""))
    return (
        '<svg class="key" viewBox="0 0 28 14" width="28" height="14" aria-hidden="true" '
        f'focusable="false">{"".join(parts)}</svg>'
    )


def _figure(
    code: str,
    title: str,
    unit_code: str,
    lines: list[Line],
    truncated: bool,
    page: _Page,
) -> str:
    e = _e
    hospitals, order, by_hospital, tz = page.hospitals, page.order, page.by_hospital, page.tz
    drawn = [ln for ln in lines if ln.points]
    if not drawn:
        return (
            f'<figure class="trend" data-code="{e(code)}"><figcaption>{e(title)}</figcaption>'
            f'<p class="muted">No values.</p></figure>'
        )
    unit = wording.unit_label(unit_code)
    unit_sp = e(f" {unit}" if unit else "")
    # Each time once: its timestamp and its words in the reader's time zone (a blood
    # pressure's two values share theirs).
    stamps: dict[datetime, tuple[float, str]] = {}
    for ln in drawn:
        for when, _ in ln.points:
            if when not in stamps:
                local = when.astimezone(tz) if tz is not None and when.tzinfo else when
                stamps[when] = (when.timestamp(), wording.reading_time_label(local))
    values = [float(p[1]) for ln in drawn for p in ln.points]
    first, last = min(stamps), max(stamps)
    t0, t1 = stamps[first][0], stamps[last][0]
    yt, decimals = nice_ticks(min(values), max(values))
    lo, hi = yt[0], yt[-1]
    ylabels = [_value_label(v, decimals) for v in yt]
    pad_l = round(10 + CHAR * max(len(label) for label in ylabels))
    plot_w, plot_h = W - pad_l - PAD_R, H - PAD_T - PAD_B
    # A little room either side of the first and last value (a single time: three hours
    # each side, labelled by the hour), so that no marker sits on an axis.
    edge = (t1 - t0) * 0.04 if t1 > t0 else 10800.0
    d0 = t0 - edge
    x_scale, y_scale = plot_w / (t1 - t0 + 2 * edge), plot_h / (hi - lo)
    bottom, right = H - PAD_B, W - PAD_R

    svg = []
    for v, label in zip(yt, ylabels, strict=True):
        y = PAD_T + (hi - v) * y_scale
        svg.append(
            f'<line x1="{pad_l}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{pad_l - 6}" y="{y + 4.5:.1f}" class="tick" text-anchor="end">{label}</text>'
        )
    if unit:
        svg.append(f'<text x="2" y="14" class="tick unit">{e(unit)}</text>')
    span = timedelta(seconds=edge)
    for when, label, context in date_ticks(first - span, last + span, tz):
        x = pad_l + (when.timestamp() - d0) * x_scale
        half = CHAR * max(len(label), len(context)) / 2
        lx = min(max(x, half + 1), W - half - 1)  # a label stays inside the chart
        svg.append(
            f'<line x1="{x:.1f}" y1="{PAD_T}" x2="{x:.1f}" y2="{bottom}" class="grid"/>'
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" class="axis"/>'
            f'<text x="{lx:.1f}" y="{bottom + 17}" class="tick" text-anchor="middle">{label}</text>'
        )
        if context:
            svg.append(
                f'<text x="{lx:.1f}" y="{bottom + 33}" class="tick context" '
                f'text-anchor="middle">{context}</text>'
            )
    svg.append(
        f'<line x1="{pad_l}" y1="{bottom}" x2="{right}" y2="{bottom}" class="axis"/>'
        f'<line x1="{pad_l}" y1="{PAD_T}" x2="{pad_l}" y2="{bottom}" class="axis"/>'
    )

    r = 3.5 if len(values) <= 60 else 2.5
    index_of = {hid: order.get(hid, len(order)) % len(MARKERS) for hid in order}
    names = {hid: e(name) for hid, name in hospitals.items()}
    present: dict[int, None] = {}  # the hospitals this figure's values come from
    rows: dict[tuple[datetime, int], dict[str, str]] = {}  # the values table's readings
    markers = []
    for ln in drawn:
        name = f"{e(ln.label)} " if len(drawn) > 1 else ""
        paths: dict[int, list[str]] = {}
        for (when, value), hid in zip(ln.points, ln.hospitals, strict=True):
            ts, at = stamps[when]
            x, y = pad_l + (ts - d0) * x_scale, PAD_T + (hi - float(value)) * y_scale
            shown = wording.number_label(value)
            if by_hospital:
                # Each hospital's values are a line of their own, in its colour and marker
                # (one line through both zigzags wherever they measured the same day).
                index = index_of.get(hid, len(order) % len(MARKERS))
                present[hid] = None
                shape, cls, where = MARKERS[index], f"mk h{index}", f" ({names.get(hid, '')})"
            else:
                hid, shape, cls, where = 0, "circle", f"mk {ln.key}", ""
            paths.setdefault(hid, []).append(f"{x:.1f},{y:.1f}")
            markers.append(_marker(shape, x, y, r, cls, f"{at}: {name}{shown}{unit_sp}{where}"))
            rows.setdefault((when, hid), {})[ln.key] = shown
        for hid, coords in paths.items():
            hue = f" h{index_of.get(hid, len(order) % len(MARKERS))}" if by_hospital else ""
            svg.append(f'<polyline points="{" ".join(coords)}" class="line {ln.key}{hue}"/>')
    svg.extend(markers)  # over every line

    # The legend: the lines when there are two, the hospitals when the page has several.
    legend = []
    if len(lines) > 1:
        for ln in lines:
            sample = _key(ln.key, None if by_hospital else "circle", f"mk {ln.key}")
            legend.append(f"<li>{sample}{e(ln.label)}</li>")
    for hid in sorted(present, key=lambda h: order.get(h, len(order))):
        index = index_of.get(hid, 0)
        sample = _key(f"one h{index}", MARKERS[index], f"mk h{index}")
        legend.append(f"<li>{sample}{names.get(hid, '')}</li>")
    legend_html = f'<ul class="trend-legend">{"".join(legend)}</ul>' if legend else ""

    # The values table, newest first as a reader looks for the latest: one row per reading
    # (a blood pressure's two values share a time and a hospital).
    ordered = sorted(rows.items(), key=lambda item: stamps[item[0][0]][0], reverse=True)
    (newest, newest_hid), newest_values = ordered[0]
    latest = "/".join(newest_values[ln.key] for ln in drawn if ln.key in newest_values)
    latest_where = f" at {names.get(newest_hid, '')}" if by_hospital else ""
    heads = "".join(f'<th scope="col">{e(ln.label)}{unit_sp}</th>' for ln in drawn)
    if by_hospital:
        heads += '<th scope="col">Hospital</th>'
    body = []
    for (when, hid), vals in ordered:
        cells = "".join(f"<td>{vals.get(ln.key, '—')}</td>" for ln in drawn)
        if by_hospital:
            cells += f"<td>{names.get(hid, '')}</td>"
        # "6 Dec 2026, 18:40": on a phone the time wraps, never the date.
        day, _, clock = stamps[when][1].rpartition(", ")
        body.append(
            f'<tr><th scope="row"><span class="nowrap">{day},</span> {clock}</th>{cells}</tr>'
        )

    count = len(ordered)
    readings = "reading" if count == 1 else "readings"
    sources = [hospitals.get(h, "") for h in present]
    summary = e(_summary(title, unit, drawn, count, (first, last), tz, latest, sources))
    older = (
        f'<p class="muted older">The newest {max(len(ln.points) for ln in drawn)} values are '
        "drawn; older ones are not.</p>"
        if truncated
        else ""
    )
    classes = "trend by-hospital" if by_hospital else "trend"
    return (
        f'<figure class="{classes}" data-code="{e(code)}"><figcaption>{e(title)}</figcaption>'
        f"{legend_html}"
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{summary}" class="trend-svg">'
        f"{''.join(svg)}</svg>"
        f'<p class="latest">Latest: <strong>{latest}{unit_sp}</strong> <span class="muted">'
        f'<span class="nowrap">{stamps[newest][1]}</span>{latest_where}</span></p>{older}'
        f'<details class="trend-values"><summary>All {count} {readings}</summary>'
        '<div class="table-scroll"><table class="trend-table"><caption class="visually-hidden">'
        f'{e(title)}</caption><thead><tr><th scope="col">When</th>{heads}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div></details>"
        "</figure>"
    )


def _summary(
    title: str,
    unit: str,
    drawn: list[Line],
    count: int,
    span: tuple[datetime, datetime],
    tz: TzInfo | None,
    latest: str,
    sources: list[str],
) -> str:
    """What the chart shows, in a sentence (its aria-label)."""
    first, last = span
    if tz is not None and first.tzinfo:
        first, last = first.astimezone(tz), last.astimezone(tz)
    first_day, last_day = wording.date_label(first), wording.date_label(last)
    days = f"on {first_day}" if first_day == last_day else f"from {first_day} to {last_day}"
    where = f" from {' and '.join(sources)}" if len(sources) > 1 else ""
    ranges = "; ".join(
        f"{ln.label.lower() if len(drawn) > 1 else 'range'} {_range(ln.points)}" for ln in drawn
    )
    readings = "reading" if count == 1 else "readings"
    in_unit = f" in {unit}" if unit else ""
    unit_sp = f" {unit}" if unit else ""
    return (
        f"{title}{in_unit}: {count} {readings} {days}{where}; latest {latest}{unit_sp}; {ranges}."
    )


def _range(points: Sequence[tuple[datetime, Any]]) -> str:
    values = [p[1] for p in points]
    low, high = min(values), max(values)
    if low == high:
        return wording.number_label(low)
    return f"{wording.number_label(low)} to {wording.number_label(high)}"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
