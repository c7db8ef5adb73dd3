"""Error pages that never show a stack trace and never depend on the database.

Pages speak to people: a refusal says that what was asked for is not available (the same
words for missing and forbidden, so nothing tells them apart), with a way back. The API and
FHIR answer in their own machine-readable shapes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.utils.http import url_has_allowed_host_and_scheme

# Paths whose answers are for programs: JSON errors (the API) or OperationOutcome (FHIR).
MACHINE_PREFIXES = ("/api/", "/fhir/")


def _api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _fhir(request: HttpRequest) -> bool:
    return request.path.startswith("/fhir/")


def _machine(request: HttpRequest) -> bool:
    return request.path.startswith(MACHINE_PREFIXES)


def _back(request: HttpRequest) -> str:
    """The page the person came from (a link back), if it is this site's; else ""."""
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return referer
    return ""


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _api(request):
        return JsonResponse({"error": "Forbidden.", "detail": {}}, status=403)
    context = {"reason": str(exception or ""), "back": _back(request)}
    return render(request, "errors/403.html", context, status=403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a form sent without a valid token (one left open across a
    sign-out, sent from another tab or site). Django logs the technical reason; the person
    reads what to do."""
    if _api(request):
        return JsonResponse({"error": "Forbidden.", "detail": {}}, status=403)
    context = {
        "heading": "This form could not be sent",
        "reason": "It was open for too long, or you signed in or out in another window, so "
        "it can no longer be trusted. Nothing was saved. Go back, reload the page and "
        "send the form again.",
        "back": _back(request),
    }
    return render(request, "errors/403.html", context, status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _api(request):
        return JsonResponse({"error": "Not found.", "detail": {}}, status=404)
    if _fhir(request):  # outside the FHIR base (which answers its own 404s), as FHIR would
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "error", "code": "not-found", "diagnostics": "No such resource."}
            ],
        }
        return JsonResponse(outcome, status=404, content_type="application/fhir+json")
    # The exception's words stay out: they differ between missing and forbidden.
    return render(request, "errors/404.html", {"back": _back(request)}, status=404)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _api(request):
        return JsonResponse({"error": "Bad request.", "detail": {}}, status=400)
    return render(request, "errors/400.html", {"back": _back(request)}, status=400)


def server_error(request: HttpRequest) -> HttpResponse:
    if _api(request):
        return JsonResponse({"error": "Internal error.", "detail": {}}, status=500)
    # No request context: the failure may have been in the database or a context processor.
    return HttpResponse(loader.get_template("errors/500.html").render(), status=500)


class DebugErrorPagesMiddleware:
    """With DEBUG on (the demo), Django answers a 404, and a bad request raised by a view,
    with its technical page (URL patterns, settings, the exception's words), which would
    tell a missing chart from a forbidden one and speaks to developers. For pages, the
    portal's own pages instead, as without DEBUG; the API's and FHIR's answers stay theirs.
    Without DEBUG, Django already uses the handlers above and this does nothing."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            settings.DEBUG
            and response.status_code == 404
            and response.get("Content-Type", "").startswith("text/html")
        ):
            # The API's and FHIR's own 404s are JSON and stay; a URL they do not know gets
            # their 404 shape from page_not_found, as without DEBUG.
            return page_not_found(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not settings.DEBUG or _machine(request):
            return None
        if isinstance(exception, SuspiciousOperation):
            # As Django logs it when it answers itself (its security logger, by the class).
            logging.getLogger(f"django.security.{type(exception).__name__}").error(
                "Bad request (%s): %s", type(exception).__name__, request.path
            )
            return bad_request(request, exception)
        if isinstance(exception, BadRequest):
            logging.getLogger("django.request").warning("Bad request: %s", request.path)
            return bad_request(request, exception)
        return None
