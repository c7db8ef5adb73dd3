"""The FHIR R4 REST interface under /fhir/R4/ (JSON, application/fhir+json).

Staff of the active hospital, signed in with two factors (the provider portal's session);
every view runs in that hospital's scope. Access is decided by portal.records.access, so
missing and forbidden are the same 404, and another hospital's ids are 404 too. Errors are
OperationOutcome resources (400, 401, 403, 404, 405, 413, 415, 422), never an HTML page or a
stack trace. Reading a chart, a record or a document through FHIR records the same access
events as the provider portal.

Every search also answers `POST [type]/_search` with its parameters in a form-encoded body
(FHIR's search by POST), so names, birth dates and MRNs need not be in a URL, where access
logs and proxies keep them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import reverse
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed

from consent import selectors as consent_selectors
from portal.api.authentication import HospitalNotAllowed, bearer_token, membership_for_request
from portal.api.models import TokenAudience
from portal.api.selectors import token_refusal
from portal.fhir import resources, selectors
from portal.fhir.services import BundleImportError, bundle_parse, fhir_bundle_import
from portal.provider.views import access_event
from portal.records import access as records_access
from portal.records.access import OpenedChart
from portal.records.models import Document
from portal.tenancy.scoping import hospital_scope

logger = logging.getLogger(__name__)

SEARCHABLE = (*resources.RESOURCE_MODELS, "AuditEvent", "Provenance", "Consent")
PATIENT_PARAMS = ("identifier", "name", "family", "given", "birthdate")
FORM = "application/x-www-form-urlencoded"
SEARCH_BY_POST = (
    "Also POST [type]/_search with the parameters in an application/x-www-form-urlencoded "
    "body, which keeps them out of URLs and server logs."
)


class FhirError(Exception):
    def __init__(self, status: int, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.status, self.code = status, code


def fhir_response(resource: dict[str, Any], status: int = 200) -> HttpResponse:
    response = HttpResponse(
        json.dumps(resource, separators=(",", ":")),
        status=status,
        content_type=f"{resources.FHIR_JSON}; charset=utf-8",
    )
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _outcome(status: int, message: str | list[str], code: str) -> HttpResponse:
    return fhir_response(resources.operation_outcome(message, code=code), status=status)


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:
        return reason


def _csrf_failure(request: HttpRequest) -> str | None:
    """The CSRF check for session requests (token requests need none: the browser never
    sends a bearer token by itself). The reason it failed, or None."""
    check = _CsrfCheck(lambda r: None)
    check.process_request(request)
    return check.process_view(request, lambda r: None, (), {})


def _token_user(request: HttpRequest) -> HttpResponse | bool:
    """Bearer token requests: a staff token issued after two factors (FHIR is staff-only;
    the API's own rule, token_refusal, decides) acts in one of its user's own hospitals
    (X-Hospital, else the first). True if a token was used, an OperationOutcome if it is
    refused, False without one."""
    try:
        token = bearer_token(request)
    except AuthenticationFailed as exc:
        return _outcome(401, str(exc.detail), "login")
    if token is None:
        return False
    refusal = token_refusal(token=token, audience=TokenAudience.STAFF)
    if refusal:
        return _outcome(403, refusal, "forbidden")
    request.user = token.user
    try:
        membership = membership_for_request(request, user=token.user)
    except HospitalNotAllowed:
        return _outcome(403, "X-Hospital names a hospital where you have no membership.",
                        "forbidden")  # fmt: skip
    request.membership = membership
    request.hospital = membership.hospital if membership else None
    return True


def fhir_view(*, methods: tuple[str, ...] = ("GET",), staff: bool = True) -> Callable:
    """Method check, staff session or token check, hospital scope, and errors as
    OperationOutcome. Token requests are exempt from CSRF; session requests are checked."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = _outcome(
                    405, f"{request.method} is not supported here.", "not-supported"
                )
                response["Allow"] = ", ".join(methods)
                return response
            try:
                if not staff:
                    return view(request, *args, **kwargs)
                via_token = _token_user(request)
                if isinstance(via_token, HttpResponse):
                    return via_token
                if not request.user.is_authenticated:
                    return _outcome(401, "Sign in (with two factors) first.", "login")
                if getattr(request, "membership", None) is None:
                    return _outcome(403, "This interface is for hospital staff.", "forbidden")
                if not via_token and not request.user.is_verified():
                    return _outcome(401, "Sign in with two factors first.", "login")
                if not via_token and request.method not in ("GET", "HEAD", "OPTIONS"):
                    reason = _csrf_failure(request)
                    if reason:
                        return _outcome(403, f"CSRF check failed: {reason}", "forbidden")
                with hospital_scope(request.hospital):
                    return view(request, *args, **kwargs)
            except Http404:
                return _outcome(404, "No such resource.", "not-found")
            except FhirError as exc:
                return _outcome(exc.status, str(exc), exc.code)
            except RequestDataTooBig:
                return _outcome(413, "The request body is too large.", "too-costly")
            except Exception:
                logger.exception("FHIR request failed: %s %s", request.method, request.path)
                return _outcome(500, "Internal error.", "exception")

        wrapper.csrf_exempt = True  # checked above, for session requests only
        return wrapper

    return decorate


