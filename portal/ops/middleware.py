"""No response is stored by a browser or a proxy, unless a view declares itself public.

Charts, records, documents, exports and API answers carry health data: a shared or back
button cache must never keep them. Rather than listing what is private (and missing the next
page, or a bearer-token request, which DRF authenticates only inside the view), every
response is marked no-store. The exceptions opt in with Django's own
`@cache_control(public=True, ...)` (the ledger's public key), and even then only for a
request that carried no credentials. Static files never reach this middleware: WhiteNoise,
before it, serves them with its own (long, public) caching headers.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import add_never_cache_headers


class NoStoreMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if not (_declared_public(response) and not _carries_credentials(request)):
            # Cache-Control: max-age=0, no-cache, no-store, must-revalidate, private
            # (and Expires now), whatever the view set before.
            add_never_cache_headers(response)
        return response


def _declared_public(response: HttpResponseBase) -> bool:
    directives = {
        part.split("=", 1)[0].strip().lower()
        for part in response.get("Cache-Control", "").split(",")
    }
    return "public" in directives


def _carries_credentials(request: HttpRequest) -> bool:
    if "HTTP_AUTHORIZATION" in request.META:
        return True
    user = getattr(request, "user", None)  # absent if a middleware answered before auth
    return bool(user is not None and user.is_authenticated)
