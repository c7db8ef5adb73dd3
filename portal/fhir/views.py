"""The FHIR R4 REST interface under /fhir/R4/ (JSON, application/fhir+json).

DRF views on the REST API's base (portal.fhir.rest.FhirView over portal.api.base.ApiView):
the same authentication (a bearer token, or the portal session with DRF's CSRF check) and
one permission, portal.fhir.callers.FhirAccess: staff as StaffAccess admits them (the
hospital the request acts in, two factors) or patients as PatientAccess does (their own
registrations, and what a proxy grant shares, as the patient portal opens them). Every view
takes the caller (callers.fhir_caller) and opens charts and records through it, so the
credential's own limits (an app's types, categories, launch patient) narrow what the access
module opens, never widen it. Access is decided by the access module (records.access), so
missing and forbidden are the same 404, and another hospital's ids are 404 too. Errors are
OperationOutcome resources (400, 401, 403, 404, 405, 406, 413, 415, 422, 429), never an
HTML page or a stack trace. Reading a chart, a record or a document through FHIR records
the same access events as the portals (a patient's own reads none, unless through an app).

Every search also answers `POST [type]/_search` with its parameters in a form-encoded body
(FHIR's search by POST), so names, birth dates and MRNs need not be in a URL, where access
logs and proxies keep them. Every search (and `$everything`) pages: its parameters are read
by portal.fhir.search, its pages cut by portal.fhir.paging, whose links carry only an
opaque token bound to the caller and the hospital (a search by POST pages by GET).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
from portal.fhir import history, paging, resources, search, selectors, transactions
from portal.fhir.callers import (
    FhirCaller,
    caller_hospital_ids,
    fhir_caller,
    fhir_chart_open,
    fhir_owner_may,
    fhir_record_open,
)
from portal.fhir.rest import FORM, FhirError, FhirFormParser, FhirPublicView, FhirView
from portal.fhir.services import IMPORTED_TYPES, BundleImportError
from portal.records import audit
from portal.records.access import OpenedChart
from portal.records.models import ClinicalRecord, Document

SEARCHABLE = (*resources.RESOURCE_MODELS, "AuditEvent", "Provenance", "Consent")
CREATABLE = IMPORTED_TYPES  # POST [type] goes through the importer
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


# Records keep versions (corrections); the logical id is the first version's (README, FHIR).
VERSIONED = {
    "versioning": "versioned",
    "readHistory": True,
    "updateCreate": False,
    "conditionalCreate": True,
}
WRITABLE_INTERACTIONS = [
    {"code": "read", "documentation": "Any version's id answers the current version."},
    {"code": "vread"},
    {"code": "history-instance", "documentation": "Newest first; replaced versions are "
     "entered-in-error."},
    {"code": "search-type", "documentation": SEARCH_BY_POST},
    {"code": "create", "documentation": "Conditional create with If-None-Exist: for Patient "
     "its search parameters, for records identifier=[system|]value (201 created, 200 one "
     "match, 412 several)."},
]  # fmt: skip


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
    versioned = resource_type == "Patient" or resource_type in resources.RESOURCE_MODELS
    interactions = [{"code": "read"}, {"code": "search-type", "documentation": SEARCH_BY_POST}]
    entry: dict[str, Any] = {
        "type": resource_type,
        **(VERSIONED if versioned else {}),
        "interaction": WRITABLE_INTERACTIONS if versioned else interactions,
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
    if resource_type == "Observation":
        entry["documentation"] = OBSERVATION_DOCUMENTATION
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
                "security": _security(request),
                "resource": [
                    *(_resource_capability(rtype) for rtype in search.SEARCH_PARAMS),
                    {
                        "type": "Practitioner",
                        "interaction": [
                            {
                                "code": "read",
                                "documentation": "A staff member's own only: the fhirUser "
                                "of their SMART apps' id_tokens.",
                            }
                        ],
                    },
                ],
                "interaction": [
                    {
                        "code": "transaction",
                        "documentation": "POST [base] a transaction Bundle: a transaction-"
                        "response, one entry per request entry (201 Created, or 200 OK for "
                        "what was already there or is not kept, with an outcome saying so); "
                        "all or nothing. A collection Bundle is imported alike and answered "
                        "with the import report.",
                    },
                    {
                        "code": "batch",
                        "documentation": "POST [base] a batch Bundle: a batch-response, each "
                        "entry on its own (a refused one carries its OperationOutcome).",
                    },
                ],
            }
        ],
    }
    return capability


def _security(request: Request) -> dict[str, Any]:
    """How to authenticate: the portal's own credentials, and SMART App Launch (the
    oauth-uris extension and the SMART-on-FHIR service, which SMART clients read)."""

    def url(name: str) -> str:
        return request.build_absolute_uri(reverse(name))

    return {
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth2 using SMART-on-FHIR profile (see /.well-known/smart-configuration)",
            }
        ],
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [
                    {"url": "authorize", "valueUri": url("oauth2_provider:authorize")},
                    {"url": "token", "valueUri": url("oauth2_provider:token")},
                    {"url": "revoke", "valueUri": url("oauth2_provider:revoke-token")},
                    {"url": "introspect", "valueUri": url("oauth2_provider:introspect")},
                    {"url": "manage", "valueUri": url("smart:connected_apps")},
                ],
            }
        ],
        "description": "SMART App Launch 2.x (authorization code with PKCE S256; scopes "
        "patient/ and user/ Type.rs, granular ?category= for Observation; launch, "
        "launch/patient, openid fhirUser, offline_access): an app's bearer access token "
        "reads what its scopes name of the launch patient's chart, as the person who "
        "authorized it. Also: a bearer API token of a staff member (Authorization: "
        "Bearer <token>; X-Hospital: <slug> picks one of their hospitals), or the session of "
        "a staff member of the active hospital, signed in with two factors (POST needs the "
        "CSRF token). Patients: a patient API token or the patient portal's session reads "
        "the patient's own registrations (GET Patient lists them; Patient/{id}, $everything, "
        "every search by patient and read, AuditEvent, Consent) under the patient portal's "
        "rules; a proxy reads the categories its grant shares, never a restricted note; "
        "anyone else's ids are 404, and the transaction and batch interactions are "
        "staff-only (403).",
    }


# --- import -------------------------------------------------------------------------------


class RootView(FhirView):
    """POST a transaction, batch or collection Bundle: imported into the active hospital.
    Staff only: a patient (or an app) gets a 403."""

    http_method_names = ["post"]
    staff_only = frozenset({"POST"})

    def post(self, request: Request) -> Response:
        bundle = request.data  # parsed by FhirJSONParser: bounded, or a 400 that says why
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise FhirError(400, "POST to the base takes a Bundle.", "structure")
        caller = fhir_caller(request)
        with _import_errors():
            # The caller is the actor: the import writes only into charts they may change.
            answer = transactions.fhir_bundle_respond(
                hospital=caller.hospital, bundle=bundle, actor=caller.user
            )
        return Response(answer)


@contextmanager
def _import_errors() -> Iterator[None]:
    """The importer's and the creates' refusals as OperationOutcome errors."""
    try:
        yield
    except BundleImportError as exc:
        code = {422: "processing", 409: "conflict"}.get(exc.status, "structure")
        raise FhirError(exc.status, exc.errors, code) from None
    except transactions.PreconditionFailed as exc:
        raise FhirError(412, str(exc), "duplicate") from None


def _create(request: Request, resource_type: str) -> Response:
    """POST [type]: create one resource; with If-None-Exist, a conditional create
    (portal.fhir.transactions)."""
    caller = fhir_caller(request)
    with _import_errors():
        created = transactions.fhir_resource_create(
            hospital=caller.hospital,
            actor=caller.user,
            resource_type=resource_type,
            resource=request.data,
            if_none_exist=request.headers.get("If-None-Exist"),
        )
    rtype, rid = created.url.split("/", 1)
    # A match is an existing resource: answering it is a read, recorded as one.
    if rtype == "Patient":
        opened = (
            _open_chart(request, rid)
            if created.status == 200
            else fhir_chart_open(caller=caller, patient_id=rid)
        )
        body = resources.patient_to_fhir(opened.patient)
    elif created.status == 200:
        body = _read(request, rtype, rid)
    else:
        versions = history.fhir_record_versions(caller=caller, resource_type=rtype, resource_id=rid)
        body = history.version_as_fhir(versions, versions.current)
    return Response(
        body,
        status=created.status,
        headers={
            "Location": f"{_base_url(request)}{created.location}",
            "ETag": f'W/"{body["meta"]["versionId"]}"',
        },
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


def _scope_required(caller: FhirCaller, resource_type: str) -> None:
    """A type the caller's credential does not reach: 403, before anything is looked up
    (so it tells nothing about what exists)."""
    if not caller.reads_type(resource_type):
        raise FhirError(403, f"Insufficient scope: this access does not reach {resource_type}.",
                        "forbidden")  # fmt: skip


def _page_owner(request: Request) -> dict[str, int]:
    """Whom a page token is bound to: the caller and the hospital the request acts in (its
    key encrypts the token): staff's active hospital, a patient's first registration's
    hospital. The one place to change for callers of another kind."""
    hospitals = caller_hospital_ids(request)
    if not hospitals or request.user.pk is None:
        raise Http404
    return {"user_id": request.user.pk, "hospital_id": hospitals[0]}


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
    matches = paging.rows_rendered(page.rows)
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
    caller = fhir_caller(request)
    _scope_required(caller, "Patient")
    found, state = _search_and_state(request, "Patient", "Patient", query)
    if not caller.staff:
        # A patient finds their own registrations only, whatever they search for.
        sections = selectors.fhir_patient_sections_own(
            user=caller.user, search=found, patient_id=caller.patient_id
        )
        return _paged(request, route="Patient", found=found, state=state, sections=sections)
    if not any(found.patient_search.values()) and not found.last_updated:
        raise FhirError(
            400, f"Search Patient by one of: {', '.join((*search.PATIENT_SEARCH, '_lastUpdated'))}."
        )
    assert caller.hospital is not None  # staff act in a hospital
    sections = selectors.fhir_patient_sections(
        user=caller.user, hospital=caller.hospital, search=found, patient_id=caller.patient_id
    )
    return _paged(request, route="Patient", found=found, state=state, sections=sections)


def _open_chart(request: Request, patient_id: Any) -> OpenedChart:
    """The chart, opened for the caller as their portal opens it, with its access event."""
    opened = fhir_chart_open(caller=fhir_caller(request), patient_id=patient_id)
    _read_recorded(request, opened)
    return opened


def _read_recorded(request: Request, chart: OpenedChart, record: Any = None) -> None:
    """A read's access event, as the portals record it: every staff and proxy read; a
    patient's read of their own chart only when it goes through a third-party app (the
    portal records none of the patient's own reads: nobody else read anything)."""
    caller = fhir_caller(request)
    if chart.owner and caller.client_id is None:
        return
    audit.chart_read_record(
        reader=caller.user, chart=chart, record=record, membership=caller.membership,
        app=caller.client_id,
    )  # fmt: skip


