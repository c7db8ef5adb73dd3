"""The writes integrators expect on top of the importer (portal.fhir.services): answers to
transaction and batch Bundles, and create / conditional create of one resource.

- `POST [base]` with a `transaction` Bundle answers a `transaction-response` Bundle, one entry
  per request entry, in order: `201 Created` for an entry that wrote rows, `200 OK` for one
  that wrote nothing because it is already there (imported before, a conditional create that
  matched, a Patient whose MRN is registered), each with `location`
  (`{type}/{id}/_history/{vid}`, the current version) and `lastModified`; `200 OK` with no
  location and an informational `outcome` for an entry the portal does not keep (a type it
  does not model, such as Claim, or content it cannot hold, with the reason). An entry that
  became several rows (a blood pressure panel: one Observation per component) is located at
  its first; its outcome names them all. Atomic: any error refuses the whole Bundle (400 /
  422 OperationOutcome, nothing written), as the importer always did.
- A `batch` answers a `batch-response`: each entry on its own (references to other entries
  of the batch still resolve); a refused entry answers its own status (400 invalid FHIR, 422
  otherwise) and OperationOutcome in `response.outcome`, the others are written. What makes
  the Bundle itself malformed (an entry without a resource, a method other than POST/PUT, two
  entries with one id, unsupported ifNoneExist criteria) refuses the whole batch, as before.
- A `collection` is imported as before and answered with the import report (an
  OperationOutcome).
- `POST [type]` creates one resource (a Bundle of one `POST` entry to the importer: the same
  checks, access rule and ledger events). With `If-None-Exist`: no match creates (201), one
  match answers it (200, nothing written), several answer 412. Criteria: for Patient any of
  its search parameters (identifier, name, family, given, birthdate; matched among the
  patients the caller may open); for record types `identifier=[system|]value` (the
  identifier a resource was created under: the importer remembers it in ImportIdentity).
  Concurrent conditional creates with the same criteria wait for one another
  (portal.fhir.locks) and the unique constraints (ImportIdentity; a Patient's MRN) refuse
  what slipped through, after which the request is retried and finds the winner's row.
  `_id` is not taken as criteria: a create never makes a given id, so it could not keep
  concurrent creates from duplicating.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from django.apps import apps
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.http import Http404, QueryDict

from portal.fhir import history, resources, selectors
from portal.fhir.locks import conditional_lock
from portal.fhir.services import (
    IMPORTED_TYPES,
    BundleImportError,
    EntryResult,
    ImportReport,
    conditional_identifier,
    fhir_bundle_import,
)
from portal.records.models import Patient
from portal.tenancy.models import Hospital
from portal.tenancy.scoping import hospital_scope

PATIENT_CRITERIA = ("identifier", "name", "family", "given", "birthdate")
T = TypeVar("T")
RETRIES = 2  # after a unique constraint refused a concurrent duplicate


class PreconditionFailed(Exception):
    """A conditional create's criteria match several resources (HTTP 412)."""


@dataclass(frozen=True)
class Located:
    """Where a row is in FHIR: `{type}/{logical id}` at its current version."""

    url: str
    version: int
    last_modified: str

    @property
    def location(self) -> str:
        return f"{self.url}/_history/{self.version}"


def _retried(write: Callable[[], T], *, what: str) -> T:
    """`write`, again after a unique constraint refused a concurrent duplicate (the retry
    finds the other request's rows: "already imported", or the match)."""
    for attempt in range(RETRIES + 1):
        try:
            return write()
        except IntegrityError:
            if attempt == RETRIES:
                raise BundleImportError(
                    [f"a concurrent request wrote the same {what}; send it again"], status=409
                ) from None
    raise AssertionError("unreachable")


def _import(*, hospital: Hospital, actor: User | None, bundle: dict[str, Any]) -> ImportReport:
    """fhir_bundle_import, retried after a concurrent duplicate (_retried)."""
    return _retried(
        lambda: fhir_bundle_import(hospital=hospital, bundle=bundle, actor=actor),
        what="resources",
    )


