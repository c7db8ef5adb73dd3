"""FHIR import: a transaction or collection Bundle (Synthea output in general) into one
hospital, every write through portal.records.services, so every row is a ledger event.

- One atomic transaction per bundle: a bundle with any error writes nothing, and the error
  lists every problem found (not only the first).
- Idempotent: each source resource is remembered in ImportIdentity (hospital, type, source
  id, part); importing the same bundle again creates nothing and reports it as unchanged.
- Resource types the portal does not model (Claim, ExplanationOfBenefit, Organization, ...)
  are counted as skipped, by type. Resources of a modelled type whose content the portal
  cannot hold (a date in the future, a record entered in error, an Observation without a
  coded code, ...) are skipped with the reason.
- Every Observation is imported, one row per resource, whatever its category and value
  type (Quantity, CodeableConcept, string, boolean, integer, Range, Ratio, SampledData,
  time, dateTime, Period, or none with a dataAbsentReason), with its components (a blood
  pressure panel stays one Observation with its 8480-6 and 8462-4). A Quantity's number
  and unit are kept in the columns the trend charts read (3 decimal places, rounded half
  even); what the columns cannot hold (the value[x] of another type, the components, every
  category and code coding, effective[x] as given, issued, dataAbsentReason,
  interpretation, referenceRange, note, bodySite, method) is kept encrypted as given
  (records.observations), so `$everything` gives it back.
- Who may write what: an import by a person (the FHIR interface's caller, import_fhir
  --actor) writes only into charts that person may change, asked of
  records.access.access_patient(codename="change_patient") as every other write is; a
  chart they may not change is answered exactly as one that does not exist, and a patient
  they would register but then could not change (a hospital admin's) is refused with the same
  words. An operator's import (import_fhir without --actor) is the hospital's own data load,
  like the other management commands: it writes into any chart of the hospital it names.
- Documents are held to the provider portal's upload rules (records.uploads): a document
  that breaks them is an error for its entry, and the bundle writes nothing.
- Bad input is a BundleImportError (400 malformed, 422 unprocessable), never anything else:
  JSON nested too deep, strings PostgreSQL or the encryption cannot hold, values of the
  wrong type anywhere.
- Imports accept codes outside the provider forms' catalog. Observations imported before
  this release as one row per blood pressure component are read as they are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from portal.fhir import resources
from portal.fhir.locks import conditional_lock
from portal.fhir.models import ImportIdentity, import_source_token
from portal.jsontext import json_depth, json_problem
from portal.records import observations
from portal.records import services as records_services
from portal.records.access import OpenedChart, access_patient
from portal.records.models import (
    AllergyIntolerance,
    CarePlan,
    ClinicalRecord,
    Condition,
    DiagnosticReport,
    Document,
    Encounter,
    Goal,
    ImagingStudy,
    Immunization,
    MedicationRequest,
    Observation,
    Patient,
    Procedure,
)
from portal.records.selectors import patient_by_mrn
from portal.records.uploads import document_content_validate
from portal.tenancy.models import Hospital
from portal.tenancy.scoping import hospital_scope

BUNDLE_TYPES = ("transaction", "collection", "batch")
IMPORTED_TYPES = ("Patient", *resources.RESOURCE_MODELS)
# Validated before anything is read from them: the imported types and what they refer to.
VALIDATED_TYPES = (*IMPORTED_TYPES, "Medication")
# Deeper than any FHIR resource needs (Synthea's bundles: 12); refused before parsing, as
# deep nesting is what makes json.loads, validation and every walk over it recurse.
MAX_DEPTH = 100
SOURCE_ID_MAX = 200  # a sane bound for a source id (it is stored as a token)
# The one answer for a patient the importer may not write into, whether its chart exists or
# not: it reveals neither an MRN nor a restriction.
REFUSED = "no chart that you may change matches this patient"
# Encounters first, so that observations can point at them; reports, goals and care plans
# after what they name (results, the problems addressed; a care plan's goals).
ORDER = {"Patient": 0, "Encounter": 1, "DiagnosticReport": 3, "Goal": 3, "CarePlan": 4}


class BundleImportError(ValueError):
    """The bundle cannot be imported; `errors` lists the problems found (the first
    MAX_ERRORS, then how many more: a bundle of a million bad entries gets a short answer).
    Nothing was written."""

    MAX_ERRORS = 100

    def __init__(self, errors: list[str], *, status: int = 422) -> None:
        more = len(errors) - self.MAX_ERRORS
        self.errors = errors[: self.MAX_ERRORS] + ([f"... and {more} more"] if more > 0 else [])
        self.status = status  # as HTTP would say it: 400 malformed, 422 unprocessable
        super().__init__("; ".join(errors[:20]) + (" ..." if len(errors) > 20 else ""))


@dataclass
class ImportReport:
    bundle_type: str = ""
    entries: int = 0
    created: Counter = field(default_factory=Counter)  # rows created, by resource type
    unchanged: Counter = field(default_factory=Counter)  # imported before, by resource type
    skipped: Counter = field(default_factory=Counter)  # types the portal does not model
    skipped_reasons: Counter = field(default_factory=Counter)  # (type, reason) -> count
    # References kept only as their display text, or dropped: (type, reason) -> count.
    references: Counter = field(default_factory=Counter)
    patients: list[int] = field(default_factory=list)  # the portal ids of the bundle's patients
    # What became of each entry, by its position in Bundle.entry (transaction and batch
    # responses answer one entry per request entry from these).
    results: dict[int, EntryResult] = field(default_factory=dict)

    def summary(self) -> str:
        def fmt(counter: Counter) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"

        lines = [
            f"{self.entries} entries ({self.bundle_type}); patients: {self.patients}",
            f"  created: {fmt(self.created)}",
            f"  already imported: {fmt(self.unchanged)}",
            f"  skipped (not modelled): {fmt(self.skipped)}",
        ]
        for (rtype, reason), n in sorted(self.skipped_reasons.items()):
            lines.append(f"  skipped {rtype} x{n}: {reason}")
        for index, result in sorted(self.results.items()):
            if result.status == "error":  # a batch's refused entries (a transaction raises)
                lines.append(f"  refused entry {index}: {result.reason}")
        for (rtype, reason), n in sorted(self.references.items()):
            lines.append(f"  {rtype} x{n}: {reason}")
        return "\n".join(lines)

    def merge(self, other: ImportReport) -> None:
        self.entries += other.entries
        self.created.update(other.created)
        self.unchanged.update(other.unchanged)
        self.skipped.update(other.skipped)
        self.skipped_reasons.update(other.skipped_reasons)
        self.references.update(other.references)
        self.patients.extend(other.patients)
        self.results.update(other.results)


@dataclass
class EntryResult:
    """One entry's outcome: "created" (rows written), "unchanged" (imported before or
    matched: nothing written), "skipped" (not kept, with the reason) or "error" (a batch
    entry refused, with the reason; in a transaction any error refuses the bundle).
    `targets`: the rows the entry is, as (model label, primary key), first the main one."""

    status: str
    targets: list[tuple[str, int]] = field(default_factory=list)
    reason: str = ""


class _Skip(Exception):
    """This resource is of a modelled type but its content cannot be held (with reason)."""


@dataclass
class _Entry:
    index: int
    full_url: str
    resource: dict[str, Any]
    encounter_id: int | None = None  # the Encounter row its `encounter` names, once resolved
    # A conditional create's key ("?identifier=..." from ifNoneExist / If-None-Exist, or a
    # fresh one for a plain create): the identity the entry is remembered and matched by,
    # instead of its id.
    source_key: str = ""

    @property
    def type(self) -> str:
        return self.resource.get("resourceType", "")

    @property
    def source_id(self) -> str:
        return self.source_key or str(self.resource.get("id") or self.full_url)

    @property
    def label(self) -> str:
        return f"entry {self.index} ({self.type}/{self.source_id})"


def bundle_parse(raw: bytes) -> Any:
    """A Bundle's JSON text as Python values; BundleImportError (400) if it is not JSON,
    or nested deeper than MAX_DEPTH (checked before json.loads, which would recurse)."""
    if json_depth(raw) > MAX_DEPTH:
        raise BundleImportError([f"the document nests more than {MAX_DEPTH} levels deep"],
                                status=400)  # fmt: skip
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, ...
        raise BundleImportError([f"the document is not JSON: {exc}"], status=400) from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def fhir_bundle_import(
    *,
    hospital: Hospital,
    bundle: Any,
    actor: User | None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import one Bundle into `hospital`, atomically; raise BundleImportError if it is bad.

    `actor` is the person importing: the import writes only into charts they may change
    (see the module's docstring). None is an operator's import (manage.py import_fhir
    without --actor), which writes into any chart of `hospital`.
    """
    entries = _entries(bundle)
    report = ImportReport(bundle_type=bundle["type"], entries=len(entries))
    batch = bundle["type"] == "batch"
    errors: list[str] = []
    valid = []
    for entry in entries:
        if entry.type in VALIDATED_TYPES:
            try:
                resources.validate_resource(entry.resource)
            except resources.FhirValidationError as exc:
                errors.append(f"{entry.label} is not valid FHIR: {exc}")
                report.results[entry.index] = EntryResult("error", reason=f"not valid FHIR: {exc}")
                continue
        valid.append(entry)
    if errors and not batch:
        raise BundleImportError(errors)
    with hospital_scope(hospital), transaction.atomic():
        # Conditional creates wait for one another (same hospital, type and criteria), so
        # two of them never both find nothing and both create (PostgreSQL; ImportIdentity's
        # unique constraint is the backstop on every database).
        for entry in sorted(valid, key=lambda e: (e.type, e.source_key)):
            if entry.source_key.startswith("?"):
                conditional_lock(
                    hospital_id=hospital.pk, resource_type=entry.type, key=entry.source_key
                )
        importer = _Importer(
            hospital=hospital, actor=actor, entries=valid, report=report, batch=batch
        )
        importer.run(progress)
        if importer.errors and not batch:
            transaction.set_rollback(True)
            raise BundleImportError(importer.errors)
    return report


