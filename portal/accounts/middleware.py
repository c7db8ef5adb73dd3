from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse

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
