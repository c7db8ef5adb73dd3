import hashlib

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction

from ledger import merkle, note, services, verifier
from ledger.keys import log_verifier
from ledger.models import AppendOnlyError, Checkpoint, Entry, Event, LogHead, Node
from portal.records.models import Observation


def test_event_is_written_in_the_callers_transaction(record_observations, hospital_a):
    patient, _ = record_observations(2)
    before = Event.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.event_record(
            kind="chart.read", hospital=hospital_a, subject=patient, actor=None, patient=patient
        )
        raise RuntimeError("the change fails")
    assert Event.objects.count() == before
    assert Event.objects.filter(status=Event.PENDING).count() == before


def test_events_hold_ids_and_digests_only(record_observations):
    patient, observations = record_observations(3)
    for event in Event.objects.all():
        leaf = bytes(event.leaf)
        for phi in (b"Ada", b"Lovelace", b"1980-01-02", patient.mrn.encode(), b"Heart rate"):
            assert phi not in leaf
        assert len(event.digest) == 64
    obs_event = Event.objects.get(
        subject_type="records.observation", subject_id=str(observations[0].row_uuid)
    )
    assert obs_event.patient_id == patient.pk
    assert obs_event.attrs == {}  # not even the LOINC code: it says what was tested


@pytest.mark.parametrize(
    "attrs",
    [{"note": "Patient is anxious about results"}, {"Bad Key": "x"}, {"x": 1.5}, {"x": ["a"]}],
)
def test_free_text_never_reaches_the_ledger(record_observations, hospital_a, attrs):
    patient, _ = record_observations(0)
    count = Event.objects.count()
    with pytest.raises(services.LedgerInputError):
        services.event_record(
            kind="chart.read", hospital=hospital_a, subject=patient, actor=None, attrs=attrs
        )
    assert Event.objects.count() == count


def test_anchoring_appends_each_event_once_and_cuts_a_signed_checkpoint(record_observations):
    record_observations(5)
    total = Event.objects.count()
    assert services.ledger_anchor_pending() == total
    assert services.ledger_anchor_pending() == 0  # idempotent: nothing is appended twice
    assert Entry.objects.count() == total
    assert not Event.objects.filter(status=Event.PENDING).exists()
    assert list(Entry.objects.order_by("index").values_list("index", flat=True)) == list(
        range(total)
    )
    checkpoint = Checkpoint.objects.get(size=total)
    opened = note.open_checkpoint(checkpoint.note, log_verifier())
    leaves = [bytes(e.leaf) for e in Entry.objects.order_by("index")]
    assert opened.root == merkle.root_from_leaf_hashes([merkle.leaf_hash(x) for x in leaves])
    assert opened.extensions[0].startswith("time ")
    # Hash chain: each entry commits to the previous one.
    prev = bytes(32)
    for entry in Entry.objects.order_by("index"):
        prev = hashlib.sha256(prev + merkle.leaf_hash(bytes(entry.leaf))).digest()
        assert bytes(entry.chain_hash) == prev
    head = LogHead.objects.get(pk=1)
    assert head.size == total and bytes(head.chain_hash) == prev


def test_batches_continue_the_same_tree(record_observations):
    record_observations(9)
    total = Event.objects.count()
    services.ledger_anchor_pending(batch_size=4)
    assert Checkpoint.objects.count() == -(-total // 4)
    leaves = [merkle.leaf_hash(bytes(e.leaf)) for e in Entry.objects.order_by("index")]
    for cp in Checkpoint.objects.all():
        assert bytes(cp.root_hash) == merkle.root_from_leaf_hashes(leaves[: cp.size])
    # Every perfect subtree of level >= 1 is stored exactly once.
    assert Node.objects.count() == merkle.perfect_node_count(total) - total


def test_orm_refuses_to_change_the_log(record_observations):
    record_observations(2)
    services.ledger_anchor_pending()
    entry = Entry.objects.first()
    entry.leaf = b"forged"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        Entry.objects.filter(index=0).update(leaf=b"x")
    with pytest.raises(AppendOnlyError):
        Checkpoint.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        Node.objects.all().delete()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_entry SET leaf = 'x'",
        "DELETE FROM ledger_entry",
        "UPDATE ledger_checkpoint SET note = 'x'",
        "DELETE FROM ledger_node",
        "UPDATE ledger_node SET hash = 'x'",
    ],
)
def test_postgres_triggers_refuse_update_and_delete(record_observations, sql):
    if connection.vendor != "postgresql":
        pytest.skip("database triggers are PostgreSQL's; this runs in the PostgreSQL pass")
    record_observations(3)
    services.ledger_anchor_pending()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert Entry.objects.count() == Event.objects.count()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("table", ["ledger_entry", "ledger_node", "ledger_checkpoint"])
