"""Who is calling the API, and in which hospital.

Two ways in: `Authorization: Bearer <token>` (no CSRF: the browser never sends it by
itself) and the portal session (with CSRF, as DRF's SessionAuthentication does). A staff
request acts in one of the caller's own active memberships: `X-Hospital: <slug>` picks one,
else the session's active hospital, else the first; a slug that is not one of the caller's
memberships is refused, never trusted.
"""

from __future__ import annotations

import re

from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    get_authorization_header,
)

from portal.api import selectors, services
from portal.api.models import ApiToken
from portal.tenancy.models import Membership
from portal.tenancy.selectors import membership_list_for_user

HOSPITAL_HEADER = "X-Hospital"
_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,50}")


class HospitalNotAllowed(Exception):
    """X-Hospital names a hospital the caller is not an active member of."""


class HospitalHeaderInvalid(HospitalNotAllowed):
    """X-Hospital is not a slug at all (the API answers 400; anything that does not tell
    the two apart refuses it as any slug that is not the caller's)."""


def bearer_token(request: HttpRequest) -> ApiToken | None:
    """The live token of an `Authorization: Bearer` header; None without one.

    Raises AuthenticationFailed for a malformed header or an unknown, expired or revoked
    token (the same words for all three).
    """
    parts = get_authorization_header(request).split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed("Use the header 'Authorization: Bearer <token>'.")
    try:
        raw = parts[1].decode("ascii")
    except UnicodeDecodeError:
        raw = ""
    token = selectors.token_authenticate(raw=raw)
    if token is None:
        raise exceptions.AuthenticationFailed(
            "The token is not valid (unknown, expired or revoked)."
        )
    services.token_touch(token=token)
    return token


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        token = bearer_token(request)
        if token is None:
            return None
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class PortalSessionAuthentication(SessionAuthentication):
    """The portal's session (its idle and absolute limits are enforced by the middleware),
    with DRF's CSRF check."""


def membership_for_request(
    request: HttpRequest, *, user, session_default: Membership | None = None
) -> Membership | None:
    """The membership a staff request acts in, from the caller's own active memberships."""
    memberships = membership_list_for_user(user=user)
    slug = (request.headers.get(HOSPITAL_HEADER) or "").strip()
    if slug and not _SLUG.fullmatch(slug):
        raise HospitalHeaderInvalid(slug)
    if slug:
        for membership in memberships:
            if membership.hospital.slug == slug:
                return membership
        raise HospitalNotAllowed(slug)
    if session_default is not None and any(m.pk == session_default.pk for m in memberships):
        return session_default
    return memberships[0] if memberships else None
