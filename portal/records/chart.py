"""What an opened chart shows: the chart page, one category across registrations.

Every reader here takes an `OpenedChart` (records.access), never a Patient: what the reader
may see (categories, restricted notes) comes with it, through records.access.chart_records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.http import Http404

from portal.ids import row_id
from portal.records import access, observations
from portal.records.access import OpenedChart
from portal.records.categories import (
    MEASURED_CATEGORIES,
    MODEL_CATEGORY,
    OBSERVATION_CATEGORY,
    Category,
    categories_named,
)
from portal.records.models import (
    RECORD_MODELS,
    AllergyIntolerance,
    ClinicalRecord,
    Condition,
    DiagnosticReport,
    Document,
    MedicationRequest,
    Observation,
    Patient,
    RecordStatus,
    model_name,
)

RECORD_TYPES = access.RECORD_TYPES
TIMELINE_DATE = {
    "encounter": "period_start",
    "observation": "effective_at",
    "condition": "created_at",
    "medicationrequest": "authored_on",
    "allergyintolerance": "recorded_date",
    "immunization": "occurrence",
    "procedure": "performed_at",
    "clinicalnote": "created_at",
    "document": "created_at",
    "diagnosticreport": "effective_at",
    "imagingstudy": "started",
    "careplan": "period_start",
    "goal": "created_at",
}

# A category -> the record types it holds (reports: test reports and imaging studies).
CATEGORY_MODELS: dict[str, tuple[type[ClinicalRecord], ...]] = {
    category: tuple(RECORD_TYPES[n] for n, c in MODEL_CATEGORY.items() if c == category)
    for category in dict.fromkeys(MODEL_CATEGORY.values())
}
CATEGORY_MODELS.update({category: (Observation,) for category in OBSERVATION_CATEGORY.values()})


@dataclass
class Chart:
    patient: Patient
    problems: list[Condition] = field(default_factory=list)
    medications: list[MedicationRequest] = field(default_factory=list)
    allergies: list[AllergyIntolerance] = field(default_factory=list)
    timeline: list[tuple[Any, str, ClinicalRecord]] = field(default_factory=list)
    series: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The observations the timeline's test reports name as results, by id (those the reader
    # is shown: a report whose laboratory results are withheld lists none).
    report_results: dict[int, Observation] = field(default_factory=dict)
    # The categories the reader is not shown (OpenedChart.withheld), whatever they hold:
    # the page says "Not shared with you" there, never "None recorded".
    withheld: list[Category] = field(default_factory=list)

    @property
    def withheld_labels(self) -> list[str]:
        return [c.label for c in self.withheld]

    @property
    def trends_withheld(self) -> list[str]:
        """The measurement categories (vital signs, laboratory results) not shown."""
        return [c.label for c in self.withheld if c.category in MEASURED_CATEGORIES]

    # The hospitals the series' values come from, by id (each series' "hospitals" lists
    # one id per point): the trend charts name them in a legend.
    hospitals: dict[int, str] = field(default_factory=dict)


def record_types_present(*, chart: OpenedChart) -> frozenset[str]:
    """The record types with an active row on the chart (open_chart's answer, or one
    query of an EXISTS per type)."""
    if chart.present is not None:
        return chart.present
    found = set()
    for model in RECORD_MODELS:
        if _active(chart, model).exists():
            found.add(model_name(model))
    return frozenset(found)


def _active(chart: OpenedChart, model: type[ClinicalRecord]):
    return access.chart_records(chart=chart, model=model, status=RecordStatus.ACTIVE)


def chart_for(*, chart: OpenedChart, timeline_limit: int = 100) -> Chart:
    """Everything the chart page shows: one query per record type the chart holds (which
    ones, open_chart said), whatever the number of rows."""
    if timeline_limit > access.TREND_POINTS:
        raise ValueError("the timeline cannot be longer than a trend's newest values")
    access.chart_required(chart)
    page = Chart(patient=chart.patient, withheld=categories_named(chart.withheld))
    # A chart's records are its registration's hospital's (loaded with the patient).
    page.hospitals[chart.patient.hospital_id] = chart.patient.hospital.name
    present = record_types_present(chart=chart)
    for model in RECORD_MODELS:
        name = model._meta.model_name
        if name not in present:
            continue
        date = TIMELINE_DATE[name]
        recent: Sequence[ClinicalRecord]
        if model is Observation:
            rows = _observations(chart, date)
            # Grouped by the code's token (clear, one per code on a chart), so that each
            # series decrypts its code, display and unit once, not once per value.
            counts: dict[str, int] = {}
            for obs in rows:
                counts[obs.code_index] = counts.get(obs.code_index, 0) + 1
            # rows come oldest first: each code's first rows beyond access.TREND_POINTS go
            excess = {
                code: n - access.TREND_POINTS
                for code, n in counts.items()
                if n > access.TREND_POINTS
            }
            cut = set(excess)
            kept = []
            by_token: dict[tuple[int, str], dict[str, Any]] = {}
            for obs in rows:
                if excess.get(obs.code_index):
                    excess[obs.code_index] -= 1
                    continue
                kept.append(obs)
                for s in _add_points(page.series, by_token, obs):
                    s["truncated"] = s.get("truncated") or obs.code_index in cut
            recent = kept[-timeline_limit:]
        else:
            recent = list(_active(chart, model).order_by(f"-{date}", "-id")[:timeline_limit])
            if model is Condition:
                # The stubs type an encrypted field by its column (bytes); it holds str.
                page.problems = [
                    c
                    for c in recent
                    if isinstance(c, Condition) and c.clinical_status == "active"  # type: ignore[comparison-overlap]
                ]
            elif model is MedicationRequest:
                page.medications = [
                    m
                    for m in recent
                    if isinstance(m, MedicationRequest) and m.request_status == "active"
                ]
            elif model is AllergyIntolerance:
                page.allergies = [a for a in recent if isinstance(a, AllergyIntolerance)]
        for record in recent:
            page.timeline.append((getattr(record, date), name, record))
    page.timeline.sort(key=lambda item: item[0], reverse=True)
    page.timeline = page.timeline[:timeline_limit]
    page.report_results = report_results_for(
        charts=[chart], reports=[r for _, _, r in page.timeline if isinstance(r, DiagnosticReport)]
    )
    return page


def report_results_for(
    *, charts: list[OpenedChart], reports: Sequence[DiagnosticReport]
) -> dict[int, Observation]:
    """The observations `reports` name as results, as far as the charts (opened alike)
    show them, by id: one query for all of them (none without a report)."""
    ids = {pk for report in reports for pk in report.result_ids}
    if not ids:
        return {}
    rows = access.charts_records(charts=charts, model=Observation, pk__in=ids)
    return {obs.pk: obs for obs in rows}


def _observations(chart: OpenedChart, date: str) -> list[Observation]:
    """The chart's active observations oldest first, each code's newest TREND_POINTS + 1
    (one more than is drawn, so a series knows whether older values exist).

    Most charts hold no more observations than one trend draws: they are read whole, newest
    first, in one plain query (chart_for cuts each code itself). Only a chart with more is
    read again with the per-code window (two queries, whatever its size)."""
    cap = access.TREND_POINTS + 1
    few = list(_active(chart, Observation).order_by(f"-{date}", "-id")[:cap])
    if len(few) < cap:
        few.reverse()
        return few
    newest = Window(
        RowNumber(), partition_by=[F("code_index")], order_by=[F(date).desc(), F("id").desc()]
    )
    qs = (
        _active(chart, Observation)
        .annotate(newest=newest)
        .filter(newest__lte=access.TREND_POINTS + 1)
    )
    return list(qs.order_by(date, "id"))


def _add_points(
    series: dict[str, dict[str, Any]],
    by_token: dict[tuple[int, str], dict[str, Any]],
    obs: Observation,
) -> list[dict[str, Any]]:
    """Add an observation's numbers to the trend series (by code), and say which series it
    added to: its own Quantity, and a panel's numeric components (an imported blood
    pressure's 8480-6 and 8462-4 join the provider form's rows of those codes). A series
    of the row's own code decrypts its code, display and unit once per (patient, code
    token), not once per value."""
    touched = []
    if obs.value is not None:
        key = (obs.patient_id, obs.code_index)
        s = by_token.get(key)
        if s is None:
            # The stubs type an encrypted field by its column (bytes); it holds str.
            code: str = obs.code  # type: ignore[assignment]
            s = by_token[key] = series.setdefault(code, _series(obs.display, obs.unit))
        s["points"].append((obs.effective_at, obs.value))
        s["hospitals"].append(obs.hospital_id)
        touched.append(s)
    if obs.components is not None:
        for code, display, unit, value in observations.component_numbers(obs):
            s = series.setdefault(code, _series(display, unit))
            s["points"].append((obs.effective_at, value))
            s["hospitals"].append(obs.hospital_id)
            touched.append(s)
    return touched


def _series(display: Any, unit: Any) -> dict[str, Any]:
    return {"display": display, "unit": unit or "", "points": [], "hospitals": []}


@dataclass
class CategoryView:
    category: str
    records: list[ClinicalRecord] = field(default_factory=list)
    series: dict[str, dict[str, Any]] = field(default_factory=dict)
    date_field: str = "created_at"
    hospitals: dict[int, str] = field(default_factory=dict)  # as Chart.hospitals
    report_results: dict[int, Observation] = field(default_factory=dict)  # as Chart's

    # The notes category is "not restricted ones": a page lists those under it and the
    # restricted notes the reader may see (the owner's own) under a heading of their own.
    @property
    def unrestricted(self) -> list[ClinicalRecord]:
        return [r for r in self.records if not getattr(r, "restricted", False)]

    @property
    def restricted(self) -> list[ClinicalRecord]:
        return [r for r in self.records if getattr(r, "restricted", False)]


def records_by_category(
    *, charts: list[OpenedChart], category: str, limit: int = 500
) -> CategoryView:
    """One category of records across several registrations opened alike (the account's
    own, or one proxy grant's): one query, whatever the count."""
    for chart in charts:
        access.chart_required(chart)
    view = CategoryView(category=category)
    for chart in charts:  # in the registrations' order, which the page lists them in
        view.hospitals.setdefault(chart.patient.hospital_id, chart.patient.hospital.name)
    if not charts or category not in CATEGORY_MODELS:
        return view
    models = CATEGORY_MODELS[category]
    view.date_field = TIMELINE_DATE[model_name(models[0])]
    if not charts[0].allows(category):
        for model in models:
            access.charts_records(charts=charts, model=model)  # still refuses mixed access
        return view
    model = models[0]
    if len(models) > 1:
        # Several types (reports and imaging; plans and goals): one query each, newest first
        # by each one's own date.
        dated: list[tuple[Any, ClinicalRecord]] = []
        for each in models:
            date = TIMELINE_DATE[model_name(each)]
            qs = access.charts_records(charts=charts, model=each, status=RecordStatus.ACTIVE)
            rows = list(qs.select_related("hospital").order_by(f"-{date}", "-id")[:limit])
            dated += [(getattr(r, date), r) for r in rows]
        dated.sort(key=lambda item: item[0], reverse=True)
        view.records = [r for _, r in dated[:limit]]
        view.date_field = "when"
        view.report_results = report_results_for(
            charts=charts, reports=[r for r in view.records if isinstance(r, DiagnosticReport)]
        )
        return view
    filters: dict[str, Any] = {"status": RecordStatus.ACTIVE}
    if model is Observation:
        filters["category__in"] = [k for k, v in OBSERVATION_CATEGORY.items() if v == category]
    qs = access.charts_records(charts=charts, model=model, **filters).select_related("hospital")
    view.records = list(qs.order_by(f"-{view.date_field}", "-id")[:limit])
    if model is Observation:
        # The same code at two hospitals is one series, as on the chart.
        by_token: dict[tuple[int, str], dict[str, Any]] = {}
        for obs in reversed(view.records):
            assert isinstance(obs, Observation)  # model is Observation
            _add_points(view.series, by_token, obs)
    return view


def chart_document(*, charts: list[OpenedChart], document_id: Any) -> tuple[OpenedChart, Document]:
    """A document on one of these charts opened alike (the account's own, or one proxy
    grant's), as far as they show documents, with the chart it is on (one query). Another
    patient's document, a missing one and one the charts do not show are the same 404."""
    pk = row_id(document_id)
    if pk is None or not charts:
        raise Http404("No such document.")
    rows = access.charts_records(charts=charts, model=Document, status=RecordStatus.ACTIVE)
    document = rows.filter(pk=pk).first()
    by_patient = {chart.patient.pk: chart for chart in charts}
    if document is None or document.patient_id not in by_patient:
        raise Http404("No such document.")
    return by_patient[document.patient_id], document
