"""An insider with the database (direct SQL, no application code) cannot change what the
patient and the auditors are shown: each change of an event's facts is refused by the
database, and, done past its triggers, named by verify_ledger and "not verified" on the
patient's Verify page. Runs on both passes (both databases have the triggers)."""

from __future__ import annotations

import json
import re
from uuid import uuid4

import pytest
from django.db import DatabaseError, connection, transaction

from consent import selectors as consent_selectors
from ledger import anchoring, events
from ledger.models import AppendOnlyError, Entry, Event
from ledger.verification import Report, ledger_verify, verify_subjects
from tests.tamper import tamper

BREAK_GLASS_OFF = json.dumps({"break_glass": False, "purpose": "TREAT", "via": "staff"})


def _forge_actor_and_purpose(actor_id: int) -> str:
    """The forged audit trail of the issue: another clinician, an ordinary treatment read."""
    merge = "attrs || %s::jsonb" if connection.vendor == "postgresql" else "json_patch(attrs, %s)"
    return f"UPDATE ledger_event SET actor_id = {int(actor_id)}, attrs = {merge} WHERE id = %s"


@pytest.fixture
def glass(client, sign_in, consent_world):
    """A break-glass opening and read by Riverside's clinician, an ordinary read by St
    Mary's, all anchored."""
    w = consent_world
    sign_in(client, w["clinician_b"])
    details = {"hospital": w["a"].pk, "mrn": "SM-100", "birth_date": "1970-02-03"}
    client.post("/provider/break-glass/", {**details, "reason": "Unconscious, no ID"})
    assert client.get(f"/provider/patients/{w['patient'].pk}/").status_code == 200
    sign_in(client, w["clinician_a"])
    assert client.get(f"/provider/patients/{w['patient'].pk}/").status_code == 200
    anchoring.ledger_anchor_pending()
    read = Event.objects.get(kind="chart.read", actor=w["clinician_b"])
    opened = Event.objects.get(kind="breakglass.opened")
    assert read.attrs["break_glass"] is True
    return {**w, "read": read, "opened": opened}


def _attacks(g) -> list[tuple[str, str, tuple, list[str]]]:
    """(name, SQL, params, what verify_ledger must name) for each class of the issue."""
    read, opened = g["read"], g["opened"]
    return [
        (
            "forged actor and purpose",
            _forge_actor_and_purpose(g["clinician_a"].pk),
            (BREAK_GLASS_OFF, read.pk),
            ["actor", "attributes (break_glass, purpose, via)"],
        ),
        (
            "read removed from the patient's log",
            "UPDATE ledger_event SET patient_id = NULL WHERE id = %s",
            (read.pk,),
            ["patient"],
        ),
        (
            "break-glass relabelled",
            "UPDATE ledger_event SET kind = 'chart.read' WHERE id = %s",
            (opened.pk,),
            ["kind"],
        ),
    ]


ATTACKS = [
    "forged actor and purpose",
    "read removed from the patient's log",
    "break-glass relabelled",
]


def _attack(g, name):
    return next(a for a in _attacks(g) if a[0] == name)


def _findings() -> list[str]:
    return [str(f) for f in ledger_verify().findings]


def test_an_anchored_world_is_intact_and_verified(client, sign_in, glass):
    assert _findings() == []
    sign_in(client, glass["account"])
    page = client.get(f"/patient/access/{glass['read'].event_id}/verify/").content.decode()
    assert "Verified: entry" in page and "states each fact below" in page
    assert re.search(r"<dt>Who</dt><dd>Rui Costa(, Clinician)?</dd>", page)
    assert "<dt>Break-glass</dt><dd>Yes</dd>" in page
    assert "<dt>Purpose</dt><dd>Emergency treatment</dd>" in page


@pytest.mark.parametrize("name", ATTACKS)
def test_each_change_of_an_events_facts_is_refused_by_the_database(glass, name):
    _, sql, params, _ = _attack(glass, name)
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)
    assert _findings() == []


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM ledger_event WHERE id = %s",
        "UPDATE ledger_event SET status = 0 WHERE id = %s",  # back to pending
        "UPDATE ledger_event SET anchored_at = NULL WHERE id = %s",
        "UPDATE ledger_event SET leaf = leaf WHERE id = %s AND 1 = 0",  # no row: allowed
    ],
)
def test_delete_and_unanchoring_are_refused_by_the_database(glass, sql):
    if "1 = 0" in sql:
        with connection.cursor() as cursor:
            cursor.execute(sql, (glass["read"].pk,))
        return
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, (glass["read"].pk,))


