"""The performance paths write and read exactly what the ORM paths do."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ledger import subjects
from ledger.models import Event
from portal.records import access, services
from portal.records.chart import chart_for, record_types_present
from portal.records.models import ClinicalNote, Observation
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped


def test_record_and_event_in_one_statement_match_the_orm(world):
    a = world["a"]
    when = timezone.now() - dt.timedelta(hours=3)
    with unscoped(), CaptureQueriesContext(connection) as ctx:
        obs = services.observation_create(
            actor=a["clinician"], patient=a["patient"], code="8480-6",
            display="Systolic blood pressure", value=Decimal("121.5"), unit="mm[Hg]",
            effective_at=when,
        )  # fmt: skip
    writes = [q["sql"] for q in ctx.captured_queries if not q["sql"].startswith("SELECT")]
    if connection.vendor == "postgresql":  # record + outbox event, one statement
        assert len(writes) == 1 and "records_observation" in writes[0]
        assert "ledger_event" in writes[0]
    with unscoped():
        stored = Observation._base_manager.get(pk=obs.pk)
        event = Event.objects.get(subject_id=str(obs.row_uuid))
    assert (stored.value, stored.unit, stored.effective_at) == (Decimal("121.5"), "mm[Hg]", when)
    assert stored.recorded_by_id == a["clinician"].pk and stored.created_at is not None
    assert event.pk and event.kind == "observation.created" and event.status == Event.PENDING
    assert event.patient_id == a["patient"].pk and event.actor_id == a["clinician"].pk
    # The digest in the outbox is the digest of the row as the database gives it back.
    assert event.digest == subjects.digest_of(stored, hospital_id=stored.hospital_id)


def test_chart_skips_absent_record_types_but_filters_the_present_ones(world, make_staff):
    a = world["a"]
    with unscoped():
        services.record_create(
            actor=a["clinician"], patient=a["patient"], model=ClinicalNote, title="Private",
            text="x", restricted=True,
        )  # fmt: skip
    colleague = make_staff(a["hospital"], Role.CLINICIAN)
    with unscoped():
        opened = access.access_patient(a["clinician"], a["patient"].pk)
        mine = chart_for(chart=opened)
        theirs = chart_for(chart=access.access_patient(colleague, a["patient"].pk))
        # What the opening query said is present is what the chart holds.
        looked = record_types_present(chart=access.chart_reopened(opened, present=None))
    titles = {r.title for _, kind, r in mine.timeline if kind == "clinicalnote"}
    assert "Private" in titles
    assert "Private" not in {r.title for _, kind, r in theirs.timeline if kind == "clinicalnote"}
    assert {kind for _, kind, _ in mine.timeline} <= opened.present == looked


def test_repeated_creates_write_and_read_back(world):
    """The same statement, again and again (prepared by psycopg when server-side binding is
    on): each create writes its record and its event."""
    a = world["a"]
    with unscoped():
        made = [
            services.observation_create(
                actor=a["clinician"],
                patient=a["patient"],
                code="8867-4",
                display="Heart rate",
                value=Decimal(60 + i),
                unit="/min",
                effective_at=timezone.now(),
            )
            for i in range(4)
        ]
        values = [o.value for o in Observation._base_manager.filter(pk__in=[o.pk for o in made])]
    assert sorted(values) == [Decimal(60), Decimal(61), Decimal(62), Decimal(63)]
    assert Event.objects.filter(subject_id__in=[str(o.row_uuid) for o in made]).count() == 4


def test_trend_series_keep_each_codes_newest_values(world, monkeypatch):
    """A long stay's vitals do not all load: each code keeps its newest TREND_POINTS values
    (a rare lab is not crowded out by a frequent vital), oldest first; the timeline still
    holds the newest records."""
    a = world["a"]
    patient, now = a["other"], timezone.now()  # a chart with no records yet
    with unscoped():
        for i in range(5):  # heart rate, hourly
            services.observation_create(
                actor=a["clinician"], patient=patient, code="8867-4", display="Heart rate",
                value=Decimal(60 + i), unit="/min", effective_at=now - dt.timedelta(hours=i + 1),
            )  # fmt: skip
        services.observation_create(  # one glucose, older than every heart rate
            actor=a["clinician"], patient=patient, code="2339-0",
            display="Glucose [Mass/volume] in Blood", value=Decimal(98), unit="mg/dL",
            effective_at=now - dt.timedelta(days=3),
        )  # fmt: skip
    monkeypatch.setattr(access, "TREND_POINTS", 3)
    with unscoped():
        opened = access.access_patient(a["clinician"], patient.pk)
        chart = chart_for(chart=opened, timeline_limit=2)
        with pytest.raises(ValueError):
            chart_for(chart=opened, timeline_limit=4)
    heart = [value for _, value in chart.series["8867-4"]["points"]]
    assert heart == [Decimal(62), Decimal(61), Decimal(60)]  # the newest three, oldest first
    assert [value for _, value in chart.series["2339-0"]["points"]] == [Decimal(98)]
    # Older heart rates exist and the series says so; the single glucose is all there is.
    assert chart.series["8867-4"]["truncated"] and not chart.series["2339-0"]["truncated"]
    newest = [r.value for _, kind, r in chart.timeline if kind == "observation"]
    assert newest == [Decimal(60), Decimal(61)]


def test_a_trend_with_older_values_says_so_on_the_page(world, client, sign_in):
    a = world["a"]
    patient, now = a["other"], timezone.now()
    with unscoped():
        for i in range(access.TREND_POINTS + 1):  # heart rate: one more than is drawn
            services.observation_create(
                actor=a["clinician"], patient=patient, code="8867-4", display="Heart rate",
                value=Decimal(60 + i % 30), unit="/min",
                effective_at=now - dt.timedelta(hours=i + 1),
            )  # fmt: skip
        services.observation_create(  # glucose: all of it is drawn
            actor=a["clinician"], patient=patient, code="2339-0",
            display="Glucose [Mass/volume] in Blood", value=Decimal(98), unit="mg/dL",
            effective_at=now - dt.timedelta(days=30),
        )  # fmt: skip
    sign_in(client, a["clinician"])
    page = client.get(f"/provider/patients/{patient.pk}/").content.decode()
    heart = page[page.index('data-code="8867-4"') :].split("</figure>")[0]
    glucose = page[page.index('data-code="2339-0"') :].split("</figure>")[0]
    assert heart.count("<circle ") == access.TREND_POINTS
    assert f"The newest {access.TREND_POINTS} values are drawn; older ones are not." in heart
    assert glucose.count("<circle ") == 1 and "older ones are not" not in glucose
