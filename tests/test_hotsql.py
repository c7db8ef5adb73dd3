"""The statements of portal.hotsql read exactly what the querysets they replace read.

Each hot reader is compared with the ORM query it stands for, over grants of every kind
(own and group rows, categories, expired, not yet started, proxy-owned, restricted notes),
on SQLite and on PostgreSQL (where the statements are also prepared when not captured).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal
from functools import partial

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from portal import hotsql
from portal.records import grants, selectors, services
from portal.records.models import (
    RECORD_MODELS,
    ClinicalNote,
    Observation,
    Patient,
    PatientGroupObjectPermission,
    PatientUserObjectPermission,
)
from portal.records.selectors import (
    CHART_CODENAMES,
    PROXY_PREFIX,
    ChartAccess,
    RecordStatus,
)
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories


def _orm_chart_access(user, patient) -> ChartAccess | None:
    """chart_access_for as the ORM query it was before it became one statement."""
    ids = selectors._permission_ids(CHART_CODENAMES)
    direct = (
        PatientUserObjectPermission.objects.filter(
            selectors._live_q(), user_id=user.pk, content_object_id=patient.pk,
            permission_id__in=ids,
        )
        .exclude(source__startswith=PROXY_PREFIX)
        .values_list("permission__codename", "source", "expires_at")
    )  # fmt: skip
    via_group = PatientGroupObjectPermission.objects.filter(
        selectors._live_q(), group_id__in=selectors._group_ids(user),
        content_object_id=patient.pk, permission_id__in=ids,
    ).values_list("permission__codename", "source", "expires_at")  # fmt: skip
    return selectors._access_from_rows(
        list(direct.union(via_group, all=True)), user_id=user.pk, patient_id=patient.pk
    )


def _orm_chart_records(user, patient, model, limit):
    qs = selectors.records_for_patient(user=user, patient=patient, model=model).filter(
        status=RecordStatus.ACTIVE
    )
    date = selectors.TIMELINE_DATE[model._meta.model_name]
    if limit is None:
        return list(qs.order_by(date, "id"))
    return list(qs.order_by(f"-{date}", "-id")[:limit])


@pytest.fixture
def grants_world(consent_world, make_staff):
    """consent_world plus grant rows of every shape on its patient."""
    w = consent_world
    patient, now = w["patient"], timezone.now()
    hour = dt.timedelta(hours=1)
    w["vitals_only"] = make_staff(w["b"], Role.CLINICIAN)
    w["expired"] = make_staff(w["b"], Role.CLINICIAN)
    w["scheduled"] = make_staff(w["b"], Role.CLINICIAN)
    w["proxy_only"] = factories.UserFactory()
    w["team"] = make_staff(w["b"], Role.NURSE)
    group = Group.objects.create(name="hotsql-team")
    w["team"].groups.add(group)
    with unscoped():
        grants.chart_grant(
            patient=patient, user=w["vitals_only"], codenames=["view_chart_vitals"],
            source="consent:11111111-1111-1111-1111-111111111111", expires_at=now + hour,
        )  # fmt: skip
        grants.chart_grant(
            patient=patient, user=w["expired"], codenames=["view_patient"],
            source="consent:22222222-2222-2222-2222-222222222222", expires_at=now - hour,
        )  # fmt: skip
        grants.chart_grant(
            patient=patient, user=w["scheduled"], codenames=["view_patient"],
            source="consent:33333333-3333-3333-3333-333333333333", starts_at=now + hour,
        )  # fmt: skip
        grants.chart_grant(
            patient=patient, user=w["proxy_only"], codenames=["view_patient"],
            source=f"{PROXY_PREFIX}44444444-4444-4444-4444-444444444444",
        )  # fmt: skip
        grants.chart_grant(
            patient=patient, group=group, codenames=["view_chart_labs", "view_chart_notes"],
            source="consent:55555555-5555-5555-5555-555555555555",
        )  # fmt: skip
        # The restricted note: to one user live, to another expired, to a third as a proxy.
        grants.note_grant_write(note=w["secret"], user=w["team"])
        grants.note_grant_write(note=w["secret"], user=w["expired"], expires_at=now - hour)
        grants.note_grant_write(
            note=w["secret"], user=w["proxy_only"],
            source=f"{PROXY_PREFIX}44444444-4444-4444-4444-444444444444",
        )  # fmt: skip
        services.observation_create(
            actor=w["clinician_a"], patient=patient, code="8867-4", display="Heart rate",
            value=Decimal("72.50"), unit="/min", effective_at=now - 5 * hour,
        )  # fmt: skip
    return w


USERS = (
    "clinician_a", "clinician_b", "admin_a", "admin_b", "account", "other_account",
    "vitals_only", "expired", "scheduled", "proxy_only", "team",
)  # fmt: skip


def test_chart_access_matches_the_orm_query_for_every_kind_of_grant(grants_world):
    w = grants_world
    seen = set()
    with unscoped():
        for name in USERS:
            for patient in (w["patient"], w["other"]):
                hot = selectors.chart_access_for(user=w[name], patient=patient)
                assert hot == _orm_chart_access(w[name], patient), (name, patient.mrn)
                # access_patient's one statement (the patient joined with the grants)
                loaded, access = selectors._patient_and_access(w[name], patient.pk)
                assert access == hot and loaded.pk == patient.pk, (name, patient.mrn)
                assert loaded.hospital == patient.hospital
                assert loaded.record_types_present == selectors._record_types_present(patient)
                seen.add(None if hot is None else hot.categories)
    # The matrix covered no access, the whole chart and a part of it.
    assert None in seen and any(s is not None for s in seen)
    with unscoped():
        assert selectors.chart_access_for(user=w["expired"], patient=w["patient"]) is None
        assert selectors.chart_access_for(user=w["scheduled"], patient=w["patient"]) is None
        assert selectors.chart_access_for(user=w["proxy_only"], patient=w["patient"]) is None
        team = selectors.chart_access_for(user=w["team"], patient=w["patient"])
    assert team.categories == frozenset({"labs", "notes"}) and team.shared


def test_chart_records_match_records_for_patient_for_every_access(grants_world):
    w = grants_world
    checked = 0
    with unscoped():
        for name in USERS:
            user = w[name]
            bound = partial(ChartAccess, user_id=user.pk, patient_id=w["patient"].pk)
            for access in (
                selectors.chart_access_for(user=user, patient=w["patient"]),
                bound(categories=None),
                bound(categories=None, owner=True),
                bound(categories=frozenset({"notes", "vitals"}), proxy=True),
            ):
                if access is None:
                    continue
                patient = Patient._base_manager.get(pk=w["patient"].pk)
                patient.chart_access = access
                for model in RECORD_MODELS:
                    for limit in (None, 1, 100):
                        hot = selectors._chart_records(
                            user=user, patient=patient, model=model, limit=limit
                        )
                        orm = _orm_chart_records(user, patient, model, limit)
                        assert [r.pk for r in hot] == [r.pk for r in orm], (name, access, model)
                        checked += len(hot)
                    if model is Observation:  # the trend charts' each code's newest values
                        everything = _orm_chart_records(user, patient, model, None)
                        for per_code in (1, 2, 100):
                            hot = selectors._chart_records(
                                user=user, patient=patient, model=model, limit=None,
                                per_code=per_code,
                            )  # fmt: skip
                            kept = [
                                r.pk for r in everything
                                if sum(o.code == r.code and (o.effective_at, o.pk)
                                       > (r.effective_at, r.pk) for o in everything) < per_code
                            ]  # fmt: skip
                            assert [r.pk for r in hot] == kept, (name, access, per_code)
    assert checked
    # Restricted notes: the user granted on the note sees it, the expired grant and the
    # proxy-owned grant do not open it to staff.
    secret = w["secret"].pk
    with unscoped():
        for name, expect in (("team", True), ("expired", False), ("clinician_b", False)):
            patient = Patient._base_manager.get(pk=w["patient"].pk)
            patient.chart_access = ChartAccess(
                user_id=w[name].pk, patient_id=patient.pk, categories=None
            )
            notes = selectors._chart_records(
                user=w[name], patient=patient, model=ClinicalNote, limit=100
            )
            assert (secret in {n.pk for n in notes}) is expect, name


def test_loaded_rows_equal_orm_instances(grants_world):
    """Converters (encrypted, decimal, date and time columns) and select_related caching."""
    w = grants_world
    with unscoped():
        hot = selectors._patient_with_hospital(w["patient"].pk)
        orm = Patient._base_manager.select_related("hospital").get(pk=w["patient"].pk)
        fields = [f.attname for f in Patient._meta.concrete_fields]
        assert [getattr(hot, f) for f in fields] == [getattr(orm, f) for f in fields]
        assert (hot.given_name, hot.family_name, hot.birth_date) == (
            "Pat", "Jones", dt.date(1970, 2, 3),
        )  # fmt: skip
        assert Patient.hospital.is_cached(hot) and hot.hospital == orm.hospital
        assert not hot._state.adding and hot._state.db == "default"
        patient = Patient._base_manager.get(pk=w["patient"].pk)
        patient.chart_access = ChartAccess(
            user_id=w["clinician_a"].pk, patient_id=patient.pk, categories=None
        )
        rows = selectors._chart_records(
            user=w["clinician_a"], patient=patient, model=Observation, limit=None
        )
        by_pk = {o.pk: o for o in Observation._base_manager.filter(patient=patient)}
        obs_fields = [f.attname for f in Observation._meta.concrete_fields]
        for row in rows:
            assert [getattr(row, f) for f in obs_fields] == [
                getattr(by_pk[row.pk], f) for f in obs_fields
            ]
        assert Decimal("72.50") in {r.value for r in rows}
    assert selectors._patient_with_hospital(10**6) is None
    assert selectors._patient_and_access(w["clinician_a"], 10**6) == (None, None)


def test_ids_outside_the_64_bit_range_are_no_patient(consent_world, client, sign_in):
    sign_in(client, consent_world["clinician_a"])
    for bad in (2**63, 10**30):
        assert client.get(f"/provider/patients/{bad}/").status_code == 404
    assert selectors._int(2**63) is None and selectors._int(-(2**63)) == -(2**63)


def test_statements_are_built_once_per_name():
    calls = []

    def build():
        calls.append(1)
        return "SELECT 1"

    assert hotsql.statement("test.once", build) == hotsql.statement("test.once", build)
    assert len(calls) == 1


def test_rows_binds_parameters(db):
    assert hotsql.rows("SELECT 1 WHERE 1 = %s", [1]) == [(1,)]
    assert hotsql.rows("SELECT 1 WHERE 1 = %s", [2]) == []


@pytest.mark.django_db(transaction=True)
def test_a_failing_statement_raises_djangos_error_and_leaves_the_connection_usable():
    """hotsql.rows goes straight to psycopg on PostgreSQL: its errors must still arrive as
    Django's, and a failure inside a transaction must still leave it as Django's cursor does."""
    from django.db import DatabaseError, transaction
    from django.db.transaction import TransactionManagementError

    missing = "SELECT * FROM no_such_table WHERE 1 = %s"
    with pytest.raises(DatabaseError):
        hotsql.rows(missing, [0])
    assert hotsql.rows("SELECT 1 + %s", [1]) == [(2,)]
    with transaction.atomic():
        with pytest.raises(DatabaseError), transaction.atomic():
            hotsql.rows(missing, [0])
        assert hotsql.rows("SELECT %s", [3]) == [(3,)]  # the savepoint rolled back
    # A failure that left an atomic block marks the outer one broken: no statement runs.
    with transaction.atomic():
        with contextlib.suppress(DatabaseError), transaction.atomic(savepoint=False):
            hotsql.rows(missing, [0])
        with pytest.raises(TransactionManagementError):
            hotsql.rows("SELECT %s", [4])
    assert hotsql.rows("SELECT %s", [5]) == [(5,)]


@pytest.mark.django_db
def test_the_hot_cursors_timestamps_are_djangos():
    """The hot cursor loads timestamptz with psycopg's compiled loader, not Django's
    (hotsql._load_timestamps_in_c): the same instants with the same tzinfo, whatever the
    offset and precision they were written with."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the hot cursor is PostgreSQL's; this runs in the PostgreSQL pass")
    connection.ensure_connection()
    hot = hotsql._hot_cursor(connection)
    oid = connection.connection.adapters.types["timestamptz"].oid
    assert hot.adapters.get_loader(oid, 0) is not connection.connection.adapters.get_loader(oid, 0)
    texts = [
        "2026-03-29 00:30:00+00",
        "2026-03-29 01:30:00.000001+01",
        "1969-12-31 23:59:59.999999-03:30",
        "0005-01-09 12:00:00+00",
        "9999-12-31 23:59:59+00",
        "2026-10-25 01:30:00+05:45",
    ]
    for text in texts:
        sql = "SELECT %s::timestamptz"
        (fast,) = hot.execute(sql, [text]).fetchone()
        with connection.cursor() as cursor:
            cursor.execute(sql, [text])
            (django,) = cursor.fetchone()
        assert fast == django and fast.tzinfo is django.tzinfo is dt.UTC, text
        assert fast.isoformat() == django.isoformat()