def test_the_orm_refuses_facts_but_lets_anchoring_mark_an_event(glass):
    read = glass["read"]
    with pytest.raises(AppendOnlyError):
        Event.objects.filter(pk=read.pk).update(actor=glass["clinician_a"])
    with pytest.raises(AppendOnlyError):
        Event.objects.filter(pk=read.pk).delete()
    read.kind = "chart.read"
    with pytest.raises(AppendOnlyError):
        read.save()
    with pytest.raises(AppendOnlyError):
        read.delete()
    # Anchoring's own columns (an unchanged value here: the database refuses going back).
    assert Event.objects.filter(pk=read.pk).update(status=Event.ANCHORED) == 1


@pytest.mark.parametrize("name", ATTACKS)
def test_each_change_past_the_triggers_is_named_and_not_verified(client, sign_in, glass, name):
    _, sql, params, named = _attack(glass, name)
    event_pk = params[-1]
    event = Event.objects.get(pk=event_pk)
    index = Entry.objects.get(event=event).index
    tamper(sql, params)
    findings = _findings()
    expected = (
        f"event {event.event_id}: {', '.join(named)} in the database differ from its anchored "
        f"leaf (entry {index}) (changed behind the application's back)"
    )
    # Relabelling a break-glass opening as a read also leaves its row with no event that
    # vouches for it (reads vouch for nothing): the coverage pass names that too.
    assert [f for f in findings if f.startswith("event ")] == [expected]
    assert all(f.startswith(("event ", "subject consent.breakglass ")) for f in findings)
    # The patient's Verify checks the facts it shows against the signed entry.
    event.refresh_from_db()
    result = consent_selectors.event_verify(event=event, patients=[glass["patient"]])
    assert not result.ok and result.message.startswith("NOT verified"), result.message
    sign_in(client, glass["account"])
    page = client.get(f"/patient/access/{event.event_id}/verify/")
    if event.patient_id is None:
        # The read is no longer the patient's to see; verify_ledger named it above.
        assert page.status_code == 404
    else:
        assert page.status_code == 200 and b"NOT verified" in page.content
        assert b"Verified: entry" not in page.content


def test_a_deleted_event_is_named(glass):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no replication role to delete past the foreign key")
    entry = Entry.objects.get(event=glass["read"])
    tamper("CREATE TEMP TABLE gone AS SELECT * FROM ledger_event WHERE id = %s", (entry.event_id,))
    tamper("DELETE FROM ledger_event WHERE id = %s", (entry.event_id,))
    findings = _findings()
    # Put it back, so the test's end can check the foreign keys.
    tamper("INSERT INTO ledger_event SELECT * FROM gone")
    assert (
        f"entry {entry.index}: has no outbox event (inserted into the log, or its event deleted)"
        in findings
    )


def test_a_pending_events_changed_facts_are_named(glass):
    pending = events.event_record(
        kind="chart.read", hospital=glass["a"], subject=glass["patient"],
        actor=glass["clinician_a"], patient=glass["patient"], attrs={"purpose": "TREAT"},
    )  # fmt: skip
    tamper("UPDATE ledger_event SET actor_id = NULL WHERE id = %s", (pending.pk,))
    assert _findings() == [
        f"event {pending.event_id}: actor in the database differ from its recorded leaf "
        "(changed behind the application's back)"
    ]


def test_subject_ids_that_name_no_row_are_findings_not_exceptions(glass):
    """The bench's events named patients by integer ids where the key is a UUID: the subject
    pass raised `"1" is not a valid UUID`. Each is now a finding naming its entry."""
    digest = "0" * 64
    for subject in [("records.patient", "1"), ("records.patient", "not-a-uuid")]:
        events.event_record(
            kind="patient.restricted",
            hospital=glass["a"],
            subject=subject,
            actor=None,
            digest=digest,
        )
    anchoring.ledger_anchor_pending()
    indexes = dict(
        Entry.objects.filter(
            event__subject_type="records.patient", event__digest=digest
        ).values_list("event__subject_id", "index")
    )
    report = Report()
    verify_subjects(report)
    found = {str(f) for f in report.findings}
    for subject_id in ("1", "not-a-uuid"):
        assert (
            f"subject records.patient {subject_id}: entry {indexes[subject_id]} names a subject "
            "id that cannot be a records.patient key"
        ) in found


