"""Server-rendered SVG line charts for vitals and lab trends (no JavaScript, no CDN)."""

from __future__ import annotations

import html
from datetime import date, datetime
from decimal import Decimal

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 480, 160, 48, 12, 12, 28


# Both tags build their markup with f-strings and the standard library's html.escape, which
# is what Django's escape() calls, without format_html's per-argument lazy-string checks: a
# chart escapes a few hundred values, and that bookkeeping was a third of its render time.
# Every value interpolated below is either escaped here or a number this code formatted.


@register.simple_tag
def trend_chart(series: dict, code: str) -> SafeString:
    points: list[tuple[datetime, Decimal]] = series["points"]
    title = _e(f"{series['display']} ({series['unit']})")
    if not points:
        return mark_safe(f"<p>No values for {title}.</p>")  # noqa: S308 - escaped above
    times = [p[0].timestamp() for p in points]
    values = [float(p[1]) for p in points]
    t0, t1 = min(times), max(times)
    v0, v1 = min(values), max(values)
    if v0 == v1:
        v0, v1 = v0 - 1, v1 + 1
    if t0 == t1:
        t0, t1 = t0 - 1, t1 + 1
    # The same arithmetic as before, operation for operation, so every coordinate rounds alike.
    xs = [f"{PAD_L + (t - t0) / (t1 - t0) * (W - PAD_L - PAD_R):.1f}" for t in times]
    ys = [f"{PAD_T + (1 - (v - v0) / (v1 - v0)) * (H - PAD_T - PAD_B):.1f}" for v in values]
    unit = _e(str(series["unit"]))
    coords = " ".join(f"{x},{y}" for x, y in zip(xs, ys, strict=True))
    dots = "".join(
        f'<circle cx="{x}" cy="{y}" r="3"><title>{_minute(p[0])}: '
        f"{_num(p[1])} {unit}</title></circle>"  # _num: digits, sign, point
        for x, y, p in zip(xs, ys, points, strict=True)
    )
    last = points[-1]
    summary = _e(
        f"{series['display']} ({series['unit']}): {len(points)} values from "
        f"{_day(points[0][0])} to {_day(last[0])}, latest {_num(last[1])} "
        f"{series['unit']}, range {min(values):g} to {max(values):g}."
    )
    bottom, right = H - PAD_B, W - PAD_R
    older = (
        f'<p class="muted older">The newest {len(points)} values are drawn; older ones are not.</p>'
        if series.get("truncated")
        else ""
    )
    return mark_safe(  # noqa: S308 - every value is escaped above or formatted here
        f'<figure class="trend" data-code="{_e(str(code))}"><figcaption>{title}</figcaption>'
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{summary}" class="trend-svg">'
        f'<line x1="{PAD_L}" y1="{bottom}" x2="{right}" y2="{bottom}" class="axis"/>'
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{bottom}" class="axis"/>'
        f'<text x="{PAD_L - 6}" y="{PAD_T + 8}" class="tick" text-anchor="end">{v1:g}</text>'
        f'<text x="{PAD_L - 6}" y="{bottom}" class="tick" text-anchor="end">{v0:g}</text>'
        f'<text x="{PAD_L}" y="{H - 8}" class="tick">{_day(points[0][0])}</text>'
        f'<text x="{right}" y="{H - 8}" class="tick" text-anchor="end">{_day(last[0])}</text>'
        f'<polyline points="{coords}" class="line"/>{dots}</svg>'
        f'<p class="latest">Latest: <strong>{_e(_num(last[1]))} {unit}</strong></p>{older}'
        "</figure>"
    )


@register.simple_tag
def timeline_items(timeline: list) -> SafeString:
    """The chart's timeline rows: what a template loop over them rendered, element for
    element, without the per-row cost of a dozen template nodes (a chart shows up to 100).

    Times are formatted as the date filter formats "c" (isoformat) and "Y-m-d H:i", after the
    same conversion to the current time zone; each record type's link is reversed once.
    """
    rows = []
    links: dict[str, str] = {}
    kinds: dict[str, str] = {}
    escaped: dict[str, str] = {}  # displays and units repeat from row to row

    def esc(text: object) -> str:
        text = str(text)
        found = escaped.get(text)
        if found is None:
            found = escaped[text] = html.escape(text, quote=True)
        return found

    # template_localtime (what the date filter applies), with the time zone looked up once.
    tz = timezone.get_current_timezone() if settings.USE_TZ else None
    for when, kind, record in timeline:
        local = when
        if (
            tz is not None
            and isinstance(when, datetime)
            and when.utcoffset() is not None
            and getattr(when, "convert_to_local_time", True)
        ):
            local = when.astimezone(tz)
        link = links.get(kind)
        if link is None:
            link = links[kind] = _e(_record_link_prefix(kind))
            kinds[kind] = _e(verbose_name(record))
        if kind == "observation":
            # _num's output is digits, a sign and a point: nothing to escape.
            detail = (
                f"<span>{esc(record.display)}: "
                f"<strong>{_num(record.value)} {esc(record.unit)}</strong></span>"
            )
        elif kind == "clinicalnote":
            badge = ' <span class="badge">restricted</span>' if record.restricted else ""
            detail = f"<span>{esc(record.title)}{badge}</span>"
        elif getattr(record, "display", None):
            detail = f"<span>{esc(record.display)}</span>"
        elif getattr(record, "title", None):
            detail = f"<span>{esc(record.title)}</span>"
        else:
            detail = ""
        # isoformat() is digits, "-", ":", "+", "." and "T": nothing to escape.
        rows.append(
            f'    <li><time datetime="{local.isoformat()}">'
            f"{local.year:04d}-{local.month:02d}-{local.day:02d} "
            f"{local.hour:02d}:{local.minute:02d}</time>\n"
            f'      <a href="{link}{int(record.pk)}/" class="kind">{kinds[kind]}</a>\n'
            f"      {detail}\n    </li>\n"
        )
    return mark_safe("".join(rows))  # noqa: S308 - every value is escaped above


def _day(when: date) -> str:
    """`when.strftime("%Y-%m-%d")` without strftime's cost (about 3 us; a trend formats one
    per point): the same text, strftime's own for years below 1000, which it does not pad."""
    if when.year < 1000:
        return when.strftime("%Y-%m-%d")
    return f"{when.year}-{when.month:02d}-{when.day:02d}"


def _minute(when: datetime) -> str:
    """`when.strftime("%Y-%m-%d %H:%M")`, as _day."""
    if when.year < 1000:
        return when.strftime("%Y-%m-%d %H:%M")
    return f"{when.year}-{when.month:02d}-{when.day:02d} {when.hour:02d}:{when.minute:02d}"


def _e(text: str) -> str:
    """Django's escape() without its lazy-string wrapper (the same html.escape call)."""
    return html.escape(text, quote=True)


def _record_link_prefix(kind: str) -> str:
    """provider:record's URL for `kind` without its trailing "<record_id>/" (reversed once
    per kind and page, not once per row)."""
    url = reverse("provider:record", args=[kind, 0])
    if not url.endswith("/0/"):  # pragma: no cover - the URL pattern changed
        raise ValueError(f"unexpected record URL {url!r}")
    return url[: -len("0/")]


@register.filter
def verbose_name(obj) -> str:
    return str(obj._meta.verbose_name).capitalize()


def _num(value) -> str:
    if value is None:
        return ""
    text = format(Decimal(value).normalize(), "f")
    return text


@register.filter
def num(value) -> str:
    """A measured value without the column's trailing zeros: 128, 36.9, 0.25."""
    return _num(value)