def test_postgres_triggers_refuse_truncate(record_observations, table):
    # Committed data (a transactional test): TRUNCATE is then refused by the trigger itself.
    if connection.vendor != "postgresql":
        pytest.skip("database triggers are PostgreSQL's; this runs in the PostgreSQL pass")
    record_observations(3)
    services.ledger_anchor_pending()
    with pytest.raises(DatabaseError, match="append-only"), connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table} CASCADE")
    assert Entry.objects.count() == Event.objects.count()


def test_receipt_verifies_with_the_standalone_verifier(record_observations):
    _, observations = record_observations(6)
    services.ledger_anchor_pending()
    from ledger.selectors import receipt_for_event

    event = Event.objects.get(
        subject_type="records.observation", subject_id=str(observations[3].row_uuid)
    )
    receipt = receipt_for_event(event=event)
    result = verifier.verify_receipt(receipt, log_verifier())
    assert result.index == Entry.objects.get(event=event).index
    assert result.size == Entry.objects.count()


def test_proofs_take_a_handful_of_queries(record_observations, django_assert_max_num_queries):
    record_observations(300)
    services.ledger_anchor_pending(batch_size=64)
    from ledger.selectors import consistency_document, receipt_for_event

    event = Event.objects.order_by("id")[137]
    with django_assert_max_num_queries(4):
        receipt = receipt_for_event(event=event)
    assert verifier.verify_receipt(receipt, log_verifier()).index == 137
    sizes = sorted(Checkpoint.objects.values_list("size", flat=True))
    with django_assert_max_num_queries(4):
        doc = consistency_document(old_size=sizes[1], new_size=sizes[-1])
    verifier.verify_consistency_file(doc, log_verifier(), None, None)


def test_live_subject_digest_matches_the_anchored_one(record_observations):
    _, observations = record_observations(1)
    from ledger.subjects import digest_of

    obs = Observation._base_manager.get(pk=observations[0].pk)  # as read back from the database
    event = Event.objects.get(subject_type="records.observation", subject_id=str(obs.row_uuid))
    assert digest_of(obs) == event.digest


# --- event_recorded: the event commits while the block runs -----------------------------


def _pipelined() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("pipeline mode is PostgreSQL's; this runs in the PostgreSQL pass")


@pytest.mark.django_db(transaction=True)
def test_event_recorded_is_committed_when_its_block_ends(record_observations, hospital_a):
    _pipelined()
    patient, _ = record_observations(0)
    before = Event.objects.count()
    with services.event_recorded(
        kind="chart.read", hospital=hospital_a, subject=patient, actor=None, patient=patient
    ) as event:
        # the fast path: the INSERT is in flight (sent, its result not read yet)
        assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.ACTIVE
        inside = "rendered"
    assert inside == "rendered"
    assert event.pk is not None and not event._state.adding
    stored = Event.objects.get(pk=event.pk)  # committed: visible to a second connection too
    assert (stored.event_id, stored.kind, stored.patient_id) == (
        event.event_id, "chart.read", patient.pk,
    )  # fmt: skip
    assert bytes(stored.leaf) == event.leaf
    assert Event.objects.count() == before + 1


