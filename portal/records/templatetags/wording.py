"""Template filters over portal.wording: `{% load wording %}` then `{{ kind|event_kind }}`."""

from __future__ import annotations

from typing import Any

from django import template

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
