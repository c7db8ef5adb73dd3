"""FHIR versions of the portal's records: logical ids, read of the current version,
`_history` and vread. Reads only; access is decided by portal.records.access.

A correction (records.services.record_correct) writes a new row that `replaces` the old
one (version + 1) and marks the old one entered-in-error. FHIR sees the chain as ONE
resource: its logical id is the first version's row id (`Observation/12` stays
`Observation/12` after any number of corrections), each row is a version (`versionId` its
`version`). Any version's row id still names the resource (ids served before this scheme,
and references written with them, keep working): a read answers the current version, under
the logical id; `_history` and vread answer from any of them.

What a reader may see of a chain is what their opened chart shows (chart_records): a
version outside it (a category they are not shown) is not in the history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.http import Http404

from portal.fhir import resources
from portal.fhir.callers import FhirCaller, fhir_record_open
from portal.records import access as records_access
from portal.records.access import OpenedChart
from portal.records.models import ClinicalRecord, Document, Patient


@dataclass(frozen=True)
class RecordVersions:
    """A record's versions as one reader may see them, oldest first, and the chart."""

    chart: OpenedChart
    logical_id: str  # the FHIR id of every version
    versions: list[ClinicalRecord]
    requested: ClinicalRecord  # the row the caller named (the access event's record)

    @property
    def current(self) -> ClinicalRecord:
        return self.versions[-1]


def _links(model: type[ClinicalRecord], patient_ids: Iterable[int]) -> dict[int, int]:
    """Every correction of `model` on these charts: new row id -> the row it replaces. One
    query; corrections are few, and never cross a chart."""
    rows = model._base_manager.filter(patient_id__in=list(patient_ids), replaces__isnull=False)
    links = {row.pk: replaced_id(row) for row in rows.only("pk", "replaces")}
    return {new: old for new, old in links.items() if old is not None}


def replaced_id(record: ClinicalRecord) -> int | None:
    """The row id of the version `record` replaces (None: a first version)."""
    value = record.serializable_value("replaces")  # the foreign key's id, without a query
    return int(value) if value is not None else None


def _root(pk: int, links: dict[int, int]) -> int:
    seen = set()
    while pk in links and pk not in seen:
        seen.add(pk)
        pk = links[pk]
    return pk


def logical_ids(records: list[ClinicalRecord]) -> dict[tuple[type, int], int]:
    """(model, row id) -> the first version's row id, for records in hand (a search's
    page): no query unless one of them is a correction, then one per model."""
    out: dict[tuple[type, int], int] = {}
    corrected: dict[type[ClinicalRecord], set[int]] = {}
    for record in records:
        out[(type(record), record.pk)] = record.pk
        if replaced_id(record) is not None:
            corrected.setdefault(type(record), set()).add(record.patient_id)
    for model, patients in corrected.items():
        links = _links(model, patients)
        for (m, pk), _ in list(out.items()):
            if m is model:
                out[(m, pk)] = _root(pk, links)
    return out


def current_versions(
    model: type[ClinicalRecord], rows: list[ClinicalRecord]
) -> dict[int, tuple[int, ClinicalRecord]]:
    """row id -> (logical id, the current version's row) for rows of one model in hand: one
    query for the corrections, one more only when some row has been corrected."""
    links = _links(model, {r.patient_id for r in rows})
    successor = {old: new for new, old in links.items()}
    heads: dict[int, int] = {}
    for row in rows:
        pk = row.pk
        for _ in range(len(successor)):  # a chain is never longer than the corrections
            if pk not in successor:
                break
            pk = successor[pk]
        heads[row.pk] = pk
    newer = model._base_manager.in_bulk({h for r, h in heads.items() if h != r})
    by_pk = {r.pk: r for r in rows}
    return {
        row.pk: (_root(row.pk, links), newer.get(heads[row.pk]) or by_pk[row.pk]) for row in rows
    }


def as_fhir(
    record: ClinicalRecord, *, logical_id: int, with_content: bool = True
) -> dict[str, Any]:
    """A version of a record as its FHIR resource, named by the chain's logical id."""
    if isinstance(record, Document):
        resource = resources.document_to_fhir(record, with_content=with_content)
    else:
        resource = resources.to_fhir(record)
    resource["id"] = resources.DOCREF_PREFIX.get(type(record), "") + str(logical_id)
    return resource


