"""Server-rendered SVG line charts for vitals and lab trends (no JavaScript, no CDN)."""

from __future__ import annotations

import html
from datetime import datetime

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from portal import wording
from portal.records.trends import render_trends

register = template.Library()

# timeline_items (and records.trends, which draws the trend charts) build their markup with
# f-strings and the standard library's html.escape, which is what Django's escape() calls,
# without format_html's per-argument lazy-string checks: a chart escapes a few hundred
# values, and that bookkeeping was a third of its render time. Every value interpolated
# below is either escaped here or a number this code formatted.


@register.simple_tag
def trend_charts(series: dict, hospitals: dict | None = None) -> SafeString:
    """A chart page's trends (records.trends): one figure per series, blood pressure's two
    in one, each hospital's values told apart when `hospitals` names more than one."""
    return mark_safe(render_trends(series, hospitals or {}))  # noqa: S308 - escaped there


EXCERPT = 160  # characters of a report's text shown in a list


def record_summary_html(kind: str, record: object, results: dict | None = None) -> str | None:
    """What a test report, imaging study, care plan or goal says, in words (escaped HTML), or
    None for other types. A report: its name, its results' values (those in `results`, the
    observations the reader is shown, by id) and its text's beginning; an imaging study: its
    modality, body site and series count; a care plan: its activities; a goal: its status."""
    e = _e
    if kind == "diagnosticreport":
        words = e(record.name or "Test report")  # type: ignore[attr-defined]
        status = getattr(record, "report_status", "final")
        if status not in ("final", ""):
            words += f" ({e(wording.status_label(status))})"
        values = []
        for link in record.results or []:  # type: ignore[attr-defined]
            obs = (results or {}).get(link.get("observation"))
            if obs is not None:
                value = wording.quantity_label(obs.value, obs.unit)
                values.append(f"{e(obs.display)} <strong>{e(value)}</strong>")
        if values:
            words += ": " + ", ".join(values)
        text = record.text or record.conclusion or ""  # type: ignore[attr-defined]
        if text:
            excerpt = " ".join(str(text).split())
            if len(excerpt) > EXCERPT:
                excerpt = excerpt[: EXCERPT - 1].rstrip() + "…"
            words += f' <span class="muted">{e(excerpt)}</span>'
        return f"<span>{words}</span>"
    if kind == "imagingstudy":
        what = record.name  # type: ignore[attr-defined]
        count = wording.count_label(record.series_count, "series", "series")  # type: ignore[attr-defined]
        return f"<span>{e(what)}: {e(count)}</span>"
    if kind == "careplan":
        words = e(record.name)  # type: ignore[attr-defined]
        status = wording.status_label(record.plan_status)  # type: ignore[attr-defined]
        if status:
            words += f" ({e(status)})"
        activities = [
            e(what)
            + (f' <span class="muted">({e(wording.status_label(state))})</span>' if state else "")
            for what, state in record.activity_names  # type: ignore[attr-defined]
            if what
        ]
        if activities:
            words += ": " + "; ".join(activities)
        return f"<span>{words}</span>"
    if kind == "goal":
        status = record.achievement or record.lifecycle_status  # type: ignore[attr-defined]
        status = wording.status_label(status) if status == status.lower() else status
        state = f' <span class="muted">({e(status)})</span>' if status else ""
        return f"<span>{e(record.name or 'Health goal')}{state}</span>"  # type: ignore[attr-defined]
    return None


@register.simple_tag
def record_summary(record: object, results: dict | None = None) -> SafeString:
    """record_summary_html for a record of any of those types (the patient's pages)."""
    kind = record._meta.model_name  # type: ignore[attr-defined]
    return mark_safe(record_summary_html(kind, record, results) or "")  # noqa: S308 - escaped


@register.filter
def record_kind(record: object) -> str:
    """The record's type as people call it ("Test report")."""
    return wording.record_type_label(record._meta.model_name)  # type: ignore[attr-defined]


@register.filter
def record_when(record: object) -> object:
    """The record's own date (its type's timeline date)."""
    from portal.records.chart import TIMELINE_DATE

    return getattr(record, TIMELINE_DATE[record._meta.model_name])  # type: ignore[attr-defined]


@register.simple_tag
def timeline_items(timeline: list, results: dict | None = None) -> SafeString:
    """The chart's timeline rows (the page's `<li>`s): each record's time to the minute in the
    user's zone, its type by name and what it says in people's words (portal.wording), with
    the per-row cost of a loop, not of a dozen template nodes (a chart shows up to 100)."""
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
        if tz is not None and isinstance(when, datetime) and when.utcoffset() is not None:
            local = when.astimezone(tz)
        link = links.get(kind)
        if link is None:
            link = links[kind] = _e(_record_link_prefix(kind))
            kinds[kind] = _e(wording.record_type_label(kind))
        summary = record_summary_html(kind, record, results)
        if summary is not None:
            detail = summary
        elif kind == "observation":
            # Its value in words: a number and unit, "Never smoker", a panel's components.
            value = record.value_label
            detail = f"<span>{esc(record.display)}: <strong>{esc(value)}</strong></span>"
        elif kind == "clinicalnote":
            badge = ' <span class="badge">restricted</span>' if record.restricted else ""
            detail = f"<span>{esc(record.title)}{badge}</span>"
        elif getattr(record, "display", None):
            detail = f"<span>{esc(record.display)}</span>"
        elif getattr(record, "title", None):
            detail = f"<span>{esc(record.title)}</span>"
        elif getattr(record, "type_display", None):  # an encounter: its type ("Check-up")
            detail = f"<span>{esc(record.type_display)}</span>"
        else:
            detail = ""
        # isoformat() is digits, "-", ":", "+", "." and "T": nothing to escape.
        rows.append(
            f'    <li><time datetime="{local.isoformat()}">'
            f"{wording.reading_time_label(local)}</time>\n"
            f'      <a href="{link}{int(record.pk)}/" class="kind">{kinds[kind]}</a>\n'
            f"      {detail}\n    </li>\n"
        )
    return mark_safe("".join(rows))  # noqa: S308 - every value is escaped above


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