def locate(targets: list[tuple[str, int]]) -> dict[tuple[str, int], Located]:
    """The FHIR location of each (model label, row id): its logical id and current version.
    A few queries per model, whatever the number of rows."""
    out: dict[tuple[str, int], Located] = {}
    by_label: dict[str, set[int]] = {}
    for label, pk in targets:
        by_label.setdefault(label, set()).add(pk)
    for label, pks in by_label.items():
        model = apps.get_model(label)
        if model is Patient:
            for patient in Patient._base_manager.filter(pk__in=pks).only("pk", "created_at"):
                out[(label, patient.pk)] = Located(
                    f"Patient/{patient.pk}", 1, patient.created_at.isoformat()
                )
            continue
        fields = ("pk", "patient_id", "replaces", "version", "created_at")
        rows = list(model._base_manager.filter(pk__in=pks).only(*fields))
        heads = history.current_versions(model, rows)
        prefix = resources.DOCREF_PREFIX.get(model, "")
        for row in rows:
            root, head = heads[row.pk]
            rtype = resources.resource_type_of(head)
            out[(label, row.pk)] = Located(
                f"{rtype}/{prefix}{root}", head.version, head.created_at.isoformat()
            )
    return out


def _entry_response(result: EntryResult | None, located: dict[tuple[str, int], Located]) -> dict:
    if result is None:  # every entry has a result; defensive
        result = EntryResult("error", reason="not processed")
    if result.status == "error":
        status = (
            "400 Bad Request"
            if result.reason.startswith("not valid FHIR")
            else ("422 Unprocessable Entity")
        )
        return {"status": status, "outcome": resources.operation_outcome(result.reason)}
    if result.status == "skipped":
        return {
            "status": "200 OK",
            "outcome": resources.operation_outcome(
                f"not kept: {result.reason}", code="informational", severity="information"
            ),
        }
    places = [located[t] for t in result.targets if t in located]
    response: dict[str, Any] = {"status": "201 Created" if result.status == "created" else "200 OK"}
    if places:
        response |= {
            "location": places[0].location,
            "etag": f'W/"{places[0].version}"',
            "lastModified": places[0].last_modified,
        }
    if len(places) > 1:
        response["outcome"] = resources.operation_outcome(
            "stored as " + ", ".join(p.location for p in places),
            code="informational",
            severity="information",
        )
    return response


def fhir_bundle_respond(
    *, hospital: Hospital, actor: User, bundle: dict[str, Any]
) -> dict[str, Any]:
    """Import a transaction, batch or collection Bundle and answer it as FHIR says (see the
    module's docstring). Raises BundleImportError (nothing written) for a bad Bundle and,
    in a transaction, for any bad entry."""
    report = _import(hospital=hospital, actor=actor, bundle=bundle)
    if report.bundle_type == "collection":
        return resources.operation_outcome(
            report.summary().splitlines(), code="informational", severity="information"
        )
    located = locate([t for r in report.results.values() for t in r.targets])
    entries = [
        {"response": _entry_response(report.results.get(i), located)} for i in range(report.entries)
    ]
    return {"resourceType": "Bundle", "type": f"{report.bundle_type}-response", "entry": entries}


# --- create, conditional create -----------------------------------------------------------


@dataclass(frozen=True)
class Created:
    """A create's answer: 201 (written) or 200 (a conditional create matched, nothing
    written), and where the resource is (`url`: `{type}/{id}`, `location`: its version)."""

    status: int
    url: str
    location: str


