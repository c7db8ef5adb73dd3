"""The Jinja2 environment of the chart, the page a clinician opens most.

Django's template engine spent about 1.2 ms of a chart walking nodes and resolving
variables; Jinja2 compiles a template to Python once (about 0.6 ms for the same page).
These templates live in templates/jinja2/ and see what Django templates see: the same
context processors (settings.TEMPLATES), `csrf_input` (the Jinja2 backend's own, from
Django's get_token), and the same helpers under the same
names ({% link %} is `link(...)`, {% static %} is `static(...)`, the date filter is `date`).
templates/jinja2/base.html is the twin of templates/base.html: tests/test_jinja2.py renders
both and requires the same bytes, and checks escaping and dates against Django's.
"""

from __future__ import annotations

import html
from datetime import date as Date
from datetime import datetime as DateTime
from functools import lru_cache
from typing import Any

from django.template import defaultfilters
from django.templatetags.static import static
from django.utils.timezone import template_localtime
from jinja2 import Environment
from markupsafe import Markup

from portal.ops.templatetags.links import reverse_cached
from portal.records.templatetags.charts import timeline_items, trend_chart

# The two formats the chart uses, written out as Django's format characters write them
# (Y: %04d, m d H i: %02d): Django's filter looks the format up, parses it character by
# character and calls a method per character, about 14 us a date.
_DATE_FORMATS = {
    "Y-m-d": "{0.year:04d}-{0.month:02d}-{0.day:02d}",
    "Y-m-d H:i": "{0.year:04d}-{0.month:02d}-{0.day:02d} {0.hour:02d}:{0.minute:02d}",
}


def date(value: Any, arg: str | None = None) -> str:
    """Django's date filter, after the conversion to the current time zone that Django's
    engine applies before it (the filter `expects_localtime`)."""
    kind = type(value)
    fast = _DATE_FORMATS.get(arg) if kind is DateTime or kind is Date else None
    if fast is not None and (kind is DateTime or arg == "Y-m-d"):  # a date has no time
        return fast.format(template_localtime(value))
    return defaultfilters.date(template_localtime(value), arg)


@lru_cache(maxsize=256)
def static_url(path: str) -> str:
    """`{% static %}`, once per path and process: the URL depends only on the path, the
    settings and the storage's manifest, which is read once when the process starts
    (about 10 us a call otherwise: an app-registry scan and the manifest lookup)."""
    return static(path)


def _escape(value: Any) -> Any:
    """Every {{ value }} escaped as Django's escape() does it (markupsafe writes &#39; and
    &#34; where Django writes &#x27; and &quot;): the same bytes as the Django twin. A
    value already safe (SafeString, Markup) passes through, as in Django's engine. This is
    conditional_escape without its lazy-string bookkeeping: str() evaluates a lazy string."""
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape(str(value)))  # noqa: S704 - escaped on this line


def environment(**options: Any) -> Environment:
    options.setdefault("finalize", _escape)
    options.setdefault("autoescape", True)  # as Django's backend sets it
    env = Environment(**options)  # noqa: S701 - autoescape is on (the line above)
    env.globals.update(
        static=static_url,
        link=reverse_cached,
        trend_chart=trend_chart,
        timeline_items=timeline_items,
    )
    env.filters["date"] = date
    return env
