"""Access events in the admin: filters, CSV export (streamed), constant query counts."""

from __future__ import annotations

import csv
import datetime as dt
import io

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ledger.models import ACCESS_KINDS, AccessEvent, Event
from tests import factories
from tests.admin.conftest import _read
from tests.tamper import tamper

URL = "/admin/ledger/accessevent/"


def _ids(response) -> set[int]:
    return {e.pk for e in response.context["cl"].result_list}


def _csv(response) -> list[dict]:
    assert response["Content-Type"] == "text/csv"
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_filters(client, sign_in, world, auditor):
    a, b = world["a"], world["b"]
    clin_a, clin_b = world["clinician_a"], world["clinician_b"]
    old = _read(patient=world["patient_a"], actor=clin_a)
    # Ten days old: recorded_at is a fact the database guards, so set past its triggers.
    tamper(
        "UPDATE ledger_event SET recorded_at = %s WHERE id = %s",
        (connection.ops.adapt_datetimefield_value(timezone.now() - dt.timedelta(days=10)), old.pk),
    )
    sign_in(client, auditor)
    every = _ids(client.get(URL))
    assert every == set(AccessEvent.objects.values_list("pk", flat=True))
    assert set(Event.objects.filter(pk__in=every).values_list("kind", flat=True)) <= set(
        ACCESS_KINDS
    )
    assert Event.objects.exclude(pk__in=every).exists()  # consent and record events are not

    by_user = _ids(client.get(URL, {"actor__id__exact": clin_b.pk}))
    assert by_user
    assert by_user == set(AccessEvent.objects.filter(actor=clin_b).values_list("pk", flat=True))
    by_hospital = _ids(client.get(URL, {"hospital__id__exact": a.pk}))
    assert by_hospital == set(AccessEvent.objects.filter(hospital=a).values_list("pk", flat=True))
    by_patient = _ids(client.get(URL, {"patient": world["patient_b"].pk}))
    assert by_patient == set(
        AccessEvent.objects.filter(patient_id=world["patient_b"].pk).values_list("pk", flat=True)
    )
    # Not a patient id: Django's answer to an invalid lookup (back to the whole list, `?e=1`),
    # which says so in words, rather than a silently empty list.
    response = client.get(URL, {"patient": "nonsense"})
    assert response.status_code == 302 and response.url == URL + "?e=1"
    assert b"could not be used" in client.get(response.url).content
    glass = _ids(client.get(URL, {"break_glass": "yes"}))
    # The break-glass opening itself and the flagged read at Riverside.
    assert {Event.objects.get(pk=pk).hospital_id for pk in glass} == {b.pk}
    assert len(glass) == 2
    assert _ids(client.get(URL, {"break_glass": "no"})) == every - glass
    care = _ids(client.get(URL, {"purpose": "CAREMGT"}))
    assert [Event.objects.get(pk=pk).kind for pk in care] == ["record.read"]
    today = timezone.localdate().isoformat()
    recent = _ids(client.get(URL, {"from": today, "to": today}))
    assert old.pk not in recent and recent == every - {old.pk}
    ten_days = (timezone.localdate() - dt.timedelta(days=10)).isoformat()
    assert _ids(client.get(URL, {"from": ten_days, "to": ten_days})) == {old.pk}
    combined = _ids(client.get(URL, {"hospital__id__exact": b.pk, "purpose": "ETREAT"}))
    assert len(combined) == 1


def test_csv_export_of_the_filtered_list_and_of_a_selection(client, sign_in, world, auditor):
    sign_in(client, auditor)
    response = client.get(URL + "export.csv", {"hospital__id__exact": world["b"].pk})
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    rows = _csv(response)
    assert rows and {r["hospital"] for r in rows} == {"Riverside General"}
    flagged = [r for r in rows if r["break_glass"] == "yes"]
    assert len(flagged) == 2
    read = next(r for r in rows if r["kind"] == "chart.read")
    assert read["actor_username"] == "clin-b" and read["actor_name"] == "Doc TorB"
    assert read["purpose"] == "ETREAT" and read["via"] == "breakglass"
    assert read["patient_id"] == str(world["patient_b"].pk)
    body = "\n".join(",".join(r.values()) for r in rows)
    for phi in ("Wilhelmina", "Brontesque", "BBB-22222", "1980", "Unconscious"):
        assert phi not in body

    # The action exports the selected rows only.
    chosen = AccessEvent.objects.filter(hospital=world["a"]).values_list("pk", flat=True)[:1]
    response = client.post(URL, {"action": "export_csv", "_selected_action": list(chosen)})
    rows = _csv(response)
    assert len(rows) == 1 and rows[0]["hospital"] == "St Mary's Hospital"


def test_hospital_admin_exports_only_their_hospital(client, sign_in, world):
    sign_in(client, world["admin_a"])
    rows = _csv(client.get(URL + "export.csv"))
    assert rows and {r["hospital_id"] for r in rows} == {str(world["a"].pk)}
    rows = _csv(client.get(URL + "export.csv", {"hospital__id__exact": world["b"].pk}))
    assert {r["hospital_id"] for r in rows} <= {str(world["a"].pk)}
    foreign = AccessEvent.objects.filter(hospital=world["b"]).values_list("pk", flat=True)
    response = client.post(URL, {"action": "export_csv", "_selected_action": list(foreign)})
    # Foreign ids are not in the admin's queryset: nothing to export (Django says so).
    assert response.status_code in (200, 302)
    if response.status_code == 200 and response.get("Content-Type") == "text/csv":
        assert _csv(response) == []


def test_changelist_query_count_does_not_grow_with_rows(client, sign_in, world, auditor):
    sign_in(client, auditor)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(URL).status_code == 200
        return len(ctx.captured_queries)

    few = count()
    for _ in range(3):
        user = factories.UserFactory()
        for _ in range(5):
            _read(patient=world["patient_a"], actor=user, purpose="TREAT")
    many = count()
    assert AccessEvent.objects.count() >= 19  # 15 rows more than the first count
    assert many == few, (few, many)


def test_hospital_admins_list_is_constant_in_queries_with_reads_from_elsewhere(
    client, sign_in, world
):
    """Riverside's admin: their staff's reads of St Mary's charts are listed (the patient
    withheld) in a constant number of queries, as the reads of Riverside's own charts."""
    sign_in(client, world["admin_b"])

    def count() -> tuple[int, set[int]]:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(URL)
        assert response.status_code == 200
        return len(ctx.captured_queries), _ids(response)

    few, before = count()
    reads = set()
    for _ in range(3):
        user = factories.UserFactory()
        for _ in range(5):
            event = _read(patient=world["patient_a"], actor=user, from_hospital=world["b"])
            reads.add(event.pk)
    many, after = count()
    assert after == before | reads
    assert many == few, (few, many)
    rows = _csv(client.get(URL + "export.csv"))
    mine = [r for r in rows if r["hospital_id"] == str(world["a"].pk)]
    assert len(mine) == 15
    assert {(r["patient_id"], r["subject_id"]) for r in mine} == {("withheld", "withheld")}
    assert {r["actor_hospital"] for r in mine} == {"Riverside General"}
