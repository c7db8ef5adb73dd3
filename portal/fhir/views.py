"""The FHIR R4 REST interface under /fhir/R4/ (JSON, application/fhir+json).

DRF views on the REST API's base (portal.fhir.rest.FhirView over portal.api.base.ApiView):
the same authentication (a staff bearer token, or the portal session with DRF's CSRF check)
and the same StaffAccess permission (staff of the hospital the request acts in, signed in
with two factors), so every view runs in that hospital's scope. Access is decided by the
records selectors, so missing and forbidden are the same 404, and another hospital's ids
are 404 too. Errors are OperationOutcome resources (400, 401, 403, 404, 405, 406, 413, 415,
422, 429), never an HTML page or a stack trace. Reading a chart, a record or a document
through FHIR records the same access events as the provider portal.

Every search also answers `POST [type]/_search` with its parameters in a form-encoded body
(FHIR's search by POST), so names, birth dates and MRNs need not be in a URL, where access
logs and proxies keep them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db import transaction
from django.http import Http404, QueryDict
from django.urls import reverse
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from consent import selectors as consent_selectors
from portal.fhir import resources, selectors
from portal.fhir.rest import FORM, FhirError, FhirFormParser, FhirPublicView, FhirView
from portal.fhir.services import BundleImportError, fhir_bundle_import
from portal.records import access as records_access
from portal.records import audit
from portal.records.access import OpenedChart
from portal.records.models import Document

SEARCHABLE = (*resources.RESOURCE_MODELS, "AuditEvent", "Provenance", "Consent")
PATIENT_PARAMS = ("identifier", "name", "family", "given", "birthdate")
SEARCH_BY_POST = (
    f"Also POST [type]/_search with the parameters in an {FORM} "
    "body, which keeps them out of URLs and server logs."
)


OBSERVATION_DOCUMENTATION = (
    "Every category and value type (Quantity, CodeableConcept, string, boolean, integer, "
    "Range, Ratio, SampledData, time, dateTime, Period, or a dataAbsentReason), components, "
    "and effective[x] as dateTime, instant or Period: an imported Observation is served as "
    "it was given."
)


def _base_url(request: Request) -> str:
    return request.build_absolute_uri(reverse("fhir:root"))


# --- metadata ---------------------------------------------------------------------------


class MetadataView(FhirPublicView):
    """The CapabilityStatement: public, and nothing of any hospital in it."""

    def get(self, request: Request) -> Response:
        return Response(capability_statement(request))


def capability_statement(request: Request) -> dict[str, Any]:
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
    for entry in record_types:
        if entry["type"] == "Observation":
            entry["documentation"] = OBSERVATION_DOCUMENTATION
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
    return capability


# --- import -------------------------------------------------------------------------------


class RootView(FhirView):
    """POST a transaction, batch or collection Bundle: imported into the active hospital."""

    http_method_names = ["post"]

    def post(self, request: Request) -> Response:
        bundle = request.data  # parsed by FhirJSONParser: bounded, or a 400 that says why
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise FhirError(400, "POST to the base takes a Bundle.", "structure")
        try:
            # The caller is the actor: the import writes only into charts they may change.
            report = fhir_bundle_import(
                hospital=request.hospital, bundle=bundle, actor=request.user
            )
        except BundleImportError as exc:
            code = "processing" if exc.status == 422 else "structure"
            raise FhirError(exc.status, exc.errors, code) from None
        lines = report.summary().splitlines()
        return Response(
            resources.operation_outcome(lines, code="informational", severity="information")
        )


# --- Patient ------------------------------------------------------------------------------


def _birthdate(value: str) -> date:
    value = value.removeprefix("eq")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise FhirError(400, "birthdate must be a date (YYYY-MM-DD).") from None


def _search_params(request: Request) -> QueryDict:
    """A search's parameters: the query string (GET [type]?...), and for POST [type]/_search
    the form-encoded body too (FHIR counts both)."""
    if request.method != "POST":
        return request.query_params
    params = request.query_params.copy()
    if isinstance(request.data, QueryDict):  # an empty body parses to nothing at all
        params.update(request.data)
    return params


def _patient_search(request: Request, query: QueryDict) -> Response:
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
    return Response(
        resources.bundle([resources.patient_to_fhir(p) for p in found], base_url=_base_url(request))
    )


def _open_chart(request: Request, patient_id: Any) -> OpenedChart:
    """The chart, opened as the provider portal opens it: a chart.read access event."""
    opened = records_access.access_patient(request.user, patient_id)
    _read_recorded(request, opened)
    return opened


def _read_recorded(request: Request, chart: OpenedChart, record: Any = None) -> None:
    audit.chart_read_record(
        reader=request.user, chart=chart, record=record, membership=request.membership
    )


class PatientSearchView(FhirView):
    def get(self, request: Request) -> Response:
        return _patient_search(request, _search_params(request))


class PatientReadView(FhirView):
    def get(self, request: Request, resource_id: str) -> Response:
        return Response(resources.patient_to_fhir(_open_chart(request, resource_id).patient))


class PatientEverythingView(FhirView):
    def get(self, request: Request, resource_id: str) -> Response:
        with transaction.atomic():
            opened = _open_chart(request, resource_id)
            documents = records_access.chart_records(chart=opened, model=Document)
            for document in documents:  # their contents are in the bundle
                _read_recorded(request, opened, document)
        bundle = selectors.fhir_patient_everything(chart=opened, base_url=_base_url(request))
        return Response(bundle)


# --- every other type -------------------------------------------------------------------------


def _patient_param(request: Request, params: QueryDict) -> str:
    value = params.get("patient") or params.get("subject") or ""
    value = value.removeprefix(_base_url(request)).removeprefix("Patient/")
    if not value:
        raise FhirError(400, "Search by patient: ?patient={id}.")
    return value


class SearchView(FhirView):
    def get(self, request: Request, resource_type: str) -> Response:
        return _search(request, resource_type, _search_params(request))


class SearchPostView(FhirView):
    """POST [type]/_search, for Patient and every type GET [type]? searches."""

    http_method_names = ["post"]
    parser_classes = [FhirFormParser]

    def post(self, request: Request, resource_type: str) -> Response:
        if resource_type == "Patient":
            return _patient_search(request, _search_params(request))
        return _search(request, resource_type, _search_params(request))


def _search(request: Request, resource_type: str, params: QueryDict) -> Response:
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
        return Response(resources.bundle(found, base_url=base))
    if resource_type == "AuditEvent":
        opened = records_access.access_patient(request.user, _patient_param(request, params))
        found = selectors.fhir_audit_events_for_patient(user=request.user, patient=opened.patient)
        return Response(resources.bundle(found, base_url=base))
    if resource_type == "Consent":
        opened = records_access.access_patient(request.user, _patient_param(request, params))
        consents = consent_selectors.consents_for_patient(patient=opened.patient)
        found = [resources.consent_to_fhir(c) for c in consents]
        return Response(resources.bundle(found, base_url=base))
    opened = _open_chart(request, _patient_param(request, params))
    found = selectors.fhir_records_for_patient(chart=opened, resource_type=resource_type)
    code = params.get("code") or ""
    if code:
        code = code.rpartition("|")[2]
        found = [r for r in found if code in {c.get("code") for c in _codings(r)}]
    outcome = selectors.fhir_withheld_outcome(chart=opened, resource_type=resource_type)
    return Response(resources.bundle(found, base_url=base, outcome=outcome))


def _codings(resource: dict[str, Any]) -> list[dict[str, Any]]:
    for key in ("code", "vaccineCode", "medicationCodeableConcept", "type"):
        concept = resource.get(key)
        if isinstance(concept, dict):
            return concept.get("coding") or []
    return []


class ReadView(FhirView):
    def get(self, request: Request, resource_type: str, resource_id: str) -> Response:
        return Response(_read(request, resource_type, resource_id))


def _read(request: Request, resource_type: str, resource_id: str) -> dict[str, Any]:
    if resource_type in ("AuditEvent", "Provenance"):
        kinds = resources.ACCESS_KINDS
        if resource_type == "Provenance":
            kinds = (".created", ".corrected", ".registered")
        event = selectors.fhir_ledger_event_access(
            user=request.user, hospital=request.hospital, event_id=resource_id, kinds=kinds
        )
        if resource_type == "AuditEvent":
            return selectors.fhir_audit_event(event=event)
        return selectors.fhir_provenance(event=event)
    if resource_type == "Consent":
        # Whoever may open the chart may read the consents on it; anyone else gets 404.
        consent = consent_selectors.consent_by_uuid(consent_id=resource_id)
        if consent is None:
            raise Http404
        records_access.access_patient(request.user, consent.patient_id)
        return resources.consent_to_fhir(consent)
    if resource_type not in resources.RESOURCE_MODELS:
        raise Http404
    with transaction.atomic():
        opened = selectors.fhir_record_access(
            user=request.user, resource_type=resource_type, resource_id=resource_id
        )
        record = opened.record
        _read_recorded(request, opened.chart, record)
    return resources.to_fhir(record)


class NotFoundView(FhirPublicView):
    """Anything else under the base: 404 for every method FHIR uses."""

    http_method_names = ["get", "post", "put", "delete", "patch"]

    def get(self, request: Request, rest: str = "") -> Response:
        raise Http404

    post = put = delete = patch = get