def _criteria_key(resource_type: str, criteria: str) -> str:
    """The canonical criteria (sorted parameters): the key of the lock and of the identity."""
    params = QueryDict(criteria.removeprefix("?"))
    if resource_type == "Patient":
        unknown = set(params) - set(PATIENT_CRITERIA)
        if unknown or not params:
            raise BundleImportError(
                [f"If-None-Exist for Patient takes {', '.join(PATIENT_CRITERIA)}"], status=400
            )
        if any(len(params.getlist(k)) > 1 or not params[k].strip() for k in params):
            raise BundleImportError(["If-None-Exist: give each parameter once"], status=400)
        if "birthdate" in params:
            try:
                date.fromisoformat(params["birthdate"].strip().removeprefix("eq"))
            except ValueError:
                raise BundleImportError(
                    ["If-None-Exist: birthdate must be a date (YYYY-MM-DD)"], status=400
                ) from None
    elif conditional_identifier(criteria) is None:
        raise BundleImportError(
            [f"If-None-Exist for {resource_type} takes identifier=[system|]value"], status=400
        )
    return "?" + "&".join(f"{k}={params[k].strip()}" for k in sorted(params))


def _patient_matches(*, actor: User, hospital: Hospital, key: str) -> list[Patient]:
    """The patients the caller may open that the criteria match (the Patient search)."""
    params = QueryDict(key.removeprefix("?"))
    birthdate = params.get("birthdate", "").removeprefix("eq")
    return selectors.fhir_patient_search(
        user=actor,
        hospital=hospital,
        **{k: params.get(k, "") for k in PATIENT_CRITERIA if k != "birthdate"},
        birthdate=date.fromisoformat(birthdate) if birthdate else None,
    )


def fhir_resource_create(
    *,
    hospital: Hospital,
    actor: User,
    resource_type: str,
    resource: Any,
    if_none_exist: str | None,
) -> Created:
    """`POST [type]` (with `If-None-Exist`: a conditional create). Raises BundleImportError
    for a bad resource or criteria, PreconditionFailed for several matches, Http404 for a
    type the portal does not create."""
    if resource_type not in IMPORTED_TYPES:
        raise Http404("No such resource type.")
    if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
        raise BundleImportError(
            [f"POST {resource_type} takes a {resource_type} resource"], status=400
        )
    criteria = (if_none_exist or "").strip()
    # Without criteria every create is new: a fresh key, whatever id the client sent.
    key = _criteria_key(resource_type, criteria) if criteria else f"create:{uuid.uuid4()}"
    request: dict[str, Any] = {"method": "POST", "url": resource_type}
    if criteria and resource_type != "Patient":
        request["ifNoneExist"] = key.removeprefix("?")
    entry = {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource, "request": request}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    if resource_type == "Patient" and criteria:
        report = _patient_create(hospital=hospital, actor=actor, key=key, bundle=bundle)
        if isinstance(report, Created):
            return report
    else:
        report = _import(hospital=hospital, actor=actor, bundle=bundle)
    result = report.results[0]
    if result.status == "skipped":
        raise BundleImportError([f"not kept: {result.reason}"], status=422)
    if not result.targets:
        raise BundleImportError([result.reason or "nothing was written"], status=422)
    located = locate(result.targets)[result.targets[0]]
    return Created(201 if result.status == "created" else 200, located.url, located.location)


def _patient_create(
    *, hospital: Hospital, actor: User, key: str, bundle: dict[str, Any]
) -> ImportReport | Created:
    """A Patient's conditional create: the match and the create under one lock, in one
    transaction (again after a unique constraint refused a concurrent duplicate)."""

    def match_or_create() -> ImportReport | Created:
        with hospital_scope(hospital), transaction.atomic():
            conditional_lock(hospital_id=hospital.pk, resource_type="Patient", key=key)
            matches = _patient_matches(actor=actor, hospital=hospital, key=key)
            if len(matches) > 1:
                raise PreconditionFailed(f"{len(matches)} patients match If-None-Exist")
            if matches:
                url = f"Patient/{matches[0].pk}"
                return Created(200, url, f"{url}/_history/1")
            return fhir_bundle_import(hospital=hospital, bundle=bundle, actor=actor)

    return _retried(match_or_create, what="patient")