def current_as_fhir(
    records: list[ClinicalRecord], *, with_content: bool = True
) -> list[dict[str, Any]]:
    """Current versions (a search's, $everything's) as FHIR resources under their logical
    ids."""
    ids = logical_ids(records)
    return [as_fhir(r, logical_id=ids[(type(r), r.pk)], with_content=with_content) for r in records]


def fhir_record_versions(
    *, caller: FhirCaller, resource_type: str, resource_id: str
) -> RecordVersions:
    """The versions of the record that `{resource_type}/{resource_id}` names (its logical id
    or any version's row id), if the caller may open that row (portal.fhir.callers, asking
    records.access), else 404."""
    from portal.fhir.selectors import fhir_record_ref

    model, raw = fhir_record_ref(resource_type=resource_type, resource_id=resource_id)
    opened = fhir_record_open(caller=caller, model=model, record_id=raw)
    record = opened.record
    model = type(record)
    links = _links(model, [record.patient_id])
    root = _root(record.pk, links)
    chain = [root]
    successor = {old: new for new, old in links.items()}
    while chain[-1] in successor and successor[chain[-1]] not in chain:
        chain.append(successor[chain[-1]])
    shown = {
        r.pk: r for r in records_access.chart_records(chart=opened.chart, model=model, pk__in=chain)
    }
    versions = sorted(shown.values(), key=lambda r: (r.version, r.pk))
    if not versions:
        raise Http404("No such resource.")
    prefix = resources.DOCREF_PREFIX.get(model, "")
    return RecordVersions(
        chart=opened.chart, logical_id=f"{prefix}{root}", versions=versions, requested=record
    )


def version_of(versions: RecordVersions, vid: str) -> ClinicalRecord:
    """The version `vid` ("1", "2", ...) of a record, else 404."""
    if not vid.isascii() or not vid.isdigit() or len(vid) > 9:
        raise Http404("No such version.")
    for record in versions.versions:
        if record.version == int(vid):
            return record
    raise Http404("No such version.")


def version_as_fhir(versions: RecordVersions, record: ClinicalRecord) -> dict[str, Any]:
    root = int(versions.logical_id.removeprefix(resources.DOCREF_PREFIX.get(type(record), "")))
    return as_fhir(record, logical_id=root)


def history_bundle(versions: RecordVersions, *, base_url: str) -> dict[str, Any]:
    """`[type]/{id}/_history`: a history Bundle, newest version first. Each entry says how
    the version came to be (request: POST for the first, PUT for a correction) and answers
    it (response: 201 / 200, its location and time); a version that a correction replaced
    is served with its entered-in-error status, as the portal keeps it."""
    entries = []
    for record in reversed(versions.versions):
        resource = version_as_fhir(versions, record)
        rtype = resource["resourceType"]
        url = f"{rtype}/{versions.logical_id}"
        first = replaced_id(record) is None
        response: dict[str, Any] = {
            "status": "201 Created" if first else "200 OK",
            "location": f"{url}/_history/{record.version}",
            "etag": f'W/"{record.version}"',
            "lastModified": resource["meta"]["lastUpdated"],
        }
        entries.append(
            {
                "fullUrl": f"{base_url}{url}",
                "resource": resource,
                "request": {"method": "POST" if first else "PUT", "url": rtype if first else url},
                "response": response,
            }
        )
    return {"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries}


def patient_history_bundle(patient: Patient, *, base_url: str) -> dict[str, Any]:
    """A Patient keeps no versions: its history is its one version, "1"."""
    resource = resources.patient_to_fhir(patient)
    url = f"Patient/{patient.pk}"
    return {
        "resourceType": "Bundle",
        "type": "history",
        "total": 1,
        "entry": [
            {
                "fullUrl": f"{base_url}{url}",
                "resource": resource,
                "request": {"method": "POST", "url": "Patient"},
                "response": {
                    "status": "201 Created",
                    "location": f"{url}/_history/1",
                    "etag": 'W/"1"',
                    "lastModified": resource["meta"]["lastUpdated"],
                },
            }
        ],
    }
