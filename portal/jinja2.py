"""The Jinja2 environment of the chart, the page a clinician opens most.

Django's template engine spent about 1.2 ms of a chart walking nodes and resolving
variables; Jinja2 compiles a template to Python once (about 0.6 ms for the same page).
These templates live in templates/jinja2/ and see what Django templates see: the same
context processors (settings.TEMPLATES), `csrf_input`, and the same helpers under the same
names ({% link %} is `link(...)`, {% static %} is `static(...)`, the date filter is `date`).
templates/jinja2/base.html is the twin of templates/base.html: tests/test_jinja2.py renders
both and requires the same bytes, and checks escaping and dates against Django's.
"""

from __future__ import annotations

import html
import os
from datetime import date as Date
from datetime import datetime as DateTime
from functools import lru_cache
from typing import Any

from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH, get_token
from django.template import defaultfilters
from django.templatetags.static import static
from django.utils.functional import lazy
from django.utils.safestring import SafeString
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


# --- CSRF tokens ----------------------------------------------------------------------------
# Django's get_token() masks the CSRF secret with a new random mask on every call (BREACH),
# drawing each of its 32 characters with its own secrets.choice() call: about 30 us of a
# chart. The same token, made the same way (mask + the secret shifted by the mask, in
# Django's alphabet) from one os.urandom() read. Django's middleware checks it as any token;
# tests/test_jinja2.py posts one back and checks the mask's characters are uniform.
_INDEX = {c: i for i, c in enumerate(CSRF_ALLOWED_CHARS)}
_N = len(CSRF_ALLOWED_CHARS)  # 62
_BELOW = 256 - 256 % _N  # bytes at or above this are dropped, so every character is as likely


def _random_chars(count: int) -> str:
    chars: list[str] = []
    while len(chars) < count:
        chars.extend(CSRF_ALLOWED_CHARS[b % _N] for b in os.urandom(2 * count) if b < _BELOW)
    return "".join(chars[:count])


def csrf_token(request: Any) -> str:
    """django.middleware.csrf.get_token(request), with the mask drawn in one read."""
    secret = request.META.get("CSRF_COOKIE")
    if (
        not isinstance(secret, str)
        or len(secret) != CSRF_SECRET_LENGTH
        or any(c not in _INDEX for c in secret)
    ):
        return get_token(request)  # no secret yet: Django's makes one and sets the cookie
    request.META["CSRF_COOKIE_NEEDS_UPDATE"] = True  # as get_token: renew the cookie
    mask = _random_chars(CSRF_SECRET_LENGTH)
    shifted = zip(secret, mask, strict=True)
    cipher = "".join(CSRF_ALLOWED_CHARS[(_INDEX[s] + _INDEX[m]) % _N] for s, m in shifted)
    return mask + cipher


def _csrf_input(request: Any) -> SafeString:
    # django.template.backends.utils.csrf_input's markup; the token is letters and digits.
    return SafeString(
        f'<input type="hidden" name="csrfmiddlewaretoken" value="{csrf_token(request)}">'
    )


# Made once: lazy() builds a proxy class on every call.
_csrf_input_lazy = lazy(_csrf_input, SafeString, str)
_csrf_token_lazy = lazy(csrf_token, str)


def csrf(request: Any) -> dict[str, Any]:
    """Context processor for the Jinja2 backend (settings.TEMPLATES): replaces the backend's
    own lazy `csrf_input` and `csrf_token`, which call get_token()."""
    return {"csrf_input": _csrf_input_lazy(request), "csrf_token": _csrf_token_lazy(request)}


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