def _entries(bundle: Any) -> list[_Entry]:
    if not isinstance(bundle, dict):
        raise BundleImportError(["the document is not a JSON object"], status=400)
    # Also for a caller that did not parse with bundle_parse: depth, NUL, lone surrogates.
    problem = json_problem(bundle, max_depth=MAX_DEPTH)
    if problem:
        raise BundleImportError([problem], status=400)
    if bundle.get("resourceType") != "Bundle":
        raise BundleImportError(
            [f"resourceType is {bundle.get('resourceType')!r}, expected 'Bundle'"], status=400
        )
    if bundle.get("type") not in BUNDLE_TYPES:
        raise BundleImportError(
            [f"Bundle.type is {bundle.get('type')!r}; import takes {', '.join(BUNDLE_TYPES)}"]
        )
    raw = bundle.get("entry") or []
    if not isinstance(raw, list):
        raise BundleImportError(["Bundle.entry is not a list"], status=400)
    entries, errors = [], []
    for i, item in enumerate(raw):
        resource = item.get("resource") if isinstance(item, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            errors.append(f"entry {i} has no resource")
            continue
        request = item.get("request")
        if request is not None and not isinstance(request, dict):
            errors.append(f"entry {i}: request is not an object (a Bundle.entry.request)")
            continue
        method = (request or {}).get("method", "POST")
        if method not in ("POST", "PUT"):
            errors.append(f"entry {i}: request method {_shown(method)} is not supported "
                          "(POST, PUT)")  # fmt: skip
            continue
        full_url = item.get("fullUrl")
        if full_url is not None and not isinstance(full_url, str):
            errors.append(f"entry {i}: fullUrl is not a string")
            continue
        conditional, problem = _if_none_exist_key((request or {}).get("ifNoneExist"))
        if problem:
            errors.append(f"entry {i}: {problem}")
            continue
        entries.append(
            _Entry(index=i, full_url=full_url or "", resource=resource, source_key=conditional)
        )
    seen: dict[tuple[str, str], int] = {}
    for entry in entries:
        key = (entry.type, entry.source_id)
        if entry.type in IMPORTED_TYPES and not entry.source_id:
            errors.append(f"entry {entry.index} ({entry.type}) has neither an id nor a fullUrl")
        elif entry.type in IMPORTED_TYPES and len(entry.source_id) > SOURCE_ID_MAX:
            errors.append(f"entry {entry.index} ({entry.type}): its id (or fullUrl) is longer "
                          f"than {SOURCE_ID_MAX} characters")  # fmt: skip
        elif entry.type in IMPORTED_TYPES and key in seen:
            errors.append(f"{entry.label} repeats entry {seen[key]} (the same resource id)")
        seen.setdefault(key, entry.index)
    if errors:
        raise BundleImportError(errors)
    return entries


def _if_none_exist_key(criteria: Any) -> tuple[str, str]:
    """(key, problem) of a conditional create's criteria (`identifier=[system|]value`, the
    one search a Bundle entry's ifNoneExist may give here): the entry is then remembered and
    matched by that identifier, whatever its id. ("", "") without criteria."""
    if criteria is None or criteria == "":
        return "", ""
    wanted = conditional_identifier(criteria)
    if wanted is None:
        return "", (
            f"ifNoneExist {_shown(criteria)} is not supported here: give identifier=[system|]value"
        )
    return f"?identifier={wanted}", ""


def conditional_identifier(criteria: Any) -> str | None:
    """The `[system|]value` of conditional-create criteria that are exactly one
    `identifier=` parameter, else None."""
    if not isinstance(criteria, str):
        return None
    params = QueryDict(criteria.removeprefix("?"))
    values = params.getlist("identifier")
    if set(params) != {"identifier"} or len(values) != 1 or not values[0].rpartition("|")[2]:
        return None
    return values[0]


class _Importer:
    def __init__(
        self,
        *,
        hospital: Hospital,
        actor: User | None,
        entries: list[_Entry],
        report: ImportReport,
        batch: bool = False,
    ) -> None:
        self.hospital, self.actor, self.entries, self.report = hospital, actor, entries, report
        self.batch = batch  # each entry on its own (a savepoint each), not all or nothing
        self.errors: list[str] = []
        self.by_url: dict[str, _Entry] = {}
        for entry in entries:
            if entry.full_url:
                self.by_url[entry.full_url] = entry
            if entry.resource.get("id"):
                self.by_url[f"{entry.type}/{entry.resource['id']}"] = entry
        # Source ids are stored as keyed tokens (fhir.models): each is looked up by its token.
        sources = {self._token(e.source_id): e.source_id for e in entries
                   if e.type in IMPORTED_TYPES}  # fmt: skip
        known = ImportIdentity.objects.filter(hospital=hospital, source_token__in=sources)
        self.known: dict[tuple[str, str], list[ImportIdentity]] = {}
        for identity in known:
            key = (identity.resource_type, sources[identity.source_token])
            self.known.setdefault(key, []).append(identity)
        self.patients: dict[str, Patient] = {}  # source key -> patient
        self.encounters: dict[str, tuple[int, int]] = {}  # source key -> (Encounter, patient)
        self.new_identities: list[ImportIdentity] = []
        # (type, source id) -> [(records model label, id, patient id)]: what this run created.
        self.patients_by_entry: dict[int, Patient] = {}  # entry index -> its chart
        self.created_rows: dict[tuple[str, str], list[tuple[str, int, int]]] = {}
        self.skipped_sources: set[tuple[str, str]] = set()
        self.charts: dict[int, OpenedChart] = {}  # patient id -> as opened to the actor

    def _token(self, value: str, *, purpose: str = "source") -> str:
        return import_source_token(hospital_id=self.hospital.pk, value=value, purpose=purpose)

    # --- references ----------------------------------------------------------------------

    def _resolve(self, ref: Any, expected: str) -> tuple[str, str] | None:
        """(type, source id) of a reference into the bundle or an earlier import, else None."""
        if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
            return None
        value = ref["reference"]
        entry = self.by_url.get(value)
        segments = value.split("/_history/")[0].rstrip("/").split("/")
        if entry is None and len(segments) > 1 and not value.startswith("urn:"):
            # A relative or absolute literal reference: its last two segments.
            rtype, rid = segments[-2:]
            entry = self.by_url.get(f"{rtype}/{rid}")
            if entry is None and rtype == expected and rid:
                return (rtype, rid)  # maybe imported earlier: checked by the caller
        if entry is None and value.startswith(f"{expected}?identifier="):
            entry = self._conditional(value, expected)
        if entry is None or entry.type != expected:
            return None
        return (entry.type, entry.source_id)

    def _conditional(self, value: str, expected: str) -> _Entry | None:
        wanted = value.split("?identifier=", 1)[1]
        system, _, ident = wanted.rpartition("|")
        for entry in self.entries:
            if entry.type != expected:
                continue
            for identifier in _dicts(entry.resource.get("identifier")):
                if identifier.get("value") == ident and (
                    not system or identifier.get("system") == system
                ):
                    return entry
        return None

    def _chart(self, patient_id: int) -> Patient | None:
        """The chart `patient_id` if this import may write into it, else None: a chart the
        importer may not change is answered as one that does not exist.

        A person may write where records.access.access_patient lets them change the
        chart, the decision every write asks (hospital admins hold no chart grant, so they
        write into none). An operator's import (no actor) writes into any chart of its
        hospital. Either way, never into another hospital's.
        """
        if self.actor is None:
            return Patient.objects.filter(pk=patient_id, hospital=self.hospital).first()
        try:
            chart = access_patient(self.actor, patient_id, codename="change_patient")
        except Http404:
            return None
        if chart.patient.hospital_id != self.hospital.pk:
            return None
        self.charts[chart.patient_id] = chart
        return chart.patient

    def _may_write(self, patient: Patient, model: type[ClinicalRecord]) -> None:
        """The importer's role may add records of this type (records.access decides: a
        nurse writes no prescription or diagnosis, a clerk no clinical record); an
        operator's import (no actor) may."""
        chart = self.charts.get(patient.pk)
        if self.actor is not None and (chart is None or not chart.can_write(model)):
            raise ValidationError(
                f"your role may not add {model._meta.verbose_name_plural} to a chart"
            )

    def _patient_for(self, entry: _Entry) -> Patient:
        ref = entry.resource.get("subject") or entry.resource.get("patient")
        key = self._resolve(ref, "Patient")
        if key is not None:
            if key[1] in self.patients:
                return self.patients[key[1]]
            identities = self.known.get(key) or list(
                ImportIdentity.objects.filter(
                    hospital=self.hospital,
                    resource_type="Patient",
                    source_token=self._token(key[1]),
                )
            )
            patient = self._chart(identities[0].target_id) if identities else None
            if not identities and _portal_reference(ref, "Patient"):
                # `Patient/{id}` that no import knows: the portal's own patient of that id
                # (a client creating a record on a chart it read), if it may change it.
                patient = self._chart(int(key[1]))
            if patient is not None:
                self.patients[key[1]] = patient
                return patient
        shown = ref.get("reference") if isinstance(ref, dict) else ref
        raise ValidationError(
            f"its patient reference {_shown(shown)} does not resolve to a Patient"
        )

    def _encounter_id(self, entry: _Entry, patient: Patient) -> int | None:
        """The Encounter row the entry's `encounter` names: one of the same patient's,
        imported now or earlier. Any other is "broken", however it is missing."""
        ref = entry.resource.get("encounter")
        if not ref:
            return None
        shown = _shown(ref.get("reference") if isinstance(ref, dict) else ref)
        broken = ValidationError(f"its encounter reference {shown} is broken")
        key = self._resolve(ref, "Encounter")
        if key is None:
            raise broken
        patient_id: int | None
        if key[1] in self.encounters:
            encounter_id, patient_id = self.encounters[key[1]]
        elif key in self.skipped_sources:
            return None  # skipped with a reason (reported): the link is dropped with it
        else:
            identities = self.known.get(key) or list(
                ImportIdentity.objects.filter(
                    hospital=self.hospital,
                    resource_type="Encounter",
                    source_token=self._token(key[1]),
                )
            )
            if not identities:
                raise broken
            encounter_id = identities[0].target_id
            rows = Encounter.objects.filter(pk=encounter_id).values_list("patient_id", flat=True)
            patient_id = rows.first()
        if patient_id != patient.pk:
            raise broken
        return encounter_id

    def _targets(
        self, ref: Any, expected: str, model: type[ClinicalRecord], patient: Patient
    ) -> list[int] | str:
        """The ids of the `model` rows (of `patient`'s chart) that the reference's resource
        became, imported now or earlier; else why it names none (the caller keeps the
        reference's display text, and the report says why)."""
        key = self._resolve(ref, expected)
        if key is None:
            return f"a reference to a {expected} outside the bundle and earlier imports"
        label = model._meta.label_lower
        if key in self.created_rows:
            rows = self.created_rows[key]
            ids = [pk for target, pk, owner in rows if target == label and owner == patient.pk]
        elif key in self.skipped_sources:
            return f"a reference to a {expected} that was skipped (see above)"
        else:
            identities = self.known.get(key) or list(
                ImportIdentity.objects.filter(
                    hospital=self.hospital, resource_type=expected,
                    source_token=self._token(key[1]),
                )
            )  # fmt: skip
            candidates = [i.target_id for i in identities if i.target_model == label]
            ids = list(
                model._base_manager.filter(pk__in=candidates, patient_id=patient.pk)
                .order_by("pk").values_list("pk", flat=True)
            ) if candidates else []  # fmt: skip
        if not ids:
            return f"a reference to a {expected} the portal does not hold for this patient"
        return ids

    def linked(
        self,
        entry: _Entry,
        refs: Any,
        expected: str,
        model: type[ClinicalRecord],
        patient: Patient,
        key: str,
    ) -> list[dict[str, Any]]:
        """References to `expected` resources as stored links: {key: id, "display": ...}
        per row the resource became, or {"display": ...} alone for one that names nothing
        the portal holds (counted in the report); without a display, such a one is dropped."""
        out: list[dict[str, Any]] = []
        for ref in _dicts(refs):
            display = _text(ref.get("display"))[:200]
            found = self._targets(ref, expected, model, patient)
            if isinstance(found, str):
                kept = "kept as its display text" if display else "dropped (no display text)"
                self.report.references[(entry.type, f"{found}: {kept}")] += 1
                if display:
                    out.append({"display": display})
                continue
            for pk in found:
                out.append({key: pk, "display": display} if display else {key: pk})
        return out

    # --- the run -----------------------------------------------------------------------------

    def run(self, progress: Callable[[int], None] | None) -> None:
        ordered = sorted(self.entries, key=lambda e: (ORDER.get(e.type, 2), e.index))
        for entry in ordered:
            results = self.report.results
            if entry.type not in IMPORTED_TYPES:
                self.report.skipped[entry.type] += 1
                results[entry.index] = EntryResult(
                    "skipped", reason=f"{entry.type} is not kept by the portal (not modelled)"
                )
            else:
                remembered = len(self.new_identities)
                try:
                    with transaction.atomic() if self.batch else nullcontext():
                        self._import(entry)
                except _Skip as skip:
                    self.report.skipped_reasons[(entry.type, str(skip))] += 1
                    self.skipped_sources.add((entry.type, entry.source_id))
                    results[entry.index] = EntryResult("skipped", reason=str(skip))
                except ValidationError as exc:
                    self.errors.append(f"{entry.label}: {_messages(exc)}")
                    results[entry.index] = EntryResult("error", reason=_messages(exc))
                    del self.new_identities[remembered:]  # rolled back with its savepoint
            if progress is not None:
                progress(1)
        if (self.batch or not self.errors) and self.new_identities:
            ImportIdentity._base_manager.bulk_create(self.new_identities, batch_size=500)

    def _result(self, entry: _Entry, status: str, target: Patient | ClinicalRecord) -> None:
        result = self.report.results.setdefault(entry.index, EntryResult(status))
        result.targets.append((target._meta.label_lower, target.pk))

    def _known_result(self, entry: _Entry, known: list[ImportIdentity]) -> None:
        self.report.results[entry.index] = EntryResult(
            # In the order the rows were created (the first is where the entry is located).
            "unchanged",
            targets=sorted((k.target_model, k.target_id) for k in known),
        )

    def _remember(self, entry: _Entry, part: str, record: Patient | ClinicalRecord) -> None:
        self.new_identities.append(
            ImportIdentity(
                hospital=self.hospital,
                resource_type=entry.type,
                source_token=self._token(entry.source_id),
                part_token=self._token(part, purpose="part"),
                target_model=record._meta.label_lower,
                target_id=record.pk,
            )
        )

    def _import(self, entry: _Entry) -> None:
        known = self.known.get((entry.type, entry.source_id))
        if entry.type == "Patient":
            self._import_patient(entry, known)
            return
        # Its chart first, imported before or not: one the importer may not change is an
        # error (as a missing one), even for what is already there.
        patient = self._patient_for(entry)
        if known:
            if entry.type == "Encounter":
                self.encounters[entry.source_id] = (known[0].target_id, patient.pk)
            self.report.unchanged[entry.type] += 1
            self._known_result(entry, known)
            return
        # A broken encounter reference is an error for every type.
        entry.encounter_id = self._encounter_id(entry, patient)
        self.patients_by_entry[entry.index] = patient
        rows = MAPPERS[entry.type](self, entry)
        for _part, _model, fields in rows:
            for name in DATE_FIELDS:
                value = fields.get(name)
                if value is not None and _in_future(value):
                    raise _Skip(f"{name} is in the future (the portal refuses future facts)")
        for _part, model, _fields in rows:
            self._may_write(patient, model)
        for part, model, fields in rows:
            record = records_services.record_create(
                actor=self.actor, patient=patient, model=model, **fields
            )
            self._remember(entry, part, record)
            self._result(entry, "created", record)
            self.created_rows.setdefault((entry.type, entry.source_id), []).append(
                (record._meta.label_lower, record.pk, patient.pk)
            )
            if model is Encounter:
                self.encounters[entry.source_id] = (record.pk, patient.pk)
            self.report.created[entry.type] += 1

    def _import_patient(self, entry: _Entry, known: list[ImportIdentity] | None) -> None:
        """The chart the Patient entry is about: imported before, registered here under
        its MRN (by hand, or from another source), or registered now. Whichever it is, the
        importer must be able to change it; if not, REFUSED, the same words in every case,
        so the answer tells nothing of whether the MRN exists or the chart is restricted."""
        if known:
            patient = self._chart(known[0].target_id)
            if patient is None:
                raise ValidationError(REFUSED)
            self.report.unchanged["Patient"] += 1
            self._known_result(entry, known)
        else:
            fields = _patient_fields(entry.resource, entry.source_id)
            # The demographics are checked whatever the MRN finds, so that a bad value
            # answers alike whether or not a chart has this MRN.
            Patient(hospital=self.hospital, **fields).full_clean(
                validate_unique=False, validate_constraints=False
            )
            existing = patient_by_mrn(hospital=self.hospital, mrn=fields["mrn"])
            if existing is None:
                existing = records_services.patient_register(
                    hospital=self.hospital, actor=self.actor, **fields
                )
                created = True
            else:
                created = False
            # A registration the importer could not then change (a hospital admin's) is
            # refused too: the whole bundle, registration included, is rolled back.
            patient = self._chart(existing.pk)
            if patient is None:
                raise ValidationError(REFUSED)
            (self.report.created if created else self.report.unchanged)["Patient"] += 1
            self._remember(entry, "", patient)
            self._result(entry, "created" if created else "unchanged", patient)
        self.patients[entry.source_id] = patient
        self.report.patients.append(patient.pk)


def _portal_reference(ref: Any, rtype: str) -> bool:
    """`ref` is a relative literal reference `{rtype}/{digits}` (a portal id)."""
    value = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(value, str) or not value.startswith(f"{rtype}/"):
        return False
    rid = value.removeprefix(f"{rtype}/")
    return rid.isdigit() and len(rid) < 19 and rid.isascii()


def _shown(value: Any) -> str:
    """A value from the bundle, quoted and cut short, for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a list (anything else: none). Every mapper reads through these two,
    so a value of the wrong type is "absent", never an AttributeError."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return " ".join(exc.messages)


# --- values ------------------------------------------------------------------------------

DATE_FIELDS = ("period_start", "effective_at", "authored_on", "recorded_date", "occurrence",
               "performed_at", "onset_date", "issued", "started")  # fmt: skip


def _in_future(value: date | datetime) -> bool:
    now = timezone.now()
    return value > now if isinstance(value, datetime) else value > now.date()


def _when(value: Any, what: str) -> datetime:
    """A FHIR dateTime/instant (also a date, a year-month or a year) as an aware datetime."""
    if not isinstance(value, str) or not value:
        raise _Skip(f"no {what}")
    not_a_date = ValidationError(f"{what} {_shown(value)} is not a date")
    try:
        parsed = parse_datetime(value)
    except ValueError:  # well formed, but no such moment (a 30th of February)
        raise not_a_date from None
    if parsed is None:
        parts = value.split("-")
        try:
            day = date(int(parts[0]), int(parts[1]) if len(parts) > 1 else 1,
                       int(parts[2]) if len(parts) > 2 else 1)  # fmt: skip
        except (ValueError, IndexError):
            raise not_a_date from None
        return datetime.combine(day, time(0), tzinfo=UTC)
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed.astimezone(UTC)  # as the database will store it
    except OverflowError:  # the first or last moments of the calendar, off UTC
        raise not_a_date from None
    return parsed


def _day(value: Any) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    return _when(value, "date").date()


def _coding(concept: Any, prefer: str = "") -> tuple[str, str]:
    """(code, display) of a CodeableConcept: the coding of the preferred system if any."""
    if not isinstance(concept, dict):
        return "", ""
    codings = [c for c in _dicts(concept.get("coding")) if isinstance(c.get("code"), str)]
    codings = [c for c in codings if c["code"]]
    chosen = next((c for c in codings if c.get("system") == prefer), codings[0] if codings else {})
    display = chosen.get("display") or concept.get("text") or chosen.get("code", "")
    return str(chosen.get("code", "")), str(display)[:200]


def _code(concept: Any, prefer: str, what: str, max_length: int) -> tuple[str, str]:
    code, display = _coding(concept, prefer)
    if not code:
        raise _Skip(f"no coded {what}")
    if len(code) > max_length:
        raise _Skip(f"{what} code longer than {max_length} characters")
    return code, display or code


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _patient_fields(resource: dict[str, Any], source_id: str) -> dict[str, Any]:
    mrn = ""
    for identifier in _dicts(resource.get("identifier")):
        codes = {c.get("code") for c in _dicts(_dict(identifier.get("type")).get("coding"))}
        if "MR" in codes and _text(identifier.get("value")):
            mrn = identifier["value"]
            break
    mrn = mrn or _text(resource.get("id")) or source_id
    names = _dicts(resource.get("name")) or [{}]
    name = next((n for n in names if n.get("use") == "official"), names[0])
    given = " ".join(g for g in name.get("given") or [] if isinstance(g, str))
    given = given or _text(name.get("text")).split(" ")[0]
    family = _text(name.get("family"))
    if not resource.get("birthDate"):
        raise ValidationError("the Patient has no birthDate, which the portal requires")
    phone = next((_text(t.get("value")) for t in _dicts(resource.get("telecom"))
                  if t.get("system") == "phone"), "")  # fmt: skip
    sex = resource.get("gender")
    return {
        "mrn": mrn[:64], "given_name": given[:100], "family_name": family[:100],
        "birth_date": _day(resource["birthDate"]),
        "sex": sex if sex in Patient.Sex.values else Patient.Sex.UNKNOWN,
        "phone": phone[:40],
    }  # fmt: skip


Row = tuple[str, type[ClinicalRecord], dict[str, Any]]


def _status_guard(resource: dict[str, Any]) -> None:
    if resource.get("status") == "entered-in-error":
        raise _Skip("status entered-in-error")


def _encounter(imp: _Importer, entry: _Entry) -> list[Row]:
    r = entry.resource
    _status_guard(r)
    period = _dict(r.get("period"))
    types = _dicts(r.get("type"))
    type_code, type_display = _coding(types[0] if types else None, resources.SNOMED)
    reasons = [_coding(c)[1] or _text(c.get("text")) for c in _dicts(r.get("reasonCode"))]
    fields = {
        "class_code": str(_dict(r.get("class")).get("code") or "AMB")[:20],
        "type_code": type_code[:40], "type_display": type_display,
        "reason": "; ".join(x for x in reasons if x),
        "period_start": _when(period.get("start"), "period.start"),
        "period_end": _when(period["end"], "period.end") if period.get("end") else None,
    }  # fmt: skip
    return [("", Encounter, fields)]


# value[x] of an Observation (FHIR R4), by the name after "value": the type it holds.
VALUE_TYPES = {
    "Quantity": "Quantity", "CodeableConcept": "CodeableConcept", "String": "string",
    "Boolean": "boolean", "Integer": "integer", "Range": "Range", "Ratio": "Ratio",
    "SampledData": "SampledData", "Time": "time", "DateTime": "dateTime", "Period": "Period",
}  # fmt: skip
EFFECTIVE_TYPES = ("DateTime", "Instant", "Period")
UNIT_MAX = 32
VALUE_MAX = 10**9  # the value column: 12 digits, 3 of them decimals


# JSON types of the primitive value[x] (FHIR's JSON: a boolean is true or false, an integer
# a number without a fraction); fhir.resources' validation accepts "yes" for a boolean and
# "5" for a number, which the portal, keeping values as given, would give back so.
PRIMITIVE_JSON: dict[str, tuple[type, ...]] = {
    "String": (str,), "Time": (str,), "DateTime": (str,), "Boolean": (bool,), "Integer": (int,),
}  # fmt: skip
QUANTITIES_IN = {"Quantity": ("",), "Range": ("low", "high"),
                 "Ratio": ("numerator", "denominator")}  # fmt: skip


def _value_problem(item: dict[str, Any]) -> str | None:
    """Why an Observation's (or a component's) value[x] is not of its type's JSON, else
    None."""
    for kind in VALUE_TYPES:
        if f"value{kind}" not in item:
            continue
        content = item[f"value{kind}"]
        wanted = PRIMITIVE_JSON.get(kind)
        if wanted is not None and (
            not isinstance(content, wanted) or (kind == "Integer" and isinstance(content, bool))
        ):
            return f"value{kind} {_shown(content)} is not a JSON {VALUE_TYPES[kind]}"
        for part in QUANTITIES_IN.get(kind, ()):
            quantity = (
                _dict(content.get(part) if part else content) if isinstance(content, dict) else {}
            )
            number = quantity.get("value")
            if number is not None and (
                isinstance(number, bool) or not isinstance(number, int | float)
            ):
                where = f"value{kind}{'.' + part if part else ''}.value"
                return f"{where} {_shown(number)} is not a JSON number"
    return None


def _observation_value(r: dict[str, Any]) -> dict[str, Any]:
    """The value[x] as the model's fields: a Quantity in `value`/`unit` (and kept verbatim
    in `value_fhir` only when the columns would lose some of it), any other type verbatim
    in `value_fhir`."""
    kinds = [k for k in VALUE_TYPES if f"value{k}" in r]
    if not kinds:
        return {}
    kind = kinds[0]  # FHIR validation allows one value[x]
    content = r[f"value{kind}"]
    kept = {"value_fhir": {"type": VALUE_TYPES[kind], "value": content}}
    if kind != "Quantity":
        return kept
    quantity = _dict(content)
    number = observations.decimal_of(quantity.get("value"))
    if number is None or quantity.get("comparator"):
        return kept  # no number to draw (or "< 5"): kept as given, not in a trend
    unit = _text(quantity.get("code")) if quantity.get("system") == resources.UCUM else ""
    unit = unit or _text(quantity.get("unit")) or _text(quantity.get("code")) or "1"
    if len(unit) > UNIT_MAX or abs(number) >= VALUE_MAX:
        return kept  # more than the columns hold: kept as given, not in a trend
    fields: dict[str, Any] = {"value": number, "unit": unit}
    if observations.quantity_from_columns(number, unit) != quantity:
        fields.update(kept)  # its own unit text, another system, more decimals
    return fields


def _effective(r: dict[str, Any]) -> tuple[datetime, datetime | None, dict[str, Any]]:
    """(effective_at, effective_end, what fhir_details keeps of effective[x]): the type and
    the text as given, so that it comes back alike (a date stays a date, a Period a
    Period). Without any effective[x], `issued` dates it (and none comes back)."""
    kind = next((k for k in EFFECTIVE_TYPES if f"effective{k}" in r), "")
    if kind == "Period":
        period = _dict(r["effectivePeriod"])
        start = period.get("start") or period.get("end")
        at = _when(start, "effectivePeriod.start")
        end = _when(period["end"], "effectivePeriod.end") if period.get("end") else None
        return at, end, {"type": "Period", "value": period}
    if kind:
        value = r[f"effective{kind}"]
        return _when(value, f"effective{kind}"), None, {"type": kind, "value": value}
    return _when(r.get("issued"), "effective time"), None, {"type": ""}


def _observation(imp: _Importer, entry: _Entry) -> list[Row]:
    """One Observation, one row, whatever its value type, category and components."""
    r = entry.resource
    _status_guard(r)
    categories = [
        c.get("code")
        for concept in _dicts(r.get("category"))
        for c in _dicts(concept.get("coding"))
    ]
    # The first standard category decides who may read it (records.categories); every
    # coding is kept (fhir_details) and comes back.
    category = next((c for c in categories if c and c in Observation.Category.values), "")
    problems = [_value_problem(r)] + [
        f"component {i}: {p}" for i, c in enumerate(_dicts(r.get("component")))
        if (p := _value_problem(c))
    ]  # fmt: skip
    if any(problems):
        raise ValidationError("; ".join(p for p in problems if p))
    code, display = _code(r.get("code"), resources.LOINC, "code", 20)
    effective_at, effective_end, effective = _effective(r)
    kept: dict[str, Any] = {"code": r.get("code"), "effective": effective}
    if "category" in r:
        kept["category"] = r["category"]
    if r.get("status") not in (None, "final"):
        kept["status"] = r["status"]
    if "issued" in r:
        kept["issued"] = r["issued"]
    kept.update({name: r[name] for name in observations.KEPT_ELEMENTS if name in r})
    fields: dict[str, Any] = {
        "category": category, "code": code, "display": display,
        "effective_at": effective_at, "effective_end": effective_end,
        "issued": _when(r["issued"], "issued") if r.get("issued") else None,
        "encounter_id": entry.encounter_id, "fhir_details": kept,
        **_observation_value(r),
    }  # fmt: skip
    parts = _dicts(r.get("component"))
    if parts:
        fields["components"] = parts
    return [("", Observation, fields)]


def _condition(imp: _Importer, entry: _Entry) -> list[Row]:
    r = entry.resource
    verification, _ = _coding(r.get("verificationStatus"))
    if verification == "entered-in-error":
        raise _Skip("verificationStatus entered-in-error")
    code, display = _code(r.get("code"), resources.SNOMED, "code", 40)
    clinical, _ = _coding(r.get("clinicalStatus"))
    onset = r.get("onsetDateTime") or _dict(r.get("onsetPeriod")).get("start")
    abatement = r.get("abatementDateTime") or _dict(r.get("abatementPeriod")).get("start")
    fields = {
        "code": code, "display": display, "clinical_status": (clinical or "active")[:20],
        "onset_date": _day(onset), "abatement_date": _day(abatement),
    }  # fmt: skip
    return [("", Condition, fields)]


def _dosage_text(dosage: dict[str, Any]) -> str:
    if dosage.get("text"):
        return str(dosage["text"])
    parts = []
    for dose in _dicts(dosage.get("doseAndRate")):
        quantity = _dict(dose.get("doseQuantity"))
        if "value" in quantity:
            parts.append(f"{quantity['value']} {_text(quantity.get('unit'))}".strip())
    repeat = _dict(_dict(dosage.get("timing")).get("repeat"))
    if repeat.get("frequency") and repeat.get("period"):
        unit = _text(repeat.get("periodUnit"))
        parts.append(f"{repeat['frequency']} per {repeat['period']} {unit}")
    if dosage.get("asNeededBoolean"):
        parts.append("as needed")
    return ", ".join(p.strip() for p in parts)


def _medication_request(imp: _Importer, entry: _Entry) -> list[Row]:
    r = entry.resource
    _status_guard(r)
    concept = r.get("medicationCodeableConcept")
    if concept is None and r.get("medicationReference"):
        ref = _dict(r["medicationReference"]).get("reference")
        medication = imp.by_url.get(ref) if isinstance(ref, str) else None
        if medication is None or medication.type != "Medication":
            raise ValidationError(f"its medicationReference {_shown(ref)} does not resolve")
        concept = medication.resource.get("code")
    code, display = _code(concept, resources.RXNORM, "medication", 40)
    fields = {
        "code": code, "display": display,
        "dosage": "; ".join(t for t in (_dosage_text(d) for d in _dicts(r.get("dosageInstruction")))
                            if t),
        "request_status": str(r.get("status") or "active")[:20],
        "authored_on": _when(r.get("authoredOn"), "authoredOn"),
    }  # fmt: skip
    validity = _dict(_dict(r.get("dispenseRequest")).get("validityPeriod"))
    if validity.get("end"):
        fields["valid_until"] = _when(validity["end"], "dispenseRequest.validityPeriod.end")
    return [("", MedicationRequest, fields)]


def _allergy(imp: _Importer, entry: _Entry) -> list[Row]:
    r = entry.resource
    verification, _ = _coding(r.get("verificationStatus"))
    if verification == "entered-in-error":
        raise _Skip("verificationStatus entered-in-error")
    code, display = _code(r.get("code"), resources.SNOMED, "code", 40)
    reactions = [
        _coding(m)[1] or _text(m.get("text"))
        for reaction in _dicts(r.get("reaction"))
        for m in _dicts(reaction.get("manifestation"))
    ]
    fields = {
        "code": code, "display": display,
        "criticality": str(r.get("criticality") or "unable-to-assess")[:20],
        "reaction": "; ".join(x for x in reactions if x),
        "recorded_date": _when(r.get("recordedDate") or r.get("onsetDateTime"), "recordedDate"),
    }  # fmt: skip
    return [("", AllergyIntolerance, fields)]


def _immunization(imp: _Importer, entry: _Entry) -> list[Row]:
    r = entry.resource
    _status_guard(r)
    if r.get("status") == "not-done":
        raise _Skip("status not-done (the portal records given vaccines)")
    code, display = _code(r.get("vaccineCode"), resources.CVX, "vaccine", 20)
    occurrence = _when(r.get("occurrenceDateTime"), "occurrenceDateTime")
    return [("", Immunization, {"vaccine_code": code, "display": display,
                                "occurrence": occurrence})]  # fmt: skip


def _procedure(imp: _Importer, entry: _Entry) -> list[Row]:
    r = entry.resource
    _status_guard(r)
    if r.get("status") == "not-done":
        raise _Skip("status not-done")
    code, display = _code(r.get("code"), resources.SNOMED, "code", 40)
    performed = r.get("performedDateTime") or _dict(r.get("performedPeriod")).get("start")
    return [("", Procedure, {"code": code, "display": display,
                             "performed_at": _when(performed, "performed time")})]  # fmt: skip


def _document_reference(imp: _Importer, entry: _Entry) -> list[Row]:
    """One Document per inline attachment, held to the provider portal's upload rules
    (records.uploads: PDF, PNG, JPEG or UTF-8 text, checked by content; the size limit).
    An attachment that breaks them is an error for the entry, so the bundle writes nothing:
    a transaction is all or nothing, the integrator is told which entry and why at once,
    and no chart silently lacks a letter its sender thinks was filed."""
    r = entry.resource
    if r.get("status") == "entered-in-error":
        raise _Skip("status entered-in-error")
    rows: list[Row] = []
    for i, content in enumerate(_dicts(r.get("content"))):
        attachment = _dict(content.get("attachment"))
        if not attachment.get("data"):
            continue
        try:
            data = base64.b64decode(_text(attachment["data"]), validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError("an attachment's data is not base64") from None
        content_type = document_content_validate(
            content=data, declared_type=_text(attachment.get("contentType"))
        )
        _, type_display = _coding(r.get("type"))
        title = attachment.get("title") or r.get("description") or type_display or "Document"
        rows.append((str(i) if i else "", Document, {
            "title": str(title)[:200], "content_type": content_type,
            "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "content": data,
        }))  # fmt: skip
    if not rows:
        raise _Skip("no inline attachment data (attachments by URL are not fetched)")
    return rows


def _reference_display(ref: Any) -> dict[str, str] | None:
    """A reference to something the portal does not hold (a Location, a Practitioner) as its
    display text alone, or None without one."""
    display = _text(_dict(ref).get("display"))
    return {"display": display[:200]} if display else None


def _without_references(value: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """`value` with each Reference (or list of them) named in `names` as display text only:
    a sender's ids mean nothing here, and would name resources the portal does not hold."""
    out = dict(value)
    for name in names:
        if name not in out:
            continue
        kept: list[dict[str, str]] | dict[str, str] | None
        if isinstance(out[name], list):
            kept = [d for d in (_reference_display(r) for r in out[name]) if d]
        else:
            kept = _reference_display(out[name])
        if kept:
            out[name] = kept
        else:
            del out[name]
    return out