def _base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("fhir:root"))


# --- metadata ---------------------------------------------------------------------------


@fhir_view(staff=False)
def metadata_view(request: HttpRequest) -> HttpResponse:
    by_patient = [{"name": "patient", "type": "reference"}]
    interactions = [{"code": "read"}, {"code": "search-type", "documentation": SEARCH_BY_POST}]
    record_types = [
        {
            "type": rtype,
            "interaction": interactions,
            "searchParam": by_patient
            + ([{"name": "code", "type": "token"}] if rtype == "Observation" else []),
        }
        for rtype in resources.RESOURCE_MODELS
    ]
    capability = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": timezone.now().date().isoformat(),
        "kind": "instance",
        "software": {"name": "Hospital Portal"},
        "implementation": {"description": "Hospital Portal FHIR R4", "url": _base_url(request)},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Searches: GET [type]?parameters, or POST [type]/_search "
                "with the parameters in an application/x-www-form-urlencoded body (search by "
                "POST keeps names, birth dates and MRNs out of URLs and server logs).",
                "security": {
                    "description": "A bearer API token of a staff member (Authorization: "
                    "Bearer <token>; X-Hospital: <slug> picks one of their hospitals), or "
                    "the session of a staff member of the active hospital, signed in with "
                    "two factors (POST needs the CSRF token)."
                },
                "resource": [
                    {
                        "type": "Patient",
                        "interaction": interactions,
                        "searchParam": [
                            {"name": "identifier", "type": "token"},
                            {"name": "name", "type": "string"},
                            {"name": "family", "type": "string"},
                            {"name": "given", "type": "string"},
                            {"name": "birthdate", "type": "date"},
                        ],
                        "operation": [
                            {
                                "name": "everything",
                                "definition": "http://hl7.org/fhir/OperationDefinition/"
                                "Patient-everything",
                            }
                        ],
                    },
                    *record_types,
                    {
                        "type": "AuditEvent",
                        "interaction": interactions,
                        "searchParam": by_patient,
                    },
                    {
                        "type": "Consent",
                        "interaction": interactions,
                        "searchParam": by_patient,
                    },
                    {
                        "type": "Provenance",
                        "interaction": interactions,
                        "searchParam": [{"name": "target", "type": "reference"}],
                    },
                ],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }
    return fhir_response(capability)


# --- import -------------------------------------------------------------------------------


@fhir_view(methods=("POST",))
def root_view(request: HttpRequest) -> HttpResponse:
    """POST a transaction, batch or collection Bundle: imported into the active hospital."""
    try:
        bundle = bundle_parse(request.body)
    except BundleImportError as exc:
        raise FhirError(400, f"The body was refused: {exc}", "structure") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirError(400, "POST to the base takes a Bundle.", "structure")
    try:
        # The caller is the actor: the import writes only into charts they may change.
        report = fhir_bundle_import(hospital=request.hospital, bundle=bundle, actor=request.user)
    except BundleImportError as exc:
        return _outcome(exc.status, exc.errors, "processing" if exc.status == 422 else "structure")
    lines = report.summary().splitlines()
    outcome = resources.operation_outcome(lines, code="informational", severity="information")
    return fhir_response(outcome)


# --- Patient ------------------------------------------------------------------------------


def _birthdate(value: str) -> date:
    value = value.removeprefix("eq")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise FhirError(400, "birthdate must be a date (YYYY-MM-DD).") from None


def _search_params(request: HttpRequest) -> QueryDict:
    """A search's parameters: the query string (GET [type]?...), and for POST [type]/_search
    the form-encoded body too (FHIR counts both)."""
    if request.method != "POST":
        return request.GET
    if request.content_type != FORM and request.body:
        raise FhirError(415, f"POST [type]/_search takes a body of type {FORM}.", "not-supported")
    params = request.GET.copy()
    params.update(request.POST)
    return params


@fhir_view()
def patient_search_view(request: HttpRequest) -> HttpResponse:
    return _patient_search(request, _search_params(request))


def _patient_search(request: HttpRequest, query: QueryDict) -> HttpResponse:
    params = {k: (query.get(k) or "").strip() for k in PATIENT_PARAMS}
    if not any(params.values()):
        raise FhirError(400, f"Search Patient by one of: {', '.join(PATIENT_PARAMS)}.")
    found = selectors.fhir_patient_search(
        user=request.user,
        hospital=request.hospital,
        identifier=params["identifier"],
        name=params["name"],
        family=params["family"],
        given=params["given"],
        birthdate=_birthdate(params["birthdate"]) if params["birthdate"] else None,
    )
    return fhir_response(
        resources.bundle([resources.patient_to_fhir(p) for p in found], base_url=_base_url(request))
    )


def _open_chart(request: HttpRequest, patient_id: Any) -> OpenedChart:
    """The chart, opened as the provider portal opens it: a chart.read access event."""
    with transaction.atomic():
        opened = records_access.access_patient(request.user, patient_id)
        access_event(request, kind="chart.read", chart=opened)
    return opened


