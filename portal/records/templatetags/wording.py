"""Template filters over portal.wording: `{% load wording %}` then `{{ kind|event_kind }}`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from portal import wording

register = template.Library()


@register.filter
def record_type(name: str) -> str:
    return wording.record_type_label(name)


@register.filter
def purpose(code: str | None) -> str:
    return wording.purpose_label(code)


@register.filter
def channel(via: str | None) -> str:
    return wording.channel_label(via)


@register.filter
def event_kind(kind: str | None) -> str:
    return wording.event_kind_label(kind)


@register.filter
def unit(code: str | None) -> str:
    return wording.unit_label(code)


@register.filter
def number(value: Any) -> str:
    return wording.number_label(value)


@register.filter
def quantity(value: Any, unit_code: str | None) -> str:
    return wording.quantity_label(value, unit_code)


@register.filter
def yes_no(value: Any) -> str:
    return wording.yes_no(value)


@register.filter
def person(user: Any, role: str | None = None) -> str:
    return wording.person_label(user, role)


@register.filter
def staff(user: Any, role_code: str | None = None) -> str:
    """ "Ana Silva, Clinician" from a user and a role code (tenancy.Role)."""
    return wording.staff_label(user, role_code)


@register.filter
def role(code: str | None) -> str:
    return wording.role_label(code)


@register.filter
def when(value: Any) -> str:
    """ "6 Dec 2026, 14:05" in the user's time zone; `{{ t|when }}`."""
    return wording.datetime_label(value)


@register.filter
def day(value: Any) -> str:
    """ "6 Dec 2026"; `{{ d|day }}`."""
    return wording.date_label(value)


@register.simple_tag
def time_zone() -> str:
    return wording.zone_label()


@register.simple_tag
def timeline_rows(timeline: list) -> SafeString:
    """The chart's timeline rows (the page's `<li>`s): each record's time to the minute in the
    user's zone, its type by name, and what it says in people's words. Built in Python, as
    the timeline it replaces was, because a chart shows up to 100 rows."""
    rows = []
    links: dict[str, str] = {}
    for when_at, kind, record in timeline:
        link = links.get(kind)
        if link is None:
            link = links[kind] = reverse("provider:record", args=[kind, 0])[: -len("0/")]
        if kind == "observation":
            detail = format_html(
                "<span>{}: <strong>{}</strong></span>",
                record.display,
                wording.quantity_label(record.value, record.unit),
            )
        elif kind == "clinicalnote":
            badge = mark_safe(' <span class="badge">restricted</span>') if record.restricted else ""
            detail = format_html("<span>{}{}</span>", record.title, badge)
        elif getattr(record, "display", None):
            detail = format_html("<span>{}</span>", record.display)
        elif getattr(record, "title", None):
            detail = format_html("<span>{}</span>", record.title)
        else:
            detail = ""
        if isinstance(when_at, datetime) and timezone.is_aware(when_at):
            iso = timezone.localtime(when_at).isoformat()
        else:
            iso = when_at.isoformat()
        rows.append(
            format_html(
                '    <li><time datetime="{}">{}</time>\n'
                '      <a href="{}{}/" class="kind">{}</a>\n      {}\n    </li>\n',
                iso,
                wording.datetime_label(when_at),
                link,
                int(record.pk),
                wording.record_type_label(kind),
                detail,
            )
        )
    return mark_safe("".join(rows))  # noqa: S308 - every row is format_html's


@register.simple_tag
def not_shared(labels: Any = ()) -> str:
    """`{% not_shared %}`: "Not shared with you"; `{% not_shared chart.withheld_labels %}`
    names them."""
    return wording.not_shared_label(labels or ())


@register.filter
def period_end(value: Any) -> str:
    """The last day a consent or proxy grant covers ("31 Jan 2027"), as the patient chose it."""
    return wording.period_end_label(value)


@register.filter
def period_start(value: Any) -> str:
    return wording.period_start_label(value)


@register.filter
def document_type(content_type: str | None) -> str:
    return wording.document_type_label(content_type)
