"""Server-rendered SVG line charts for vitals and lab trends (no JavaScript, no CDN)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django import template
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import template_localtime

register = template.Library()

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 480, 160, 48, 12, 12, 28


@register.simple_tag
def trend_chart(series: dict, code: str) -> SafeString:
    points: list[tuple[datetime, Decimal]] = series["points"]
    title = f"{series['display']} ({series['unit']})"
    if not points:
        return format_html("<p>No values for {}.</p>", title)
    times = [p[0].timestamp() for p in points]
    values = [float(p[1]) for p in points]
    t0, t1 = min(times), max(times)
    v0, v1 = min(values), max(values)
    if v0 == v1:
        v0, v1 = v0 - 1, v1 + 1
    if t0 == t1:
        t0, t1 = t0 - 1, t1 + 1

    def x(t: float) -> float:
        return PAD_L + (t - t0) / (t1 - t0) * (W - PAD_L - PAD_R)

    def y(v: float) -> float:
        return PAD_T + (1 - (v - v0) / (v1 - v0)) * (H - PAD_T - PAD_B)

    coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(times, values, strict=True))
    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="3"><title>{}: {} {}</title></circle>',
        (
            (
                f"{x(t):.1f}",
                f"{y(v):.1f}",
                p[0].strftime("%Y-%m-%d %H:%M"),
                _num(p[1]),
                series["unit"],
            )
            for t, v, p in zip(times, values, points, strict=True)
        ),
    )
    last = points[-1]
    summary = (
        f"{title}: {len(points)} values from {points[0][0]:%Y-%m-%d} to {last[0]:%Y-%m-%d}, "
        f"latest {_num(last[1])} {series['unit']}, range {min(values):g} to {max(values):g}."
    )
    return format_html(
        '<figure class="trend" data-code="{code}"><figcaption>{title}</figcaption>'
        '<svg viewBox="0 0 {w} {h}" role="img" aria-label="{summary}" class="trend-svg">'
        '<line x1="{pl}" y1="{bottom}" x2="{right}" y2="{bottom}" class="axis"/>'
        '<line x1="{pl}" y1="{pt}" x2="{pl}" y2="{bottom}" class="axis"/>'
        '<text x="{tx}" y="{ty_top}" class="tick" text-anchor="end">{vmax}</text>'
        '<text x="{tx}" y="{bottom}" class="tick" text-anchor="end">{vmin}</text>'
        '<text x="{pl}" y="{h_label}" class="tick">{first}</text>'
        '<text x="{right}" y="{h_label}" class="tick" text-anchor="end">{lastd}</text>'
        '<polyline points="{coords}" class="line"/>{dots}</svg>'
        '<p class="latest">Latest: <strong>{lastv} {unit}</strong></p></figure>',
        code=code, title=title, w=W, h=H, summary=summary, pl=PAD_L, pt=PAD_T,
        bottom=H - PAD_B, right=W - PAD_R, tx=PAD_L - 6, ty_top=PAD_T + 8, vmax=f"{v1:g}",
        vmin=f"{v0:g}", h_label=H - 8, first=f"{points[0][0]:%Y-%m-%d}",
        lastd=f"{last[0]:%Y-%m-%d}", coords=coords, dots=dots,
        lastv=_num(last[1]), unit=series["unit"],
    )  # fmt: skip


@register.simple_tag
def timeline_items(timeline: list) -> SafeString:
    """The chart's timeline rows: what a template loop over them rendered, element for
    element, without the per-row cost of a dozen template nodes (a chart shows up to 100).

    Times are formatted as the date filter formats "c" (isoformat) and "Y-m-d H:i", after the
    same conversion to the current time zone; each record type's link is reversed once.
    """
    rows = []
    links: dict[str, str] = {}
    for when, kind, record in timeline:
        local = template_localtime(when)  # as the template engine does for the date filter
        link = links.get(kind)
        if link is None:
            link = links[kind] = _record_link_prefix(kind)
        if kind == "observation":
            detail = format_html(
                "<span>{}: <strong>{} {}</strong></span>",
                record.display,
                _num(record.value),
                record.unit,
            )
        elif kind == "clinicalnote":
            badge = ' <span class="badge">restricted</span>' if record.restricted else ""
            detail = format_html("<span>{}{}</span>", record.title, mark_safe(badge))  # noqa: S308
        elif getattr(record, "display", None):
            detail = format_html("<span>{}</span>", record.display)
        elif getattr(record, "title", None):
            detail = format_html("<span>{}</span>", record.title)
        else:
            detail = ""
        rows.append(
            format_html(
                '    <li><time datetime="{}">{}</time>\n'
                '      <a href="{}{}/" class="kind">{}</a>\n'
                "      {}\n    </li>\n",
                local.isoformat(),
                f"{local.year:04d}-{local.month:02d}-{local.day:02d} "
                f"{local.hour:02d}:{local.minute:02d}",
                link,
                int(record.pk),
                verbose_name(record),
                detail,
            )
        )
    return mark_safe("".join(rows))  # noqa: S308 - every row is format_html output


def _record_link_prefix(kind: str) -> str:
    """provider:record's URL for `kind` without its trailing "<record_id>/"."""
    url = reverse("provider:record", args=(kind, 0))
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