def _patient_of(imp: _Importer, entry: _Entry) -> Patient:
    return imp.patients_by_entry[entry.index]


def _diagnostic_report(imp: _Importer, entry: _Entry) -> list[Row]:
    """A report: its code, categories, times, attached text (presentedForm, as sent) and
    its results, linked to the Observation rows they became (a result that names none is
    kept as its display text)."""
    r = entry.resource
    _status_guard(r)
    if not isinstance(r.get("code"), dict):
        raise _Skip("no code")
    period = _dict(r.get("effectivePeriod"))
    effective = _when(
        r.get("effectiveDateTime") or period.get("start") or r.get("issued"), "effective time"
    )
    patient = _patient_of(imp, entry)
    forms = [
        {k: v for k, v in form.items() if k in ("contentType", "language", "data", "title",
                                                  "creation", "size", "hash", "url")}
        for form in _dicts(r.get("presentedForm"))
    ]  # fmt: skip
    fields = {
        "report_status": str(r.get("status") or "final")[:20],
        "code": r["code"],
        "category": _dicts(r.get("category")),
        "effective_at": effective,
        "issued": _when(r["issued"], "issued") if r.get("issued") else None,
        "results": imp.linked(entry, r.get("result"), "Observation", Observation, patient,
                              "observation"),
        "presented_form": forms,
        "conclusion": _text(r.get("conclusion")),
        "encounter_id": entry.encounter_id,
    }  # fmt: skip
    if isinstance(r.get("conclusionCode"), list):
        fields["conclusion_code"] = _dicts(r.get("conclusionCode"))
    return [("", DiagnosticReport, fields)]


