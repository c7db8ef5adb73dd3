"""Writes to the ledger: recording events (outbox) and anchoring them into the log."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from ledger import merkle, note, subjects
from ledger.keys import log_origin, log_signer
from ledger.models import Checkpoint, Entry, Event, LogHead, Node
from ledger.selectors import merkle_nodes_fetch

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
_ATTR_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Attribute values are codes and ids, never free text: nothing here can carry PHI.
_ATTR_VALUE = re.compile(r"^[A-Za-z0-9_.:\-]{0,64}$")
_KIND = re.compile(r"^[a-z][a-z0-9_.\-]{0,63}$")
_DIGEST = re.compile(r"[0-9a-f]{64}")


class LedgerInputError(ValueError):
    """An event was described with something other than ids, codes and digests."""


def _clean_attrs(attrs: dict[str, Any] | None) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in (attrs or {}).items():
        if not _ATTR_KEY.match(key):
            raise LedgerInputError(f"ledger attribute name {key!r} is not allowed")
        if (
            value is None
            or isinstance(value, bool | int)
            or (isinstance(value, str) and _ATTR_VALUE.match(value))
        ):
            clean[key] = value
        else:
            raise LedgerInputError(f"ledger attribute {key!r} must be an id or a code")
    return clean


def canonical_leaf(
    *,
    event_id: uuid.UUID,
    kind: str,
    hospital_id: int | None,
    subject_type: str,
    subject_id: str,
    patient_id: int | None,
    actor_id: int | None,
    recorded_at: datetime,
    digest: str,
    attrs: dict[str, Any],
    actor_hospital_id: int | None = None,
) -> bytes:
    """The bytes a log entry commits to. Computed once, stored, never re-serialized.

    "actor_hospital" (the hospital the actor acted in, for reads: the reader's, while
    "hospital" is the chart's) is present only when set, so every leaf written before it
    existed is still exactly what this function writes for such an event.
    """
    doc = {
        "v": 1,
        "event": str(event_id),
        "kind": kind,
        "hospital": hospital_id,
        "subject": f"{subject_type}:{subject_id}",
        "patient": patient_id,
        "actor": actor_id,
        "time": recorded_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "digest": digest,
        "attrs": attrs,
    }
    if actor_hospital_id is not None:
        doc["actor_hospital"] = actor_hospital_id
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def event_build(
    *,
    kind: str,
    hospital: models.Model | int | None,
    subject: models.Model | tuple[str, str | int],
    actor: AbstractBaseUser | None,
    digest: str | None = None,
    patient: models.Model | int | None = None,
    attrs: dict[str, Any] | None = None,
    actor_hospital: models.Model | int | None = None,
) -> Event:
    """An unsaved outbox event with its canonical leaf bytes (see event_record).

    `hospital` is the hospital the event belongs to (for a read: the chart's);
    `actor_hospital` the one the actor acted in, when that is a fact of the event (for a
    read: the reader's membership, which may be another hospital's)."""
    if not _KIND.match(kind):
        raise LedgerInputError(f"event kind {kind!r} is not a valid code")
    if isinstance(subject, models.Model):
        subject_type, subject_id = subjects.subject_type(subject), subjects.subject_id(subject)
        if digest is None:
            digest = subjects.digest_of(subject)
    else:
        subject_type, subject_id = subject[0], str(subject[1])
    if digest is None or not _DIGEST.fullmatch(digest):
        raise LedgerInputError("digest must be a SHA-256 hex digest")
    hospital_id = None if hospital is None else int(getattr(hospital, "pk", hospital))
    patient_id = None if patient is None else int(getattr(patient, "pk", patient))
    actor_id = actor.pk if actor is not None and actor.is_authenticated else None
    actor_hospital_id = (
        None if actor_hospital is None else int(getattr(actor_hospital, "pk", actor_hospital))
    )
    clean = _clean_attrs(attrs)
    event_id = uuid.uuid4()
    now = timezone.now()
    leaf = canonical_leaf(
        event_id=event_id, kind=kind, hospital_id=hospital_id, subject_type=subject_type,
        subject_id=subject_id, patient_id=patient_id, actor_id=actor_id, recorded_at=now,
        digest=digest, attrs=clean, actor_hospital_id=actor_hospital_id,
    )  # fmt: skip
    # Positional, in the model's field order (id first): about three times cheaper than
    # keyword arguments, on the path of every audited request.
    return Event(
        None, event_id, kind, hospital_id, subject_type, subject_id, patient_id, actor_id,
        actor_hospital_id, now, digest, clean, leaf, Event.PENDING, None,
    )  # fmt: skip


def event_record(**kwargs: Any) -> Event:
    """Insert a pending event inside the caller's transaction (the transactional outbox).

    Takes event_build's keyword arguments. Precondition: called inside the same transaction
    as the change it describes, so the change and its event commit (or roll back) together.
    The anchoring task is enqueued only after commit. Only ids, codes and the SHA-256 digest
    of the subject reach the ledger.
    """
    event = event_build(**kwargs)
    _event_insert(event)
    _schedule_anchor_on_commit()
    return event


@contextmanager
def event_recorded(**kwargs: Any) -> Iterator[Event]:
    """Record an event while the block prepares what the event permits (a read that is
    audited renders its page meanwhile); leaving the block waits until the event is
    committed, and raises if it was not. The caller keeps everything the block prepares
    to itself until then: nothing of the read leaves the server unrecorded.

    Takes event_build's keyword arguments. On PostgreSQL, outside a transaction, the INSERT
    is sent on its own (an autocommitted statement, prepared once per connection) with
    libpq's asynchronous calls, so the server runs it and flushes its commit to disk while
    the block runs; leaving the block reads its result. Django queries made inside the block
    first read that result (an execute wrapper), so they run as usual, after the commit.
    Inside a transaction (the event then commits with it), elsewhere, while queries are
    logged, and inside another such block (whose INSERT its execute wrapper then reads
    first), it is event_record before the block.
    """
    conn = connections[DEFAULT_DB_ALIAS]
    if (
        conn.vendor != "postgresql"
        or conn.in_atomic_block
        or conn.queries_logged
        or conn.execute_wrappers
    ):
        yield event_record(**kwargs)
        return
    event = event_build(**kwargs)
    conn.ensure_connection()
    pending = _PendingInsert(conn, *event_insert_statement(event))
    with conn.wrap_database_errors:
        pending.send()
    try:
        with conn.execute_wrapper(pending.settle_first):
            yield event
    except BaseException:
        # The INSERT was sent and commits whatever the block did; its result is read here
        # too, so the connection is free for the request's later statements (the error
        # page's). The block's exception is the one that leaves.
        with contextlib.suppress(Exception), conn.wrap_database_errors:
            pending.settle()
        raise
    with conn.wrap_database_errors:
        event.pk = pending.settle()
    event._state.adding = False
    event._state.db = conn.alias
    anchor_enqueue()  # committed: what on_commit would do after an autocommitted write


_INSERT_NAME = b"ledger_event_insert"


class _PendingInsert:
    """The outbox INSERT in flight on a PostgreSQL connection, sent with libpq's asynchronous
    calls (psycopg.pq) rather than a cursor.

    Why not a cursor: the cursor waits for the commit (its disk flush, most of a chart read's
    wait), and psycopg's pipeline mode, which does not wait, cost about 0.17 ms of a chart's
    CPU in its machinery for a one-statement exchange (measured under load: about 7% more
    charts per second without it). One statement, autocommitted: it commits as it ends, and
    an error, a deferred foreign key's at commit included, comes back as its result.

    The statement is prepared once per connection under its own name. psycopg deallocates
    every prepared statement of a connection after a rollback (DEALLOCATE ALL): an INSERT
    that finds its statement gone (SQLSTATE 26000, nothing executed) prepares it again and
    runs once more, waiting that time.
    """

    def __init__(self, conn: BaseDatabaseWrapper, sql: str, params: list[Any]) -> None:
        self.conn = conn
        self.raw = conn.connection
        self.sql = _numbered_placeholders(sql).encode()
        self.params = params
        self.values: list[Any] = []
        self.prepared = conn.settings_dict["OPTIONS"].get("prepare_threshold") is not None
        self.result: Any = None
        self.done = False

    def send(self) -> None:
        import psycopg
        from psycopg.adapt import PyFormat, Transformer

        raw, pgconn = self.raw, self.raw.pgconn
        if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raise psycopg.OperationalError("the connection is busy: cannot record the event")
        # The parameters as a cursor would dump them (the connection's adapters), as text.
        self.values = Transformer(raw).dump_sequence(
            self.params, [PyFormat.TEXT] * len(self.params)
        )
        if not self.prepared:
            pgconn.send_query_params(self.sql, self.values)  # e.g. behind a pooler
        else:
            if getattr(self.conn, "_ledger_insert_prepared", None) is not raw:
                self._prepare()
            pgconn.send_query_prepared(_INSERT_NAME, self.values)
        while pgconn.flush():  # the socket is non-blocking: send what is left when writable
            _wait(pgconn.socket, write=True)

    def _prepare(self) -> None:
        _check(self.raw.pgconn.prepare(_INSERT_NAME, self.sql, None), self.raw)
        self.conn._ledger_insert_prepared = self.raw

    def settle(self) -> int:
        """Read the INSERT's result (once): its new id, or its error raised."""
        if not self.done:
            self.done = True
            pgconn = self.raw.pgconn
            while True:
                pgconn.consume_input()
                if not pgconn.is_busy():
                    break
                _wait(pgconn.socket, write=False)
            # Every result up to the end of the statement: its rows may come first and an
            # error after them (a deferred foreign key fails at the implicit commit).
            results = []
            while (result := pgconn.get_result()) is not None:
                results.append(result)
            failed = [r for r in results if r.status == _FATAL_ERROR]
            self.result = failed[0] if failed else (results[0] if results else None)
            if (
                self.prepared
                and self.result is not None
                and self.result.error_field(_SQLSTATE) == b"26000"  # no such statement
            ):
                self._prepare()
                self.result = pgconn.exec_prepared(_INSERT_NAME, self.values)
        _check(self.result, self.raw)
        return int(self.result.get_value(0, 0))

    def settle_first(self, execute, sql, params, many, context):
        """execute_wrapper: a Django query inside the block runs after the INSERT's result."""
        if not self.done:
            with self.conn.wrap_database_errors:
                self.settle()
        return execute(sql, params, many, context)


_SQLSTATE = ord("C")  # libpq's PG_DIAG_SQLSTATE
_FATAL_ERROR = 7  # psycopg.pq.ExecStatus.FATAL_ERROR (psycopg is imported on PostgreSQL only)


def _check(result: Any, raw: Any) -> None:
    import psycopg
    from psycopg import pq

    if result is None or result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        if result is None:
            raise psycopg.OperationalError("the outbox INSERT returned no result")
        raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)


def _wait(fileno: int, *, write: bool) -> None:
    import select

    poller = select.poll()
    poller.register(fileno, select.POLLOUT if write else select.POLLIN)
    poller.poll()


_NUMBERED: dict[str, str] = {}


def _numbered_placeholders(sql: str) -> str:
    """libpq's $1, $2, ... for the %s placeholders of a statement built here (no literal %
    appears in it: its text is names from the model and placeholders)."""
    found = _NUMBERED.get(sql)
    if found is None:
        parts = sql.split("%s")
        found = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
        _NUMBERED[sql] = found
    return found


def event_insert_statement(event: Event) -> tuple[str, list[Any]]:
    """`INSERT ... RETURNING id` of an outbox row, for callers that send it together with the
    row it describes in one statement (PostgreSQL only)."""
    return _event_insert_sql(_event_fields()), _event_params(event)


def _event_fields() -> list[models.Field]:
    return [f for f in Event._meta.concrete_fields if not f.primary_key]


def _event_params(event: Event) -> list[Any]:
    """The INSERT's parameters, prepared as the ORM's insert prepares them (`pre_save`, then
    `get_db_prep_save`), in `_event_fields()` order.

    On PostgreSQL every column but `attrs` is a value psycopg adapts as it is (Django's
    preparation returns it unchanged), so only `attrs` goes through its field; elsewhere
    (SQLite: UUIDs and times become text) every field does.
    """
    conn = connections[DEFAULT_DB_ALIAS]  # not the proxy: it looks the connection up per read
    if conn.vendor != "postgresql":
        return [f.get_db_prep_save(f.pre_save(event, True), conn) for f in _event_fields()]
    return [
        event.event_id, event.kind, event.hospital_id, event.subject_type, event.subject_id,
        event.patient_id, event.actor_id, event.actor_hospital_id, event.recorded_at,
        event.digest,
        _ATTRS_FIELD.get_db_prep_save(event.attrs, conn), event.leaf, event.status,
        event.anchored_at,
    ]  # fmt: skip


_ATTRS_FIELD = Event._meta.get_field("attrs")
# The order _event_params writes on PostgreSQL; checked against the model at import, so a
# field added to Event cannot be silently left out of the fast path.
_EVENT_PARAM_ORDER = (
    "event_id", "kind", "hospital_id", "subject_type", "subject_id", "patient_id", "actor_id",
    "actor_hospital_id", "recorded_at", "digest", "attrs", "leaf", "status", "anchored_at",
)  # fmt: skip
if tuple(f.attname for f in _event_fields()) != _EVENT_PARAM_ORDER:  # pragma: no cover
    raise RuntimeError("ledger.Event's fields changed: update _event_params")


def anchor_after_write() -> None:
    """Enqueue anchoring after a write that recorded events: on commit inside a transaction,
    at once after a single autocommitted statement."""
    if connection.in_atomic_block:
        _schedule_anchor_on_commit()
    else:
        anchor_enqueue()


_EVENT_INSERT_SQL: dict[str, str] = {}


def _event_insert_sql(fields: list[models.Field]) -> str:
    sql = _EVENT_INSERT_SQL.get(connection.vendor)
    if sql is None:
        qn = connection.ops.quote_name
        sql = (
            f"INSERT INTO {qn(Event._meta.db_table)} "  # noqa: S608 - names from the model
            f"({', '.join(qn(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {qn(Event._meta.pk.column)}"
        )
        _EVENT_INSERT_SQL[connection.vendor] = sql
    return sql


def _event_insert(event: Event) -> None:
    """`event.save(force_insert=True)` without compiling the INSERT on every call.

    The outbox insert is on the path of every audited request, and the ORM spent about as
    long building the statement as the database spent running it. Values are prepared
    exactly as the ORM's insert does (see `_event_params`); Event has no signal receivers
    to skip.
    """
    if not connection.features.can_return_columns_from_insert:
        event.save(force_insert=True)
        return
    sql, params = event_insert_statement(event)
    with server_bound_cursor() as cursor:
        cursor.execute(sql, params)
        event.pk = cursor.fetchone()[0]
    event._state.adding = False
    event._state.db = connection.alias


def server_bound_cursor(conn: BaseDatabaseWrapper | None = None):
    """A Django cursor (error translation, query logging, execute wrappers) that, on
    PostgreSQL, binds parameters on the server, so psycopg can keep a hot statement prepared
    per connection (`prepare_threshold` in settings): its planning is then paid once, not on
    every audited request. Django's own cursors bind on the client (the statement's text
    then differs on every call and cannot be prepared). Elsewhere, and while queries are
    logged (DEBUG, tests capturing queries: psycopg keeps no text of a prepared execution to
    log), a plain cursor: the same statement and values, bound on the client."""
    conn = connection if conn is None else conn  # callers on a hot path pass the real one
    if conn.vendor != "postgresql" or conn.queries_logged:
        return conn.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    conn.ensure_connection()
    with conn.wrap_database_errors:
        raw = ServerBindingCursor(conn.connection)
    return conn._prepare_cursor(raw)


def _schedule_anchor_on_commit() -> None:
    # One enqueue per transaction, however many events it records (an import may record
    # thousands). Django drops the callback if the transaction (or savepoint) rolls back.
    pending = getattr(connection, "run_on_commit", [])
    if any(item[1] is anchor_enqueue for item in pending):
        return
    transaction.on_commit(anchor_enqueue)


# Enqueue debounce. A publisher that enqueued less than ENQUEUE_DEBOUNCE seconds ago does not
# enqueue again: the task it enqueued starts after that publish and keeps polling the outbox
# until it has been idle for TASK_IDLE_TAIL seconds (> ENQUEUE_DEBOUNCE), so it is still
# running, and sees the new events, when they commit. This keeps the broker (and its round
# trip) off the path of nearly every write; a lost message is covered by the beat sweeper.
ENQUEUE_DEBOUNCE = 0.25
TASK_IDLE_TAIL = 0.5
TASK_POLL = 0.02
TASK_MAX_SECONDS = 30.0
_last_enqueue = float("-inf")


def anchor_enqueue() -> None:
    """Ask a worker to anchor. Never raises: the outbox row is the source of truth, and the
    beat sweeper re-enqueues anything still pending if the broker is unreachable now."""
    global _last_enqueue
    from ledger.tasks import anchor

    now = time.monotonic()
    if now - _last_enqueue < ENQUEUE_DEBOUNCE:
        return
    try:
        anchor.apply_async(retry=False)
    except Exception as exc:  # broker down: the sweeper will catch up
        logger.warning(
            "ledger: could not enqueue anchoring (%s); sweeper will retry", type(exc).__name__
        )
    else:
        _last_enqueue = now


def pending_exists() -> bool:
    return Event.objects.filter(status=Event.PENDING).exists()


def ledger_anchor_and_linger(
    *,
    idle_tail: float = TASK_IDLE_TAIL,
    poll: float = TASK_POLL,
    max_seconds: float = TASK_MAX_SECONDS,
) -> int:
    """Anchor what is pending, then keep polling until nothing new came for `idle_tail`
    seconds (see ENQUEUE_DEBOUNCE for why), or for at most `max_seconds` in all."""
    started = idle_since = time.monotonic()
    total = ledger_anchor_pending()
    while True:
        now = time.monotonic()
        if now - idle_since >= idle_tail or now - started >= max_seconds:
            break
        time.sleep(poll)
        if pending_exists():
            anchored = ledger_anchor_pending()
            if anchored:
                total += anchored
                idle_since = time.monotonic()
    return total


def _lock_head() -> LogHead:
    # The head row lock serializes appenders across workers: the log never forks.
    head = LogHead.objects.select_for_update().filter(pk=1).first()
    if head is None:  # a database flushed after migrating (tests) has no head row yet
        LogHead.objects.get_or_create(pk=1)
        head = LogHead.objects.select_for_update().get(pk=1)
    return head


def _hash_batch(
    size: int, chain: bytes, leaves: list[bytes]
) -> tuple[list[bytes], list[bytes], merkle.MerkleAccumulator, list[tuple[int, int, bytes]]]:
    """Leaf hashes, chain hashes, the extended tree and its new level >= 1 nodes."""
    acc = merkle.MerkleAccumulator.from_frontier(
        size, merkle_nodes_fetch(merkle.frontier_ids(size))
    )
    sha = hashlib.sha256
    leaf_hashes = [sha(b"\x00" + leaf).digest() for leaf in leaves]
    chains: list[bytes] = []
    push = chains.append
    for lh in leaf_hashes:
        chain = sha(chain + lh).digest()
        push(chain)
    nodes = [node for node in acc.iter_extend_with_nodes(leaf_hashes) if node[0] > 0]
    return leaf_hashes, chains, acc, nodes


def _anchor_batch(batch_size: int, after_id: int = 0) -> tuple[int, int]:
    """Anchor up to `batch_size` pending events with id > `after_id`, in id order; returns
    how many and the highest id taken."""
    if connection.vendor == "postgresql":
        return _anchor_batch_postgresql(batch_size, after_id)
    return _anchor_batch_orm(batch_size, after_id)


def _anchor_batch_postgresql(batch_size: int, after_id: int) -> tuple[int, int]:
    """The same transaction as `_anchor_batch_orm` in four statements and two COPYs: the
    ORM's bulk_create spends most of a batch building and parsing one huge INSERT."""
    with transaction.atomic():
        head = _lock_head()
        now = timezone.now()
        with connection.cursor() as cursor:
            # Claim and read the batch in one statement. Safe because the head lock is held:
            # no other appender can be claiming the same rows, and a rollback un-claims them.
            cursor.execute(
                "UPDATE ledger_event SET status = %s, anchored_at = %s WHERE id IN ("
                " SELECT id FROM ledger_event WHERE status = %s AND id > %s ORDER BY id LIMIT %s"
                ") RETURNING id, leaf",
                [Event.ANCHORED, now, Event.PENDING, after_id, batch_size],
            )
            rows = sorted(cursor.fetchall())  # RETURNING has no order; the log is by id
            if not rows:
                return 0, after_id
            size = head.size
            leaves = [bytes(leaf) for _, leaf in rows]
            leaf_hashes, chains, acc, nodes = _hash_batch(size, bytes(head.chain_hash), leaves)
            raw = cursor.cursor  # psycopg's own cursor, for COPY
            with raw.copy(
                'COPY ledger_entry ("index", event_id, leaf, leaf_hash, chain_hash, created_at) '
                "FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "int8", "bytea", "bytea", "bytea", "timestamptz"])
                write = copy.write_row
                for offset, (event_pk, _) in enumerate(rows):
                    write(
                        (size + offset, event_pk, leaves[offset], leaf_hashes[offset],
                         chains[offset], now)
                    )  # fmt: skip
            if nodes:
                with raw.copy(
                    'COPY ledger_node (level, "index", hash) FROM STDIN (FORMAT BINARY)'
                ) as copy:
                    copy.set_types(["int2", "int8", "bytea"])
                    for node in nodes:
                        copy.write_row(node)
            checkpoint_cut(size=acc.size, root=acc.root(), now=now)
            cursor.execute(
                "UPDATE ledger_loghead SET size = %s, chain_hash = %s, updated_at = %s "
                "WHERE id = 1",
                [acc.size, chains[-1], now],
            )
        return len(rows), rows[-1][0]


def _anchor_batch_orm(batch_size: int, after_id: int) -> tuple[int, int]:
    """Portable path (SQLite, the demo database)."""
    with transaction.atomic():
        head = _lock_head()
        rows = list(
            Event.objects.filter(status=Event.PENDING, id__gt=after_id)
            .order_by("id")
            .values_list("id", "leaf")[:batch_size]
        )
        if not rows:
            return 0, after_id
        size = head.size
        leaves = [bytes(leaf) for _, leaf in rows]
        leaf_hashes, chains, acc, nodes = _hash_batch(size, bytes(head.chain_hash), leaves)
        Entry.objects.bulk_create(
            [
                Entry(
                    index=size + offset,
                    event_id=event_pk,
                    leaf=leaves[offset],
                    leaf_hash=leaf_hashes[offset],
                    chain_hash=chains[offset],
                )
                for offset, (event_pk, _) in enumerate(rows)
            ],
            batch_size=batch_size,
        )
        Node.objects.bulk_create(
            [Node(level=level, index=index, hash=h) for level, index, h in nodes],
            batch_size=batch_size,
        )
        now = timezone.now()
        # Re-delivered messages are harmless: these rows are no longer pending afterwards,
        # and the head lock means no other worker took them meanwhile.
        Event.objects.filter(id__in=[r[0] for r in rows]).update(
            status=Event.ANCHORED, anchored_at=now
        )
        checkpoint_cut(size=acc.size, root=acc.root(), now=now)
        head.size = acc.size
        head.chain_hash = chains[-1]
        head.save(update_fields=["size", "chain_hash", "updated_at"])
        return len(rows), rows[-1][0]


def checkpoint_cut(*, size: int, root: bytes, now: datetime) -> Checkpoint:
    body = note.Checkpoint(
        origin=log_origin(),
        size=size,
        root=root,
        extensions=[f"time {now.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"],
    )
    signed = note.sign_checkpoint(body, log_signer())
    return Checkpoint.objects.create(size=size, root_hash=root, note=signed, created_at=now)


def ledger_anchor_pending(*, batch_size: int = BATCH_SIZE, max_batches: int | None = None) -> int:
    """Anchor pending events in batches until none is left; returns how many were anchored."""
    total = 0
    batches = 0
    # Within one call each batch resumes after the last id taken: the partial index on
    # pending ids keeps the claimed rows' entries until vacuum, and rescanning them from
    # the start made every batch of a large backlog slower than the one before. An event
    # with a lower id that commits meanwhile is left for the next call, as one committing
    # just after the last batch is: its commit enqueues a task, and the sweeper backs that up.
    after_id = 0
    while max_batches is None or batches < max_batches:
        n, after_id = _anchor_batch(batch_size, after_id)
        total += n
        batches += 1
        if n < batch_size:
            break
    return total


def pending_count() -> int:
    return Event.objects.filter(status=Event.PENDING).count()
