"""Anchoring: pending outbox events become log entries, Merkle nodes and a signed checkpoint.

`anchor_after_commit` asks a worker to anchor once the caller's transaction commits;
`ledger_anchor_pending` (the worker's body, through `ledger.tasks.anchor`) appends pending
events in batches under the log head's row lock, so the log never forks, and each batch is
one transaction: claimed rows, entries, nodes, checkpoint and head commit together.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from ledger import merkle, note
from ledger.keys import log_origin, log_signer
from ledger.models import Checkpoint, Entry, Event, LogHead, Node
from ledger.proofs import merkle_nodes_fetch
from ledger.publication import publication_enqueue

logger = logging.getLogger(__name__)

BATCH_SIZE = 2000  # events per transaction under a backlog (each cuts one checkpoint)
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for lock_timeout

# Enqueue debounce. A publisher that enqueued less than ENQUEUE_DEBOUNCE seconds ago does not
# enqueue again: the task it enqueued starts after that publish and keeps polling the outbox
# until it has been idle for TASK_IDLE_TAIL seconds (> ENQUEUE_DEBOUNCE), so it is still
# running, and sees the new events, when they commit. This keeps the broker (and its round
# trip) off the path of nearly every write; a lost message is covered by the beat sweeper.
ENQUEUE_DEBOUNCE = 0.25
TASK_IDLE_TAIL = 0.5
TASK_POLL = 0.02
TASK_MAX_SECONDS = 30.0
# After a failed publish (the broker is down), publishers wait this long before trying again;
# meanwhile the beat sweeper enqueues what is pending once the broker is back.
ENQUEUE_FAILED_PAUSE = 5.0
_last_enqueue = float("-inf")


def anchor_after_commit() -> None:
    """Enqueue anchoring once the current transaction commits (at once outside one).

    Called for every event: a transaction that records thousands (an import) queues as many
    callbacks, and all but the first return at once (the debounce in `anchor_enqueue`).
    Django drops the callbacks of a transaction or savepoint that rolls back, which is why
    they are not deduplicated with a flag: nothing public says a flag's callback was dropped.
    """
    transaction.on_commit(anchor_enqueue)


def anchor_enqueue() -> None:
    """Ask a worker to anchor. Never raises: the outbox row is the source of truth, and the
    beat sweeper re-enqueues anything still pending if the broker is unreachable now."""
    global _last_enqueue
    from ledger.tasks import anchor

    if time.monotonic() - _last_enqueue < ENQUEUE_DEBOUNCE:
        return
    try:
        anchor.apply_async(retry=False)
    except Exception as exc:  # broker down: the sweeper will catch up
        # Not again for a while: the callbacks of one large transaction, and the next
        # writes, must not each wait for a connection to fail.
        _last_enqueue = time.monotonic() + ENQUEUE_FAILED_PAUSE
        logger.warning(
            "ledger: could not enqueue anchoring (%s); sweeper will retry", type(exc).__name__
        )
    else:
        _last_enqueue = time.monotonic()


def pending_exists() -> bool:
    return Event.objects.filter(status=Event.PENDING).exists()


def pending_count() -> int:
    return Event.objects.filter(status=Event.PENDING).count()


def ledger_anchor_and_linger(
    *,
    idle_tail: float = TASK_IDLE_TAIL,
    poll: float = TASK_POLL,
    max_seconds: float = TASK_MAX_SECONDS,
) -> int:
    """Anchor what is pending, then keep polling until nothing new came for `idle_tail`
    seconds (see ENQUEUE_DEBOUNCE for why), or for at most `max_seconds` in all."""
    started = idle_since = time.monotonic()
    # A large backlog is cut at the deadline too, so a run ends well inside the task's time
    # limits and the task hands the rest on.
    deadline = started + max_seconds
    total = ledger_anchor_pending(deadline=deadline)
    while True:
        now = time.monotonic()
        if now - idle_since >= idle_tail or now >= deadline:
            break
        time.sleep(poll)
        if pending_exists():
            anchored = ledger_anchor_pending(deadline=deadline)
            if anchored:
                total += anchored
                idle_since = time.monotonic()
    return total


def ledger_anchor_pending(
    *, batch_size: int = BATCH_SIZE, max_batches: int | None = None, deadline: float | None = None
) -> int:
    """Anchor pending events in batches until none is left (or `deadline`, a time.monotonic()
    value, has passed); returns how many were anchored."""
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
        if n < batch_size or (deadline is not None and time.monotonic() >= deadline):
            break
    return total


class LogHeadBusy(Exception):
    """Another session held the log head's lock for longer than LEDGER_ANCHOR_LOCK_TIMEOUT.

    Either a worker is appending (its batch ends within milliseconds) or one hangs inside its
    anchoring transaction, and the server ends that session after LEDGER_ANCHOR_IDLE_TIMEOUT:
    either way, trying again shortly succeeds."""


def _milliseconds(setting: str) -> str:
    return str(max(0, round(float(getattr(settings, setting)) * 1000)))


def log_head_lock() -> LogHead:
    """Lock the log head row for the current transaction (the anchoring transaction).

    The row lock serializes appenders across workers, so the log never forks. On PostgreSQL
    the transaction is bounded first, so that no session can hold the lock for long: one that
    sits idle in it (a worker stopped or frozen mid-batch) is ended by the server after
    LEDGER_ANCHOR_IDLE_TIMEOUT, which rolls its batch back whole, and waiting for the lock
    gives up after LEDGER_ANCHOR_LOCK_TIMEOUT (LogHeadBusy). `set_config(..., true)` is
    SET LOCAL with bound values: both end with the transaction, so a pooled connection
    keeps nothing of them."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, true), "
                "set_config('idle_in_transaction_session_timeout', %s, true)",
                [
                    _milliseconds("LEDGER_ANCHOR_LOCK_TIMEOUT"),
                    _milliseconds("LEDGER_ANCHOR_IDLE_TIMEOUT"),
                ],
            )
    try:
        head = LogHead.objects.select_for_update().filter(pk=1).first()
        if head is None:  # a database flushed after migrating (tests) has no head row yet
            LogHead.objects.get_or_create(pk=1)
            head = LogHead.objects.select_for_update().get(pk=1)
    except OperationalError as exc:
        # psycopg's documented SQLSTATE of the cause: 55P03 is lock_not_available.
        if getattr(exc.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise LogHeadBusy("the log head is locked by another session") from exc
        raise
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


def _insert_rows(cursor, table: str, columns: list[str], rows: list[tuple]) -> None:
    """Append rows to a table: the one writer of the batch's entries and nodes.

    On PostgreSQL one COPY (psycopg's `Cursor.copy`, through Django's cursor): the server
    loads the whole batch in one command. Elsewhere (SQLite, the demo) `executemany`. One
    INSERT per row, even pipelined, cost the server an executor start-up per row and psycopg
    a round of binding per row, most of a batch's time (cProfile); one multi-row VALUES
    statement was slower still (psycopg splits and the server parses its text anew)."""
    if not rows:
        return
    names = ", ".join(columns)
    if connection.vendor == "postgresql":
        with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        placeholders = ", ".join(["%s"] * len(columns))
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", rows)  # noqa: S608


def _anchor_batch(batch_size: int, after_id: int) -> tuple[int, int]:
    """Anchor up to `batch_size` pending events with id > `after_id`, in id order, in one
    transaction; returns how many and the highest id taken.

    Statements through Django's cursor, the same on every database: one claims and reads
    the batch, one appends the entries and one the new nodes (`_insert_rows`), then the
    checkpoint and the head. The ORM's bulk_create spent most of a batch building one huge
    INSERT from model instances (measured: several times slower); these bind plain tuples."""
    with transaction.atomic():
        head = log_head_lock()
        now = timezone.now()
        stamp = connection.ops.adapt_datetimefield_value(now)  # as the ORM would bind it
        qn = connection.ops.quote_name
        event_t, entry_t, node_t = (qn(m._meta.db_table) for m in (Event, Entry, Node))
        with connection.cursor() as cursor:
            # Claim and read the batch in one statement. Safe because the head lock is held:
            # no other appender can be claiming the same rows, and a rollback un-claims them.
            cursor.execute(
                f"UPDATE {event_t} SET status = %s, anchored_at = %s WHERE id IN ("  # noqa: S608
                f" SELECT id FROM {event_t} WHERE status = %s AND id > %s ORDER BY id LIMIT %s"
                ") RETURNING id, leaf",
                [Event.ANCHORED, stamp, Event.PENDING, after_id, batch_size],
            )
            rows = sorted(cursor.fetchall())  # RETURNING has no order; the log is by id
            if not rows:
                return 0, after_id
            size = head.size
            leaves = [bytes(leaf) for _, leaf in rows]
            leaf_hashes, chains, acc, nodes = _hash_batch(size, bytes(head.chain_hash), leaves)
            _insert_rows(
                cursor, entry_t,
                [qn("index"), "event_id", "leaf", "leaf_hash", "chain_hash", "created_at"],
                [
                    (size + offset, event_pk, leaves[offset], leaf_hashes[offset],
                     chains[offset], stamp)
                    for offset, (event_pk, _) in enumerate(rows)
                ],
            )  # fmt: skip
            _insert_rows(cursor, node_t, ["level", qn("index"), "hash"], nodes)
        checkpoint_cut(size=acc.size, root=acc.root(), now=now)
        head.size = acc.size
        head.chain_hash = chains[-1]
        head.save(update_fields=["size", "chain_hash", "updated_at"])
        return len(rows), rows[-1][0]


def checkpoint_cut(*, size: int, root: bytes, now: datetime) -> Checkpoint:
    """Sign and store the checkpoint: origin, size and root only. No extension lines (the
    C2SP spec calls them not recommended, and a witness's cosignature carries its own time);
    checkpoints stored earlier with a `time` line still open, as any extension line does."""
    body = note.Checkpoint(origin=log_origin(), size=size, root=root)
    signed = note.sign_checkpoint(body, log_signer())
    checkpoint = Checkpoint.objects.create(size=size, root_hash=root, note=signed, created_at=now)
    # Witnesses hear of it once it commits; anchoring never waits for them.
    transaction.on_commit(publication_enqueue)
    return checkpoint
