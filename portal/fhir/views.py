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
logs and proxies keep them. Every search (and `$everything`) pages: its parameters are read
by portal.fhir.search, its pages cut by portal.fhir.paging, whose links carry only an
opaque token bound to the caller and the hospital (a search by POST pages by GET).
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import urlencode

from django.db import transaction
from django.http import Http404, QueryDict
from django.urls import reverse
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from consent import selectors as consent_selectors
from portal.fhir import paging, resources, search, selectors
from portal.fhir.rest import FORM, FhirError, FhirFormParser, FhirPublicView, FhirView
from portal.fhir.services import BundleImportError, fhir_bundle_import
from portal.records import access as records_access
from portal.records import audit
from portal.records.access import OpenedChart
from portal.records.models import Document

SEARCHABLE = (*resources.RESOURCE_MODELS, "AuditEvent", "Provenance", "Consent")
SEARCH_BY_POST = (
    f"Also POST [type]/_search with the parameters in an {FORM} "
    "body, which keeps them out of URLs and server logs."
)


def _base_url(request: Request) -> str:
    return request.build_absolute_uri(reverse("fhir:root"))


# --- metadata ---------------------------------------------------------------------------


class MetadataView(FhirPublicView):
    """The CapabilityStatement: public, and nothing of any hospital in it."""

    def get(self, request: Request) -> Response:
        return Response(capability_statement(request))


def _search_params_of(resource_type: str) -> list[dict[str, str]]:
    """One type's row of the search table (portal.fhir.search.SEARCH_PARAMS), with the
    result parameters every search takes."""
    out = [
        {"name": p.name, "type": p.type, **({"documentation": p.documentation}
                                             if p.documentation else {})}
        for p in search.SEARCH_PARAMS[resource_type]
    ]  # fmt: skip
    out.append({"name": "_count", "type": "number", "documentation": search.COUNT_DOC})
    out.append({"name": "_total", "type": "special", "documentation": "none spares the count"})
    sorts = search.SORTS.get(resource_type)
    if sorts:
        out.append({"name": "_sort", "type": "special", "documentation": ", ".join(sorts)})
    return out


def _resource_capability(resource_type: str) -> dict[str, Any]:
    interactions = [{"code": "read"}, {"code": "search-type", "documentation": SEARCH_BY_POST}]
    entry: dict[str, Any] = {
        "type": resource_type,
        "interaction": interactions,
        "searchParam": _search_params_of(resource_type),
    }
    if resource_type in search.INCLUDES:
        entry["searchInclude"] = list(search.INCLUDES[resource_type])
    if resource_type == "Patient":
        entry["operation"] = [
            {
                "name": "everything",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                "documentation": f"Paged like the searches: {search.COUNT_DOC}",
            }
        ]
    return entry


def capability_statement(request: Request) -> dict[str, Any]:
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
                "POST keeps names, birth dates and MRNs out of URLs and server logs). Every "
                f"search pages ({search.COUNT_DOC}): Bundle.link next and previous carry "
                "only an opaque _page token, bound to the caller and the hospital, valid for "
                "an hour. Unknown parameters are ignored and named in an OperationOutcome "
                "entry; with Prefer: handling=strict they are a 400.",
                "security": {
                    "description": "A bearer API token of a staff member (Authorization: "
                    "Bearer <token>; X-Hospital: <slug> picks one of their hospitals), or "
                    "the session of a staff member of the active hospital, signed in with "
                    "two factors (POST needs the CSRF token)."
                },
                "resource": [_resource_capability(rtype) for rtype in search.SEARCH_PARAMS],
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


def _search_params(request: Request) -> QueryDict:
    """A search's parameters: the query string (GET [type]?...), and for POST [type]/_search
    the form-encoded body too (FHIR counts both)."""
    if request.method != "POST":
        return request.query_params
    params = request.query_params.copy()
    if isinstance(request.data, QueryDict):  # an empty body parses to nothing at all
        params.update(request.data)
    return params


def _page_owner(request: Request) -> dict[str, int]:
    """Whom a page token is bound to: the caller and the hospital the request acts in (its
    key encrypts the token). The one place to change for callers of another kind."""
    hospital = getattr(request, "hospital", None)
    if hospital is None or request.user.pk is None:
        raise Http404
    return {"user_id": request.user.pk, "hospital_id": hospital.pk}


def _search_and_state(
    request: Request, resource_type: str, route: str, query: QueryDict
) -> tuple[search.Search, paging.PageState]:
    """The search a request asks for: its parameters, or those of its page token (`_page`,
    which must be this caller's, at this hospital, for this route: else 404)."""
    token = (query.get("_page") or "").strip()
    if token:
        state = paging.page_state(token=token, **_page_owner(request), route=route)
        query = search.search_query(state.params)
        return search.search_parse(resource_type=resource_type, query=query), state
    strict = search.strict_handling(request.headers.get("Prefer", ""))
    found = search.search_parse(resource_type=resource_type, query=query, strict=strict)
    return found, paging.PageState(found.params)