class PatientSearchView(FhirView):
    http_method_names = ["get", "post"]
    staff_only = frozenset({"POST"})  # creates

    def get(self, request: Request) -> Response:
        return _patient_search(request, _search_params(request))

    def post(self, request: Request) -> Response:
        return _create(request, "Patient")


class PatientReadView(FhirView):
    def get(self, request: Request, resource_id: str) -> Response:
        _scope_required(fhir_caller(request), "Patient")
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
        caller = fhir_caller(request)
        with transaction.atomic():
            opened = _open_chart(request, resource_id)

            def documents_read(page: paging.Page) -> None:
                for _section, row in page.rows:  # their contents are in the page
                    if isinstance(row, Document):
                        _read_recorded(request, opened, row)

            return _paged(
                request, route=route, found=found, state=state,
                sections=selectors.fhir_everything_sections(
                    chart=opened, resource_types=caller.resource_types,
                    consents=fhir_owner_may(caller=caller, chart=opened),
                ),
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
    http_method_names = ["get", "post"]
    staff_only = frozenset({"POST"})  # creates

    def get(self, request: Request, resource_type: str) -> Response:
        return _search(request, resource_type, _search_params(request))

    def post(self, request: Request, resource_type: str) -> Response:
        if resource_type not in SEARCHABLE:
            raise Http404
        if resource_type not in CREATABLE:
            raise FhirError(405, f"{resource_type} is not created through FHIR.", "not-supported")
        return _create(request, resource_type)


class SearchPostView(FhirView):
    """POST [type]/_search, for Patient and every type GET [type]? searches."""

    http_method_names = ["post"]
    parser_classes = [FhirFormParser]

    def post(self, request: Request, resource_type: str) -> Response:
        if resource_type == "Patient":
            return _patient_search(request, _search_params(request))
        return _search(request, resource_type, _search_params(request))


def _owner_chart(caller: FhirCaller, patient_id: Any) -> OpenedChart:
    """A chart whose patient's own things (consents, who read it) the caller asks for: staff
    who may open it, or the patient; a proxy shares only the categories granted (404)."""
    opened = fhir_chart_open(caller=caller, patient_id=patient_id)
    if not fhir_owner_may(caller=caller, chart=opened):
        raise Http404
    return opened


def _search(request: Request, resource_type: str, params: QueryDict) -> Response:
    if resource_type not in SEARCHABLE:
        raise Http404
    caller = fhir_caller(request)
    _scope_required(caller, resource_type)
    base = _base_url(request)
    found, state = _search_and_state(request, resource_type, resource_type, params)
    paged = partial(_paged, request, route=resource_type, found=found, state=state)
    if resource_type == "Provenance":
        target = (found.params.get("target") or [""])[0].removeprefix(base)
        if "/" not in target:
            raise FhirError(400, "Search Provenance by target: ?target={type}/{id}.")
        rtype, rid = target.split("/", 1)
        _scope_required(caller, rtype)
        model, raw = selectors.fhir_record_ref(resource_type=rtype, resource_id=rid)
        record = fhir_record_open(caller=caller, model=model, record_id=raw).record
        return paged(sections=selectors.fhir_provenance_sections(record=record, search=found))
    patient_id = _patient_param(request, found.patient)
    if resource_type == "AuditEvent":
        opened = _owner_chart(caller, patient_id)
        return paged(
            sections=selectors.fhir_audit_event_sections(
                user=caller.user, chart=opened, search=found
            )
        )
    if resource_type == "Consent":
        opened = _owner_chart(caller, patient_id)
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
    caller = fhir_caller(request)
    if resource_type == "Practitioner":
        # A staff member's own, and nobody else's: what a SMART id_token's fhirUser names.
        if not caller.staff or resource_id != str(caller.user.pk):
            raise Http404
        return resources.practitioner_to_fhir(caller.user)
    if resource_type in SEARCHABLE:
        _scope_required(caller, resource_type)
    if resource_type in ("AuditEvent", "Provenance"):
        kinds = resources.ACCESS_KINDS
        if resource_type == "Provenance":
            kinds = (".created", ".corrected", ".registered")
        event = selectors.fhir_ledger_event_access(
            user=caller.user, hospital=caller.hospital, event_id=resource_id, kinds=kinds
        )
        if not caller.staff or caller.patient_id is not None:
            # Through a patient's (or an app's) access: an event of a chart they may read,
            # and that is the patient's own (a proxy's grant shares records, not the log).
            if event.patient_id is None:
                raise Http404
            _owner_chart(caller, event.patient_id)
        if resource_type == "AuditEvent":
            return selectors.fhir_audit_event(event=event)
        target = selectors.fhir_provenance_target(event=event)
        if isinstance(target, ClinicalRecord) and (
            not caller.staff or caller.categories is not None or caller.patient_id is not None
        ):
            # The record it is about must be one the caller may read (its category, a
            # restricted note): not only its chart.
            fhir_record_open(caller=caller, model=type(target), record_id=target.pk)
        return selectors.fhir_provenance(event=event, target=target)
    if resource_type == "Consent":
        # Whoever may open the chart may read the consents on it; anyone else gets 404.
        consent = consent_selectors.consent_by_uuid(consent_id=resource_id)
        if consent is None:
            raise Http404
        _owner_chart(caller, consent.patient_id)
        return resources.consent_to_fhir(consent)
    if resource_type not in resources.RESOURCE_MODELS:
        raise Http404
    # Any version's id names the resource: the current version answers (portal.fhir.history).
    with transaction.atomic():
        versions = history.fhir_record_versions(
            caller=caller, resource_type=resource_type, resource_id=resource_id
        )
        _read_recorded(request, versions.chart, versions.current)
    return history.version_as_fhir(versions, versions.current)


class HistoryView(FhirView):
    """`[type]/{id}/_history`: every version the caller may see, newest first."""

    def get(self, request: Request, resource_type: str, resource_id: str) -> Response:
        _scope_required(fhir_caller(request), resource_type)
        if resource_type == "Patient":
            opened = _open_chart(request, resource_id)
            return Response(
                history.patient_history_bundle(opened.patient, base_url=_base_url(request))
            )
        if resource_type not in resources.RESOURCE_MODELS:
            raise Http404
        with transaction.atomic():
            versions = history.fhir_record_versions(
                caller=fhir_caller(request), resource_type=resource_type, resource_id=resource_id
            )
            _read_recorded(request, versions.chart, versions.current)
        return Response(history.history_bundle(versions, base_url=_base_url(request)))


class VersionReadView(FhirView):
    """`[type]/{id}/_history/{vid}` (vread): one version, entered-in-error ones included."""

    def get(self, request: Request, resource_type: str, resource_id: str, vid: str) -> Response:
        _scope_required(fhir_caller(request), resource_type)
        if resource_type == "Patient":
            opened = _open_chart(request, resource_id)
            if vid != "1":
                raise Http404
            return Response(resources.patient_to_fhir(opened.patient))
        if resource_type not in resources.RESOURCE_MODELS:
            raise Http404
        with transaction.atomic():
            versions = history.fhir_record_versions(
                caller=fhir_caller(request), resource_type=resource_type, resource_id=resource_id
            )
            record = history.version_of(versions, vid)
            _read_recorded(request, versions.chart, record)
        return Response(
            history.version_as_fhir(versions, record), headers={"ETag": f'W/"{record.version}"'}
        )


class NotFoundView(FhirPublicView):
    """Anything else under the base: 404 for every method FHIR uses."""

    http_method_names = ["get", "post", "put", "delete", "patch"]

    def get(self, request: Request, rest: str = "") -> Response:
        raise Http404

    post = put = delete = patch = get