def _care_plan(imp: _Importer, entry: _Entry) -> list[Row]:
    """A care plan: its activities (each detail as sent, references as display text), the
    problems it addresses and its goals, linked to the rows they became."""
    r = entry.resource
    _status_guard(r)
    period = _dict(r.get("period"))
    patient = _patient_of(imp, entry)
    activities: list[dict[str, Any]] = []
    for activity in _dicts(r.get("activity")):
        kept: dict[str, Any] = {}
        detail = _without_references(
            _dict(activity.get("detail")),
            ("location", "performer", "productReference", "reasonReference", "goal"),
        )
        detail.pop("instantiatesCanonical", None)  # the sender's protocol URLs
        if detail:
            kept["detail"] = detail
        named = _reference_display(activity.get("reference"))
        if named:
            kept["reference"] = named
        if kept:
            activities.append(kept)
    fields = {
        "plan_status": str(r.get("status") or "active")[:20],
        "intent": str(r.get("intent") or "plan")[:20],
        "category": _dicts(r.get("category")),
        "title": _text(r.get("title")),
        "description": _text(r.get("description")),
        "period_start": _when(period.get("start") or r.get("created"), "period.start"),
        "period_end": _when(period["end"], "period.end") if period.get("end") else None,
        "activities": activities,
        "addresses": imp.linked(entry, r.get("addresses"), "Condition", Condition, patient,
                                "condition"),
        "goals": imp.linked(entry, r.get("goal"), "Goal", Goal, patient, "goal"),
        "encounter_id": entry.encounter_id,
    }  # fmt: skip
    return [("", CarePlan, fields)]


