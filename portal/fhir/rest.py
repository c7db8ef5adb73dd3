"""FHIR's ways on DRF: the base views, what they render and parse, `_format`, and errors as
OperationOutcome resources.

The views are the REST API's (`portal.api.base.ApiView`): the same authentication classes
(a staff bearer token, or the portal session with DRF's CSRF check) and the same
`StaffAccess` permission, which also resolves the hospital the request acts in and its
scope. What differs is only how FHIR says things:

- responses are `application/fhir+json` (or `application/json` when asked for, by `Accept`
  or by FHIR's `_format` parameter, which wins over `Accept`); anything else is a 406;
- request bodies are `application/fhir+json` or `application/json` (a Bundle, parsed with
  the bounds of portal.jsontext, like the API's parser), or form-encoded for
  `POST [type]/_search`; any other type is a 415;
- every error is an OperationOutcome with the matching status: 400, 401, 403, 404 (missing
  and forbidden alike), 405, 406, 413, 415, 422, 429, and 500 without a stack trace.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, QueryDict
from rest_framework import exceptions, permissions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser, FormParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import APISettings
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import set_rollback

from portal.api.authentication import HospitalNotAllowed
from portal.api.base import TWO_FACTOR_MISSING, ApiView
from portal.api.parsers import body_read
from portal.fhir import resources
from portal.fhir.callers import FhirAccess, FhirStaffOnly, caller_hospital_ids
from portal.fhir.services import MAX_DEPTH, BundleImportError, bundle_parse
from portal.jsontext import json_problem
from portal.smart.authentication import SmartTokenAuthentication
from portal.tenancy.scoping import hospital_scope

logger = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"


class FhirError(Exception):
    """An error the view names itself: its status, its words and its OperationOutcome code."""

    def __init__(self, status: int, message: str | list[str], code: str = "invalid") -> None:
        super().__init__(message if isinstance(message, str) else "; ".join(message))
        self.status, self.code, self.messages = status, code, message


# --- rendering and `_format` ---------------------------------------------------------------


class FhirJSONRenderer(BaseRenderer):
    """Compact JSON, ASCII-escaped, as `application/fhir+json; charset=utf-8`."""

    media_type = resources.FHIR_JSON
    format = "fhir"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return json.dumps(data, cls=JSONEncoder, separators=(",", ":")).encode("ascii")


class PlainJSONRenderer(FhirJSONRenderer):
    """The same JSON as `application/json`, for clients that ask for it."""

    media_type = "application/json"
    format = "json"


# FHIR's `_format` values (R4 3.1.0.1.10), by the format of the renderer they pick. In a
# query string an unescaped "+" arrives as a space.
FORMATS = {
    "json": "fhir",
    "application/fhir+json": "fhir",
    "application/json+fhir": "fhir",
    "application/json": "json",
}


class FhirContentNegotiation(DefaultContentNegotiation):
    """`_format` first (FHIR's override of Accept), then the Accept header; DRF's own
    `?format=` means nothing here (it is not a FHIR parameter)."""

    settings = APISettings(user_settings={"URL_FORMAT_OVERRIDE": None})

    def select_renderer(self, request: Request, renderers, format_suffix=None):
        wanted = (request.query_params.get("_format") or "").strip().replace(" ", "+")
        if wanted:
            for renderer in renderers:
                if renderer.format == FORMATS.get(wanted):
                    return renderer, renderer.media_type
            raise exceptions.NotAcceptable(available_renderers=renderers)
        return super().select_renderer(request, renderers, format_suffix)


# --- parsing --------------------------------------------------------------------------------


class FhirJSONParser(BaseParser):
    """A FHIR JSON body (a Bundle): at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes (413), nested
    at most MAX_DEPTH levels (checked before parsing), no NaN or Infinity, and no string a
    column cannot hold (portal.jsontext); anything else is a 400 that says why."""

    media_type = resources.FHIR_JSON

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        try:
            data = bundle_parse(body_read(stream))
        except BundleImportError as exc:
            raise exceptions.ParseError(f"The body was refused: {exc}") from None
        problem = json_problem(data, max_depth=MAX_DEPTH)
        if problem:
            raise exceptions.ParseError(f"The body was refused: {problem}")
        return data


class PlainJSONParser(FhirJSONParser):
    media_type = "application/json"


class FhirFormParser(FormParser):
    """FHIR's search by POST: form-encoded parameters, within Django's size limits."""

    def parse(self, stream, media_type=None, parser_context=None) -> QueryDict:
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        return QueryDict(body_read(stream), encoding=encoding)


# --- errors ---------------------------------------------------------------------------------


def _outcome(status: int, message: str | list[str], code: str) -> Response:
    return Response(resources.operation_outcome(message, code=code), status=status)


def _words(detail: Any) -> list[str]:
    """An APIException's detail (a string, a list or a dict of them) as plain lines."""
    if isinstance(detail, dict):
        return [f"{key}: {line}" for key, value in detail.items() for line in _words(value)]
    if isinstance(detail, list):
        return [line for value in detail for line in _words(value)]
    return [str(detail)]


def fhir_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Every error as an OperationOutcome; never a stack trace."""
    set_rollback()
    request = context.get("request")
    if isinstance(exc, Http404 | exceptions.NotFound):
        return _outcome(404, "No such resource.", "not-found")
    if isinstance(exc, FhirError):
        return _outcome(exc.status, exc.messages, exc.code)
    if isinstance(exc, RequestDataTooBig):
        return _outcome(413, "The request body is too large.", "too-costly")
    if isinstance(exc, HospitalNotAllowed):
        return _outcome(403, "X-Hospital names a hospital where you have no membership.",
                        "forbidden")  # fmt: skip
    if isinstance(exc, SuspiciousOperation):  # too many form fields, say
        return _outcome(400, "The request is malformed.", "invalid")
    if isinstance(exc, exceptions.APIException):
        response = _api_outcome(exc, request)
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))
        return response
    # The exception's type only: no PHI, no request data.
    logger.error("FHIR request failed in %s: %s", type(context.get("view")).__name__,
                 type(exc).__name__, exc_info=exc)  # fmt: skip
    return _outcome(500, "Internal error.", "exception")


def _api_outcome(exc: exceptions.APIException, request: Request | None) -> Response:
    if isinstance(exc, exceptions.NotAuthenticated):
        return _outcome(exc.status_code, "Sign in (with two factors) first.", "login")
    if isinstance(exc, exceptions.AuthenticationFailed):
        return _outcome(exc.status_code, str(exc.detail), "login")
    if isinstance(exc, exceptions.PermissionDenied):
        if exc.get_codes() == TWO_FACTOR_MISSING:
            return _outcome(401, "Sign in with two factors first.", "login")
        return _outcome(403, str(exc.detail), "forbidden")
    if isinstance(exc, exceptions.MethodNotAllowed):
        method = request.method if request is not None else "This method"
        return _outcome(405, f"{method} is not supported here.", "not-supported")
    if isinstance(exc, exceptions.NotAcceptable):
        return _outcome(406, "This server answers JSON only: application/fhir+json or "
                        "application/json (Accept, or _format=json).", "not-supported")  # fmt: skip
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return _outcome(415, f"{exc.detail} Send {resources.FHIR_JSON} (a search by POST: "
                        f"{FORM}).", "not-supported")  # fmt: skip
    if isinstance(exc, exceptions.Throttled):
        return _outcome(429, str(exc.detail), "throttled")
    if isinstance(exc, exceptions.ParseError):
        return _outcome(400, str(exc.detail), "structure")
    return _outcome(exc.status_code, _words(exc.detail), "invalid")


# --- the views' bases -------------------------------------------------------------------------


class FhirView(ApiView):
    """A FHIR view for hospital staff and for patients: the API's authentication, one
    permission (portal.fhir.callers.FhirAccess: staff as StaffAccess admits them, patients
    as the patient side of the API does) that leaves the caller on `request.fhir_caller`,
    the caller's hospital scope (the active hospital for staff, a patient's registrations'
    hospitals), FHIR's media types and OperationOutcome errors. `staff_only`: the methods
    a patient or an app may not use (imports and creates: a 403). A view lists the methods
    it answers in `http_method_names`; any other is a 405 before anything else is looked at."""

    audience = "fhir"  # staff or patient: the caller says which (ApiView scopes neither)
    staff_only: frozenset[str] = frozenset()
    schema = None  # not part of the REST API's OpenAPI document
    http_method_names = ["get"]
    renderer_classes = [FhirJSONRenderer, PlainJSONRenderer]
    parser_classes = [FhirJSONParser, PlainJSONParser]
    content_negotiation_class = FhirContentNegotiation
    # A SMART app's access token first (DOT's; the portal's own tokens are not DOT's, so it
    # passes them on), then the API's token and the portal session.
    authentication_classes = [SmartTokenAuthentication, *ApiView.authentication_classes]

    def get_exception_handler(self):
        return fhir_exception_handler

    def get_permissions(self):
        gates = [permissions.IsAuthenticated(), FhirAccess()]
        return [*gates, FhirStaffOnly()] if self.request.method in self.staff_only else gates

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if request.method.lower() not in self.http_method_names:
            raise exceptions.MethodNotAllowed(request.method)
        super().initial(request, *args, **kwargs)
        if self.audience == "fhir":
            hospitals = caller_hospital_ids(request)
            self.tenant_scope.enter_context(hospital_scope(hospitals))

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        response["X-Content-Type-Options"] = "nosniff"
        return response


class FhirPublicView(FhirView):
    """What anyone may read (the CapabilityStatement, 404s): no credentials looked at, no
    hospital scope, nothing of a tenant."""

    audience = "public"
    authentication_classes: list[type] = []

    def get_permissions(self):
        return [permissions.AllowAny()]