@fhir_view()
def patient_read_view(request: HttpRequest, resource_id: str) -> HttpResponse:
    return fhir_response(resources.patient_to_fhir(_open_chart(request, resource_id).patient))


@fhir_view()
def patient_everything_view(request: HttpRequest, resource_id: str) -> HttpResponse:
    with transaction.atomic():
        opened = _open_chart(request, resource_id)
        documents = records_access.chart_records(chart=opened, model=Document)
        for document in documents:  # their contents are in the bundle
            access_event(request, kind="document.read", chart=opened, record=document)
    bundle = selectors.fhir_patient_everything(chart=opened, base_url=_base_url(request))
    return fhir_response(bundle)


# --- every other type -------------------------------------------------------------------------


def _patient_param(request: HttpRequest, params: QueryDict) -> str:
    value = params.get("patient") or params.get("subject") or ""
    value = value.removeprefix(_base_url(request)).removeprefix("Patient/")
    if not value:
        raise FhirError(400, "Search by patient: ?patient={id}.")
    return value


@fhir_view()
def search_view(request: HttpRequest, resource_type: str) -> HttpResponse:
    return _search(request, resource_type, _search_params(request))


@fhir_view(methods=("POST",))
def search_post_view(request: HttpRequest, resource_type: str) -> HttpResponse:
    """POST [type]/_search, for Patient and every type GET [type]? searches."""
    if resource_type == "Patient":
        return _patient_search(request, _search_params(request))
    return _search(request, resource_type, _search_params(request))


def _search(request: HttpRequest, resource_type: str, params: QueryDict) -> HttpResponse:
    if resource_type not in SEARCHABLE:
        raise Http404
    base = _base_url(request)
    if resource_type == "Provenance":
        target = (params.get("target") or "").removeprefix(base)
        if "/" not in target:
            raise FhirError(400, "Search Provenance by target: ?target={type}/{id}.")
        rtype, rid = target.split("/", 1)
        record = selectors.fhir_record_access(
            user=request.user, resource_type=rtype, resource_id=rid
        ).record
        found = [p for p in [selectors.fhir_record_provenance(record=record)] if p]
        return fhir_response(resources.bundle(found, base_url=base))
    if resource_type == "AuditEvent":
        opened = records_access.access_patient(request.user, _patient_param(request, params))
        found = selectors.fhir_audit_events_for_patient(user=request.user, patient=opened.patient)
        return fhir_response(resources.bundle(found, base_url=base))
    if resource_type == "Consent":
        opened = records_access.access_patient(request.user, _patient_param(request, params))
        consents = consent_selectors.consents_for_patient(patient=opened.patient)
        found = [resources.consent_to_fhir(c) for c in consents]
        return fhir_response(resources.bundle(found, base_url=base))
    opened = _open_chart(request, _patient_param(request, params))
    found = selectors.fhir_records_for_patient(chart=opened, resource_type=resource_type)
    code = params.get("code") or ""
    if code:
        code = code.rpartition("|")[2]
        found = [r for r in found if code in {c.get("code") for c in _codings(r)}]
    return fhir_response(resources.bundle(found, base_url=base))


def _codings(resource: dict[str, Any]) -> list[dict[str, Any]]:
    for key in ("code", "vaccineCode", "medicationCodeableConcept", "type"):
        concept = resource.get(key)
        if isinstance(concept, dict):
            return concept.get("coding") or []
    return []


@fhir_view()
def read_view(request: HttpRequest, resource_type: str, resource_id: str) -> HttpResponse:
    if resource_type in ("AuditEvent", "Provenance"):
        kinds = resources.ACCESS_KINDS
        if resource_type == "Provenance":
            kinds = (".created", ".corrected", ".registered")
        event = selectors.fhir_ledger_event_access(
            user=request.user, hospital=request.hospital, event_id=resource_id, kinds=kinds
        )
        if resource_type == "AuditEvent":
            return fhir_response(selectors.fhir_audit_event(event=event))
        return fhir_response(selectors.fhir_provenance(event=event))
    if resource_type == "Consent":
        # Whoever may open the chart may read the consents on it; anyone else gets 404.
        consent = consent_selectors.consent_by_uuid(consent_id=resource_id)
        if consent is None:
            raise Http404
        records_access.access_patient(request.user, consent.patient_id)
        return fhir_response(resources.consent_to_fhir(consent))
    if resource_type not in resources.RESOURCE_MODELS:
        raise Http404
    with transaction.atomic():
        opened = selectors.fhir_record_access(
            user=request.user, resource_type=resource_type, resource_id=resource_id
        )
        record = opened.record
        kind = "document.read" if isinstance(record, Document) else "record.read"
        access_event(request, kind=kind, chart=opened.chart, record=record)
    return fhir_response(resources.to_fhir(record))


@fhir_view(methods=("GET", "POST", "PUT", "DELETE", "PATCH"), staff=False)
def not_found_view(request: HttpRequest, rest: str = "") -> HttpResponse:
    raise Http404
