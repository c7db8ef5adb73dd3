"""The patient list and the chart run a constant number of queries, whatever the rows."""

import datetime as dt
from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.records import services
from portal.records.models import Condition, MedicationRequest
from portal.tenancy.scoping import unscoped
from tests import factories


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_patient_list_query_count_is_constant(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    _queries(client, "/provider/")  # the first request of a process warms caches (content types)
    few = _queries(client, "/provider/")
    for _ in range(30):
        factories.PatientFactory(hospital=a["hospital"])
    assert _queries(client, "/provider/") == few
    middle = factories.PatientFactory(hospital=a["hospital"]).pk - 10
    # A deeper page also looks at the nearest newer window (is there a newer page?): two
    # more queries, whatever its depth.
    assert _queries(client, f"/provider/?before={middle}") == few + 2
    assert _queries(client, f"/provider/?before={middle - 5}") == few + 2


def _add_records(patient, actor, count: int, start: int = 0) -> None:
    with unscoped():
        for i in range(start, start + count):
            services.observation_create(
                actor=actor, patient=patient, code="8480-6",
                display="Systolic blood pressure", value=Decimal(120 + i), unit="mm[Hg]",
                effective_at=timezone.now() - dt.timedelta(days=i, hours=1),
            )  # fmt: skip
            services.record_create(
                actor=actor, patient=patient, model=Condition, code=f"C{i}",
                display=f"Condition {i}",
            )  # fmt: skip
            services.record_create(
                actor=actor, patient=patient, model=MedicationRequest,
                code=f"M{i}", display=f"Drug {i}", authored_on=timezone.now(),
            )  # fmt: skip


def test_chart_query_count_is_constant(client, sign_in, world):
    """Constant in the number of rows: the opened chart (patient, grants and which record
    types it holds, one query), then one query per type present (never one per row)."""
    a = world["a"]
    sign_in(client, a["clinician"])
    url = f"/provider/patients/{a['patient'].pk}/"
    _queries(client, url)  # the first request of a process warms caches (content types)
    empty = _queries(client, url)
    _add_records(a["patient"], a["clinician"], 1)
    few = _queries(client, url)
    assert few <= empty + 3  # at most one query more per record type the chart gained
    _add_records(a["patient"], a["clinician"], 14, start=1)
    assert _queries(client, url) == few
