"""Server-rendered SVG of the ledger's anchoring lag (no JavaScript, no CDN).

Colours are SVG presentation attributes or CSS classes (the legend's are in the admin's
stylesheet, portal/static/portal/admin.css): the site's CSP refuses style="..." attributes."""

from __future__ import annotations

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 640, 200, 56, 12, 12, 28


@register.simple_tag
def lag_chart(buckets: list[dict]) -> SafeString:
    """p50 and p95 anchoring lag (seconds) per time bucket, as two polylines."""
    if not buckets:
        return format_html(
            '<figure class="lag"><svg viewBox="0 0 {} {}" role="img" class="lag-svg" '
            'aria-label="No anchored events in the window."></svg>'
            "<figcaption>No anchored events in the window.</figcaption></figure>",
            W,
            H,
        )
    times = [b["start"].timestamp() for b in buckets]
    t0, t1 = min(times), max(times)
    if t0 == t1:
        t0, t1 = t0 - 60, t1 + 60
    top = max(max(b["p95"] for b in buckets), 0.001) * 1.1

    def x(t: float) -> float:
        return PAD_L + (t - t0) / (t1 - t0) * (W - PAD_L - PAD_R)

    def y(v: float) -> float:
        return PAD_T + (1 - v / top) * (H - PAD_T - PAD_B)

    def line(key: str) -> str:
        return " ".join(f"{x(t):.1f},{y(b[key]):.1f}" for t, b in zip(times, buckets, strict=True))

    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="2.5" class="p95"><title>{}: {} events, p50 {} s, '
        "p95 {} s</title></circle>",
        (
            (f"{x(t):.1f}", f"{y(b['p95']):.1f}", f"{b['start']:%H:%M}", b["count"],
             f"{b['p50']:.2f}", f"{b['p95']:.2f}")
            for t, b in zip(times, buckets, strict=True)
        ),
    )  # fmt: skip
    worst = max(b["p95"] for b in buckets)
    summary = (
        f"Anchoring lag over {len(buckets)} buckets from {buckets[0]['start']:%H:%M} to "
        f"{buckets[-1]['start']:%H:%M} UTC; worst p95 {worst:.2f} s."
    )
    return format_html(
        '<figure class="lag"><svg viewBox="0 0 {w} {h}" role="img" aria-label="{summary}" '
        'class="lag-svg" width="{w}" height="{h}">'
        '<line x1="{pl}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>'
        '<line x1="{pl}" y1="{pt}" x2="{pl}" y2="{bottom}" stroke="#888"/>'
        '<text x="{tx}" y="{ty_top}" font-size="11" text-anchor="end">{vmax} s</text>'
        '<text x="{tx}" y="{bottom}" font-size="11" text-anchor="end">0 s</text>'
        '<text x="{pl}" y="{h_label}" font-size="11">{first} UTC</text>'
        '<text x="{right}" y="{h_label}" font-size="11" text-anchor="end">{last} UTC</text>'
        '<polyline points="{p50}" fill="none" stroke="#2a7ab0" stroke-width="1.5" class="p50"/>'
        '<polyline points="{p95}" fill="none" stroke="#c0392b" stroke-width="1.5" '
        'class="p95"/>{dots}</svg>'
        '<figcaption>{summary} <span class="lag-p50">— p50</span> '
        '<span class="lag-p95">— p95</span></figcaption></figure>',
        w=W, h=H, summary=summary, pl=PAD_L, pt=PAD_T, bottom=H - PAD_B, right=W - PAD_R,
        tx=PAD_L - 6, ty_top=PAD_T + 8, vmax=f"{top:.2f}", h_label=H - 8,
        first=f"{buckets[0]['start']:%H:%M}", last=f"{buckets[-1]['start']:%H:%M}",
        p50=line("p50"), p95=line("p95"), dots=dots,
    )  # fmt: skip