def _goal(imp: _Importer, entry: _Entry) -> list[Row]:
    r = entry.resource
    if r.get("lifecycleStatus") == "entered-in-error":
        raise _Skip("lifecycleStatus entered-in-error")
    if not isinstance(r.get("description"), dict):
        raise _Skip("no description")
    patient = _patient_of(imp, entry)
    fields = {
        "lifecycle_status": str(r.get("lifecycleStatus") or "active")[:20],
        "achievement_status": r.get("achievementStatus") if isinstance(
            r.get("achievementStatus"), dict) else None,
        "description": r["description"],
        "targets": [_without_references(t, ()) for t in _dicts(r.get("target"))],
        "addresses": imp.linked(entry, r.get("addresses"), "Condition", Condition, patient,
                                "condition"),
        "start_date": _day(r.get("startDate")),
        "status_date": _day(r.get("statusDate")),
    }  # fmt: skip
    return [("", Goal, fields)]


def _imaging_study(imp: _Importer, entry: _Entry) -> list[Row]:
    """An imaging study: its series and instances as sent (uids, body sites, modalities,
    SOP classes, numbers), references kept as display text."""
    r = entry.resource
    _status_guard(r)
    series = [
        _without_references(s, ("endpoint", "specimen", "performer"))
        for s in _dicts(r.get("series"))
    ]
    fields = {
        "study_status": str(r.get("status") or "available")[:20],
        "started": _when(r.get("started") or (series[0].get("started") if series else None),
                         "started"),
        "identifiers": _dicts(r.get("identifier")),
        "modality": _dicts(r.get("modality")),
        "procedure_code": _dicts(r.get("procedureCode")),
        "series": series,
        "number_of_series": r.get("numberOfSeries"),
        "number_of_instances": r.get("numberOfInstances"),
        "description": _text(r.get("description")),
        "encounter_id": entry.encounter_id,
    }  # fmt: skip
    return [("", ImagingStudy, fields)]


MAPPERS: dict[str, Callable[[_Importer, _Entry], list[Row]]] = {
    "Encounter": _encounter,
    "Observation": _observation,
    "Condition": _condition,
    "MedicationRequest": _medication_request,
    "AllergyIntolerance": _allergy,
    "Immunization": _immunization,
    "Procedure": _procedure,
    "DocumentReference": _document_reference,
    "DiagnosticReport": _diagnostic_report,
    "CarePlan": _care_plan,
    "Goal": _goal,
    "ImagingStudy": _imaging_study,
}
