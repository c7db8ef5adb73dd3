from __future__ import annotations

import functools
import time
import zoneinfo
from collections.abc import Callable
from urllib.parse import unquote

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

AUTH_AT = "auth_at"
SEEN_AT = "seen_at"
IDLE_SECONDS = "idle_seconds"
SEEN_AT_RESOLUTION = 30.0


class SessionTimeoutMiddleware:
    """Idle and absolute log-off, enforced on the server.

    The limits are written into the session at log-in (staff 15 minutes idle, patients 30,
    everyone 12 hours absolute). A session without them was not made by our log-in views
    and is ended as well. `logout()` deletes the session row, so the old cookie is worthless.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = time.time()
            session = request.session
            auth_at = session.get(AUTH_AT)
            seen_at = session.get(SEEN_AT)
            idle = session.get(IDLE_SECONDS, settings.SESSION_IDLE_TIMEOUT_STAFF.total_seconds())
            absolute = settings.SESSION_ABSOLUTE_TIMEOUT.total_seconds()
            if auth_at is None or seen_at is None or now - auth_at > absolute:
                return self._end(request, "Your session has ended. Please sign in again.")
            if now - seen_at > idle:
                minutes = round(idle / 60)
                return self._end(
                    request, f"You were signed out after {minutes} minutes without activity."
                )
            if now - seen_at > SEEN_AT_RESOLUTION:
                # Refreshed at most every 30 s: idle limits are minutes, and not writing the
                # session row on every request saves a database write per page.
                session[SEEN_AT] = now
        return self.get_response(request)

    def _end(self, request: HttpRequest, message: str) -> HttpResponse:
        logout(request)
        messages.info(request, message)
        return redirect_to_login(request.get_full_path())


TIME_ZONE_COOKIE = "portal_tz"


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def time_zone_from_cookie(value: str | None) -> zoneinfo.ZoneInfo | None:
    """The IANA zone the browser reported (portal/static/portal/timezone.js), or None for a
    missing or unknown name: only names of the system's zone database are ever loaded."""
    name = unquote(value or "")
    if not name or len(name) > 64 or name not in _known_zones():
        return None
    return zoneinfo.ZoneInfo(name)


class TimeZoneMiddleware:
    """Shows times in the user's own time zone: the one their browser reports in a cookie,
    else the site's TIME_ZONE. It changes only how times are shown; storage stays UTC."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = time_zone_from_cookie(request.COOKIES.get(TIME_ZONE_COOKIE))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
