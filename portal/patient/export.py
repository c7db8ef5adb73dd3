"""Everything a patient may take away: their registrations and records as one FHIR R4
Bundle (type collection), built with the FHIR interface's own mappings."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from portal.records.access import OpenedChart, chart_required
from portal.records.categories import CHART_CATEGORIES
from portal.records.chart import records_by_category


def patient_bundle(*, charts: list[OpenedChart]) -> dict[str, Any]:
    """The registrations the account opened as their owner (records.access.owner_charts):
    one query per category across all of them (not per record or hospital)."""
    from portal.fhir.resources import bundle, to_fhir

    patients = [chart_required(c).patient for c in charts]
    resources = [to_fhir(p) for p in patients]
    seen: set[tuple[str, int]] = set()
    for code, _label in CHART_CATEGORIES:
        view = records_by_category(charts=charts, category=code, limit=100_000)
        for record in view.records:
            key = (record._meta.model_name, record.pk)
            if key not in seen:
                seen.add(key)
                resources.append(to_fhir(record))
    from consent.selectors import consents_for_patient
    from portal.fhir.resources import consent_to_fhir

    for patient in patients:
        resources += [consent_to_fhir(c) for c in consents_for_patient(patient=patient)]
    result = bundle(resources, bundle_type="collection", base_url="urn:portal:")
    result["timestamp"] = timezone.now().isoformat()
    return result