def test_a_leaf_that_cannot_be_parsed_is_a_finding(glass):
    entry = Entry.objects.get(event=glass["read"])
    q = connection.ops.quote_name("index")
    tamper(f"UPDATE ledger_entry SET leaf = %s WHERE {q} = %s", (b"\xff not json", entry.index))
    tamper("UPDATE ledger_event SET leaf = %s WHERE id = %s", (b"\xff not json", glass["read"].pk))
    findings = _findings()
    assert f"entry {entry.index}: leaf cannot be read (names no subject and digest)" in findings
    assert (
        f"event {glass['read'].event_id}: its anchored leaf (entry {entry.index}) cannot be "
        "read: the leaf is not JSON"
    ) in findings


def test_the_databases_prefilter_picks_exactly_the_changed_events(glass):
    """On PostgreSQL the database picks the events to compare (a million leaves are not
    parsed in Python); an intact event, with attributes of every type, is never picked."""
    from ledger.verification import _fact_candidates

    if connection.vendor != "postgresql":
        assert _fact_candidates() is None
        return
    assert Event.objects.filter(attrs__break_glass=True).exists()
    assert _fact_candidates() == []
    _, sql, params, _ = _attack(glass, "forged actor and purpose")
    tamper(sql, params)
    tamper("UPDATE ledger_event SET recorded_at = recorded_at + interval '1 microsecond' "
           "WHERE id = %s", (glass["opened"].pk,))  # fmt: skip
    assert _fact_candidates() == sorted([glass["read"].pk, glass["opened"].pk])


@pytest.mark.parametrize(
    ("sql", "fact"),
    [
        ("UPDATE ledger_event SET event_id = %s WHERE id = %s", "event id"),
        ("UPDATE ledger_event SET hospital_id = NULL WHERE id = %s", "hospital"),
        ("UPDATE ledger_event SET actor_hospital_id = NULL WHERE id = %s", "actor's hospital"),
        ("UPDATE ledger_event SET subject_id = 'x' WHERE id = %s", "subject"),
        ("UPDATE ledger_event SET digest = %s WHERE id = %s", "digest"),
        ("UPDATE ledger_event SET attrs = %s WHERE id = %s", "attributes (break_glass)"),
    ],
)
def test_every_fact_column_is_compared(glass, sql, fact):
    from ledger.verification import _fact_candidates

    read = glass["read"]
    params: tuple = (read.pk,)
    if "event_id" in sql:
        params = (Event._meta.get_field("event_id").get_db_prep_value(uuid4(), connection), read.pk)
    elif "digest" in sql:
        params = ("f" * 64, read.pk)
    elif "attrs" in sql:  # 1 is not true: the leaf's type is a fact too
        params = (json.dumps({**read.attrs, "break_glass": 1}), read.pk)
    tamper(sql, params)
    if connection.vendor == "postgresql":
        assert _fact_candidates() == [read.pk]
    (finding,) = [f for f in _findings() if f.startswith("event ")]
    assert f": {fact} in the database differ from its anchored leaf" in finding


def test_columns_rewritten_with_their_outbox_leaf_are_named_against_the_entry(
    client, sign_in, glass
):
    """The forged trail with the event's own copy of the leaf rewritten to match: the entry's
    leaf (the one the log proves) still names who read, and why."""
    read, forger = glass["read"], glass["clinician_a"]
    attrs = {**read.attrs, "break_glass": False, "purpose": "TREAT", "via": "staff"}
    leaf = events.canonical_leaf(
        event_id=read.event_id, kind=read.kind, hospital_id=read.hospital_id,
        subject_type=read.subject_type, subject_id=read.subject_id, patient_id=read.patient_id,
        actor_id=forger.pk, recorded_at=read.recorded_at, digest=read.digest, attrs=attrs,
        actor_hospital_id=read.actor_hospital_id,
    )  # fmt: skip
    tamper(
        "UPDATE ledger_event SET actor_id = %s, attrs = %s, leaf = %s WHERE id = %s",
        (forger.pk, json.dumps(attrs), leaf, read.pk),
    )
    index = Entry.objects.get(event=read).index
    assert sorted(_findings()) == [
        f"entry {index}: leaf bytes differ from its recorded event",
        f"event {read.event_id}: actor, attributes (break_glass, purpose, via) in the database "
        f"differ from its anchored leaf (entry {index}) (changed behind the application's back)",
    ]
    sign_in(client, glass["account"])
    page = client.get(f"/patient/access/{read.event_id}/verify/")
    assert b"NOT verified" in page.content and b"Verified: entry" not in page.content