@pytest.mark.django_db(transaction=True)
def test_event_recorded_that_fails_raises_at_the_end_and_writes_nothing(record_observations):
    """The block has run (the page was rendered), but nothing may leave: the error surfaces
    when the block ends, and the connection works afterwards."""
    _pipelined()
    patient, _ = record_observations(0)
    before = Event.objects.count()
    ran = []
    with (
        pytest.raises(DatabaseError),  # no such hospital: the foreign key fails at the commit
        services.event_recorded(
            kind="chart.read", hospital=10**9, subject=patient, actor=None, patient=patient
        ),
    ):
        ran.append(True)
    assert ran == [True]
    assert Event.objects.count() == before
    assert not connection.in_atomic_block
    with transaction.atomic():  # the connection is usable, and in autocommit mode again
        assert Event.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_event_recorded_whose_insert_fails_leaves_the_connection_usable(record_observations):
    """An error in the INSERT itself is
    raised at the block's end, writes nothing, and leaves no aborted transaction behind:
    the request's later statements (its session's save) still run."""
    _pipelined()
    patient, _ = record_observations(0)
    before = Event.objects.count()
    with (
        pytest.raises(DatabaseError),  # bigint out of range, in the INSERT itself
        services.event_recorded(
            kind="chart.read",
            hospital=patient.hospital_id,
            subject=patient,
            actor=None,
            patient=2**63,
        ),  # fmt: skip
    ):
        pass
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with connection.cursor() as cursor:  # autocommit, outside any atomic block
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert Event.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_event_recorded_commits_even_when_the_block_fails(record_observations, hospital_a):
    _pipelined()
    patient, _ = record_observations(0)
    before = Event.objects.count()
    with (
        pytest.raises(RuntimeError),
        services.event_recorded(
            kind="chart.read", hospital=hospital_a, subject=patient, actor=None, patient=patient
        ),
    ):
        raise RuntimeError("the template failed")
    assert Event.objects.count() == before + 1  # the read was attempted: it stays recorded


def test_event_recorded_inside_a_transaction_is_part_of_it(record_observations, hospital_a):
    patient, _ = record_observations(0)
    before = Event.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        with services.event_recorded(
            kind="chart.read", hospital=hospital_a, subject=patient, actor=None, patient=patient
        ) as event:
            assert event.pk is not None  # written before the block, in the transaction
        raise RuntimeError("the change fails")
    assert Event.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_a_query_inside_the_block_runs_after_the_event_is_committed(
    record_observations, hospital_a
):
    """A Django query made while the INSERT is in flight first reads its result (the
    connection carries one statement at a time), then runs as usual."""
    _pipelined()
    patient, _ = record_observations(0)
    before = Event.objects.count()
    with services.event_recorded(
        kind="chart.read", hospital=hospital_a, subject=patient, actor=None, patient=patient
    ) as event:
        assert Event.objects.count() == before + 1  # committed before this query ran
        assert Event.objects.filter(event_id=event.event_id).exists()
    assert event.pk == Event.objects.get(event_id=event.event_id).pk


@pytest.mark.django_db(transaction=True)
def test_event_recorded_after_psycopg_deallocated_every_statement(record_observations, hospital_a):
    """psycopg sends DEALLOCATE ALL after a rollback on a connection where it prepared
    statements: the event's statement is prepared again and the event still recorded."""
    _pipelined()
    patient, _ = record_observations(0)
    kwargs = {"kind": "chart.read", "hospital": hospital_a, "subject": patient, "actor": None}
    with services.event_recorded(**kwargs, patient=patient):
        pass
    connection.connection.execute("DEALLOCATE ALL")
    with services.event_recorded(**kwargs, patient=patient) as event:
        pass
    assert Event.objects.filter(pk=event.pk, event_id=event.event_id).exists()


@pytest.mark.django_db(transaction=True)
def test_event_recorded_without_prepared_statements(record_observations, hospital_a, settings):
    """Behind a pooler that cannot carry prepared statements (DB_PREPARE_THRESHOLD empty)."""
    _pipelined()
    patient, _ = record_observations(0)
    options = connection.settings_dict["OPTIONS"]
    saved = options.get("prepare_threshold")
    options["prepare_threshold"] = None
    try:
        with services.event_recorded(
            kind="chart.read", hospital=hospital_a, subject=patient, actor=None, patient=patient
        ) as event:
            pass
    finally:
        options["prepare_threshold"] = saved
    assert Event.objects.filter(pk=event.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_hot_statements_and_a_nested_event_inside_the_block(record_observations, hospital_a):
    """What else may use the connection while the INSERT is in flight: a hot statement
    (portal.hotsql, which otherwise goes straight to psycopg) and a second audited read
    both wait for the first event's result, and both events are committed."""
    from portal import hotsql

    _pipelined()
    patient, _ = record_observations(0)
    before = Event.objects.count()
    kwargs = {"kind": "chart.read", "hospital": hospital_a, "subject": patient, "actor": None}
    with services.event_recorded(**kwargs, patient=patient) as outer:
        assert hotsql.rows("SELECT count(*) FROM ledger_event WHERE 1 = %s", [1]) == [(before + 1,)]
        with services.event_recorded(**kwargs, patient=patient) as inner:
            pass
    assert Event.objects.filter(pk__in=[outer.pk, inner.pk]).count() == 2
    assert Event.objects.count() == before + 2