def _paged(
    request: Request,
    *,
    route: str,
    found: search.Search,
    state: paging.PageState,
    sections: list[paging.Section],
    outcome: dict[str, Any] | None = None,
    include: dict[str, Any] | None = None,
    on_page: Any = None,
) -> Response:
    """One page of a search as a searchset Bundle: its matches (and `include`, the chart's
    Patient, when asked for), `total`, and `self`/`first`/`previous`/`next` links that carry
    only a page token (portal.fhir.paging)."""
    page = paging.page_fetch(
        sections, count=found.count, cursor=state.cursor, backward=state.backward,
        with_total=found.with_total,
    )  # fmt: skip
    if on_page is not None:
        on_page(page)
    base = _base_url(request)
    url = f"{base}{route}"

    def link(relation: str, cursor: paging.Position | None, backward: bool = False) -> dict:
        token = paging.page_token(
            **_page_owner(request), route=route,
            state=paging.PageState(found.params, cursor, backward),
        )  # fmt: skip
        return {"relation": relation, "url": f"{url}?{urlencode({'_page': token})}"}

    links = [link("self", state.cursor, state.backward), link("first", None)]
    if page.has_previous:
        links.append(link("previous", page.first, True))
    if page.has_next:
        links.append(link("next", page.last))
    matches = [section.render(row) for section, row in page.rows]
    if found.ignored:
        outcome = resources.outcome_add(
            outcome,
            f"Ignored (not supported here): {', '.join(found.ignored)}.",
            code="not-supported",
        )
    return Response(
        resources.bundle(
            matches,
            base_url=base,
            outcome=outcome,
            total=page.total,
            links=links,
            included=[include] if include is not None and matches else [],
        )
    )


def _patient_search(request: Request, query: QueryDict) -> Response:
    found, state = _search_and_state(request, "Patient", "Patient", query)
    if not any(found.patient_search.values()) and not found.last_updated:
        raise FhirError(
            400, f"Search Patient by one of: {', '.join((*search.PATIENT_SEARCH, '_lastUpdated'))}."
        )
    sections = selectors.fhir_patient_sections(
        user=request.user, hospital=request.hospital, search=found
    )
    return _paged(request, route="Patient", found=found, state=state, sections=sections)


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
    """`Patient/{id}/$everything`, paged like every search (its `_count`, `_page`)."""

    def get(self, request: Request, resource_id: str) -> Response:
        route = f"Patient/{resource_id}/$everything"
        query = QueryDict(mutable=True)
        for name in ("_count", "_page"):
            if name in request.query_params:
                query[name] = request.query_params[name]
        found, state = _search_and_state(request, "$everything", route, query)
        with transaction.atomic():
            opened = _open_chart(request, resource_id)

            def documents_read(page: paging.Page) -> None:
                for _section, row in page.rows:  # their contents are in the page
                    if isinstance(row, Document):
                        _read_recorded(request, opened, row)

            return _paged(
                request, route=route, found=found, state=state,
                sections=selectors.fhir_everything_sections(chart=opened),
                outcome=selectors.fhir_withheld_outcome(chart=opened, resource_type=None),
                on_page=documents_read,
            )  # fmt: skip


# --- every other type -------------------------------------------------------------------------


def _patient_param(request: Request, value: str) -> str:
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
    found, state = _search_and_state(request, resource_type, resource_type, params)
    paged = partial(_paged, request, route=resource_type, found=found, state=state)
    if resource_type == "Provenance":
        target = (found.params.get("target") or [""])[0].removeprefix(base)
        if "/" not in target:
            raise FhirError(400, "Search Provenance by target: ?target={type}/{id}.")
        rtype, rid = target.split("/", 1)
        record = selectors.fhir_record_access(
            user=request.user, resource_type=rtype, resource_id=rid
        ).record
        return paged(sections=selectors.fhir_provenance_sections(record=record, search=found))
    patient_id = _patient_param(request, found.patient)
    if resource_type == "AuditEvent":
        opened = records_access.access_patient(request.user, patient_id)
        return paged(
            sections=selectors.fhir_audit_event_sections(
                user=request.user, chart=opened, search=found
            )
        )
    if resource_type == "Consent":
        opened = records_access.access_patient(request.user, patient_id)
        return paged(sections=selectors.fhir_consent_sections(chart=opened, search=found))
    opened = _open_chart(request, patient_id)
    return paged(
        sections=selectors.fhir_record_sections(chart=opened, search=found),
        outcome=selectors.fhir_withheld_outcome(chart=opened, resource_type=resource_type),
        include=resources.patient_to_fhir(opened.patient) if found.include_patient else None,
    )


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
