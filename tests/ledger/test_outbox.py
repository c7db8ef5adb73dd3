import hashlib

import pytest
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction

from ledger import anchoring, events, merkle, note, tasks, verifier
from ledger.keys import log_verifier
from ledger.models import AppendOnlyError, Checkpoint, Entry, Event, LogHead, Node
from portal.records.models import Observation


def test_event_is_written_in_the_callers_transaction(record_observations, hospital_a):
    patient, _ = record_observations(2)
    before = Event.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        events.event_record(
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
    with pytest.raises(events.LedgerInputError):
        events.event_record(
            kind="chart.read", hospital=hospital_a, subject=patient, actor=None, attrs=attrs
        )
    assert Event.objects.count() == count


def test_anchoring_appends_each_event_once_and_cuts_a_signed_checkpoint(record_observations):
    record_observations(5)
    total = Event.objects.count()
    assert anchoring.ledger_anchor_pending() == total
    assert anchoring.ledger_anchor_pending() == 0  # idempotent: nothing is appended twice
    assert Entry.objects.count() == total
    assert not Event.objects.filter(status=Event.PENDING).exists()
    assert list(Entry.objects.order_by("index").values_list("index", flat=True)) == list(
        range(total)
    )
    checkpoint = Checkpoint.objects.get(size=total)
    opened = note.open_checkpoint(checkpoint.note, log_verifier())
    leaves = [bytes(e.leaf) for e in Entry.objects.order_by("index")]
    assert opened.root == merkle.root_from_leaf_hashes([merkle.leaf_hash(x) for x in leaves])
    # Origin, size and root only: no extension lines (a cosignature carries its own time).
    assert opened.extensions == []
    assert checkpoint.note.split("\n\n")[0].count("\n") == 2
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
    anchoring.ledger_anchor_pending(batch_size=4)
    assert Checkpoint.objects.count() == -(-total // 4)
    leaves = [merkle.leaf_hash(bytes(e.leaf)) for e in Entry.objects.order_by("index")]
    for cp in Checkpoint.objects.all():
        assert bytes(cp.root_hash) == merkle.root_from_leaf_hashes(leaves[: cp.size])
    # Every perfect subtree of level >= 1 is stored exactly once.
    assert Node.objects.count() == merkle.perfect_node_count(total) - total


def test_orm_refuses_to_change_the_log(record_observations):
    record_observations(2)
    anchoring.ledger_anchor_pending()
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
    anchoring.ledger_anchor_pending()
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
    anchoring.ledger_anchor_pending()
    with pytest.raises(DatabaseError, match="append-only"), connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table} CASCADE")
    assert Entry.objects.count() == Event.objects.count()


def test_receipt_verifies_with_the_standalone_verifier(record_observations):
    _, observations = record_observations(6)
    anchoring.ledger_anchor_pending()
    from ledger.proofs import receipt_for_event

    event = Event.objects.get(
        subject_type="records.observation", subject_id=str(observations[3].row_uuid)
    )
    receipt = receipt_for_event(event=event)
    result = verifier.verify_receipt(receipt, log_verifier())
    assert result.index == Entry.objects.get(event=event).index
    assert result.size == Entry.objects.count()


def test_proofs_take_a_handful_of_queries(record_observations, django_assert_max_num_queries):
    record_observations(300)
    anchoring.ledger_anchor_pending(batch_size=64)
    from ledger.proofs import consistency_document, receipt_for_event

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
    assert digest_of(obs, hospital_id=obs.hospital_id) == event.digest


# --- a read's event: one INSERT, durable before anything of the read is answered -------


@pytest.mark.django_db(transaction=True)
def test_an_event_outside_a_transaction_is_committed_when_recorded(record_observations):
    patient, _ = record_observations(0)
    before = Event.objects.count()
    event = events.event_record(
        kind="chart.read", hospital=patient.hospital_id, subject=patient, actor=None,
        patient=patient,
    )  # fmt: skip
    assert not connection.in_atomic_block
    # A second connection sees it: committed, not merely written.
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM ledger_event WHERE id = %s", [event.pk])
            assert cursor.fetchone() == (1,)
    finally:
        other.close()
    stored = Event.objects.get(pk=event.pk)
    assert (stored.event_id, stored.kind, stored.patient_id, bytes(stored.leaf)) == (
        event.event_id, "chart.read", patient.pk, event.leaf,
    )  # fmt: skip
    assert Event.objects.count() == before + 1


@pytest.mark.django_db(transaction=True)
def test_an_event_that_fails_raises_writes_nothing_and_leaves_the_connection_usable(
    record_observations,
):
    patient, _ = record_observations(0)
    before = Event.objects.count()
    with pytest.raises(DatabaseError):  # no such hospital: the foreign key fails
        events.event_record(
            kind="chart.read", hospital=10**9, subject=patient, actor=None, patient=patient
        )
    assert not connection.in_atomic_block
    with connection.cursor() as cursor:  # autocommit, outside any atomic block
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert Event.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_events_keep_being_recorded_on_one_connection_with_prepared_statements(
    record_observations,
):
    """Many events on one (pooled, reused) connection, with server-side binding and
    prepared statements on, and after psycopg deallocated every prepared statement (as it
    does after a rollback): no statement name of the ledger's own can collide."""
    patient, _ = record_observations(0)
    options = connection.settings_dict["OPTIONS"]
    saved = dict(options)
    connection.close()
    if connection.vendor == "postgresql":
        options.update(server_side_binding=True, prepare_threshold=0)
    try:
        made = []
        for i in range(6):
            if i == 3 and connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("DEALLOCATE ALL")
            made.append(
                events.event_record(
                    kind="chart.read",
                    hospital=patient.hospital_id,
                    subject=patient,
                    actor=None,
                    patient=patient,
                )
            )
        with transaction.atomic():  # and inside a transaction, on the same connection
            made.append(
                events.event_record(
                    kind="chart.read",
                    hospital=patient.hospital_id,
                    subject=patient,
                    actor=None,
                    patient=patient,
                )
            )
    finally:
        connection.close()
        options.clear()
        options.update(saved)
    assert Event.objects.filter(pk__in=[e.pk for e in made]).count() == 7


def test_one_anchoring_request_per_commit_however_many_events(
    record_observations, hospital_a, monkeypatch, django_capture_on_commit_callbacks
):
    patient, _ = record_observations(0)
    enqueued = []
    monkeypatch.setattr(anchoring, "_last_enqueue", float("-inf"))
    monkeypatch.setattr(tasks.anchor, "apply_async", lambda **kw: enqueued.append(kw))
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            events.event_record(
                kind="chart.read", hospital=hospital_a, subject=patient, actor=None,
                patient=patient,
            )  # fmt: skip
    assert len(enqueued) == 1
