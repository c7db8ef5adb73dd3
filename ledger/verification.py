"""verify_ledger: recompute everything and name every finding (never stop at the first).

Two passes:
- the log pass reads the stored leaf bytes once, in index order, and recomputes each leaf
  hash, the hash chain, the Merkle root at every checkpoint size and every checkpoint's
  signature; it cross-checks each entry against its outbox event;
- the subject pass re-digests every live subject that has events and compares it with the
  digest in its latest anchored entry (read from the entry's leaf, not from the mutable
  outbox row).
Nothing is re-serialized from ORM fields: only the stored leaf bytes are hashed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import operator
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import connection, connections, transaction

from ledger import merkle, note, subjects
from ledger.keys import log_origin, log_verifier
from ledger.models import GENESIS_CHAIN_HASH, Checkpoint, Entry, Event, LogHead

CHUNK = 20_000


@dataclass
class Finding:
    kind: str  # entry, checkpoint, log, subject, event
    ref: str  # which entry / checkpoint / subject
    problem: str

    def __str__(self) -> str:
        return f"{self.kind} {self.ref}: {self.problem}"


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    subjects: int = 0
    log_seconds: float = 0.0
    subject_seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def _chunks(sql: str, params: tuple = ()) -> Iterator[list[tuple]]:
    """A large query in lists of rows; on PostgreSQL a server-side cursor in binary format
    (bytea arrives as raw bytes instead of hex text to decode)."""
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with (
            transaction.atomic(),
            connection.connection.cursor(name="verify_ledger", binary=True) as cur,
        ):
            cur.itersize = CHUNK
            # A plain ordered index scan: JIT compiling it only adds latency.
            connection.connection.execute("SET LOCAL jit = off")
            cur.execute(sql, params)
            yield from _read_ahead(cur)
    else:
        with connection.cursor() as cur:
            cur.execute(sql, params)
            while rows := cur.fetchmany(CHUNK):
                yield rows


def _read_ahead(cur: Any) -> Iterator[list[tuple]]:
    """Fetch the next chunk on a thread while the caller hashes this one.

    psycopg releases the GIL while it waits for the server, so the server's scan overlaps
    the hashing instead of alternating with it. Only this thread touches the cursor's
    connection until the chunks are exhausted (psycopg serializes access anyway).
    """
    ready: queue.Queue[list[tuple] | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            while not stop.is_set():
                rows = cur.fetchmany(CHUNK)
                ready.put(rows or None)
                if not rows:
                    return
        except BaseException as exc:  # handed to the consumer
            ready.put(exc)

    thread = threading.Thread(target=produce, name="verify-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.05)
        thread.join()


def _stream(sql: str, params: tuple = ()) -> Iterator[tuple]:
    """Rows of a large query without loading them all."""
    for rows in _chunks(sql, params):
        yield from rows


def _as_bytes(values: tuple) -> list[bytes]:
    """A column's values as a list of bytes (copied only when the driver gave another type)."""
    if set(map(type, values)) == {bytes}:
        return list(values)
    return [bytes(value) for value in values]


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _outbox_findings() -> list[Finding]:
    """Cross-check the log against the outbox: every entry has its event, with the same leaf
    bytes, marked anchored; every anchored event has its entry.

    The database compares the bytes and returns only mismatches, so the log pass does not
    drag a second copy of every leaf through a join. Runs on the caller's connection.
    """
    q = connection.ops.quote_name
    entry_t, event_t = _table(Entry), _table(Event)
    found: list[Finding] = []
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Entries are appended in event-id order, so a merge join over the two unique
            # indexes reads both tables once; a hash join of 1M wide rows spills to disk at
            # the default work_mem. JIT compilation alone costs more than the query saves.
            # Serial: this runs beside the log pass, which has the other core.
            cursor.execute(
                "SET LOCAL jit = off; SET LOCAL enable_hashjoin = off; "
                "SET LOCAL max_parallel_workers_per_gather = 0"
            )
        cursor.execute(
            f"SELECT en.{q('index')}, ev.id IS NULL, ev.leaf = en.leaf, ev.status "  # noqa: S608
            f"FROM {entry_t} en LEFT JOIN {event_t} ev ON ev.id = en.event_id "
            f"WHERE ev.id IS NULL OR ev.leaf <> en.leaf OR ev.status <> %s "
            f"ORDER BY en.{q('index')}",
            [Event.ANCHORED],
        )
        for index, no_event, same_leaf, _status in cursor.fetchall():
            if no_event:
                problem = "has no outbox event (inserted into the log)"
            elif not same_leaf:
                problem = "leaf bytes differ from its recorded event"
            else:
                problem = "its event is not marked anchored"
            found.append(Finding("entry", str(index), problem))
    anchored_without_entry = Event.objects.filter(
        status=Event.ANCHORED, entry__isnull=True
    ).values_list("event_id", flat=True)[:20]
    for event_id in anchored_without_entry:
        found.append(Finding("event", str(event_id), "marked anchored but its entry is missing"))
    return found


class _Background:
    """Run `_outbox_findings` on a second connection while the log pass hashes (the database
    does the join on the other core). Only outside a transaction: a second connection
    cannot see the caller's uncommitted rows, so inside one it runs inline afterwards."""

    def __init__(self) -> None:
        self.result: list[Finding] | None = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            self.thread = threading.Thread(target=self._run, name="verify-outbox", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        try:
            self.result = _outbox_findings()
        except BaseException as exc:  # re-raised in the caller's thread
            self.error = exc
        finally:
            connections.close_all()  # this thread's own connection

    def findings(self) -> list[Finding]:
        if self.thread is None:
            return _outbox_findings()
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def verify_log(report: Report, progress=None) -> None:
    started = time.perf_counter()
    findings = report.findings
    verifier = log_verifier()
    origin = log_origin()
    background = _Background()
    checkpoints = list(
        Checkpoint.objects.order_by("size").values_list("id", "size", "root_hash", "note")
    )
    report.checkpoints = len(checkpoints)
    # Signatures and bodies first: a checkpoint whose note does not verify or disagrees with
    # its columns is named, and its stored root is then not trusted for the root check.
    signed_roots: dict[int, bytes] = {}
    for cp_id, size, root, text in checkpoints:
        try:
            cp = note.open_checkpoint(text, verifier, origin=origin)
        except note.NoteError as exc:
            findings.append(
                Finding("checkpoint", f"#{cp_id} (size {size})", f"bad signature: {exc}")
            )
            continue
        if cp.size != size or cp.root != bytes(root):
            findings.append(
                Finding(
                    "checkpoint",
                    f"#{cp_id} (size {size})",
                    "stored size/root differ from the signed note",
                )
            )
        signed_roots[cp.size] = cp.root

    cp_sizes = sorted(signed_roots)
    cp_pos = 0
    acc = merkle.MerkleAccumulator()
    sha = hashlib.sha256
    prev_chain = GENESIS_CHAIN_HASH
    expected = 0
    idx = connection.ops.quote_name("index")
    # Whole chunks at a time: the hashes are list comprehensions compared as lists, and only a
    # chunk with a mismatch is walked entry by entry to name the entries.
    for rows in _chunks(
        f"SELECT {idx}, leaf, leaf_hash, chain_hash FROM {_table(Entry)} ORDER BY {idx}"  # noqa: S608
    ):
        n = len(rows)
        indexes, leaves, stored_leaf_rows, stored_chain_rows = zip(*rows, strict=True)
        if indexes[0] != expected or indexes[-1] - indexes[0] != n - 1:
            # Sorted indexes are contiguous from `expected` exactly when both hold.
            for index in indexes:
                if index != expected:
                    if index > expected:
                        findings.append(
                            Finding(
                                "log",
                                f"entries {expected}..{index - 1}",
                                "missing (deleted from the log)",
                            )
                        )
                    else:
                        findings.append(
                            Finding("entry", str(index), "duplicate or out-of-order index")
                        )
                    expected = index
                expected += 1
        else:
            expected += n
        leaf_hashes = [sha(b"\x00" + leaf).digest() for leaf in leaves]
        # psycopg's binary format (and SQLite) give bytea as bytes already: no copies.
        stored_leaf_hashes = _as_bytes(stored_leaf_rows)
        if leaf_hashes != stored_leaf_hashes:
            for index, lh, stored in zip(indexes, leaf_hashes, stored_leaf_hashes, strict=True):
                if lh != stored:
                    findings.append(
                        Finding("entry", str(index), "leaf bytes do not match the stored leaf hash")
                    )
        stored_chains = _as_bytes(stored_chain_rows)
        # Each link continues from the *stored* previous value, so one bad entry is named
        # once, not with all after it.
        previous = [prev_chain, *stored_chains[:-1]]
        chains = [sha(link).digest() for link in map(operator.add, previous, leaf_hashes)]
        if chains != stored_chains:
            for index, chain, stored in zip(indexes, chains, stored_chains, strict=True):
                if chain != stored:
                    findings.append(
                        Finding(
                            "entry",
                            str(index),
                            "hash chain broken (does not follow the previous entry)",
                        )
                    )
        prev_chain = stored_chains[-1]
        # The tree, with its root at every checkpoint size inside this chunk.
        first_cp = cp_pos
        while cp_pos < len(cp_sizes) and cp_sizes[cp_pos] <= acc.size + n:
            cp_pos += 1
        roots = acc.extend_roots(leaf_hashes, cp_sizes[first_cp:cp_pos])
        for size, root in roots.items():
            if root != signed_roots[size]:
                findings.append(
                    Finding(
                        "checkpoint", f"size {size}", "signed root does not match the log's entries"
                    )
                )
        if progress is not None:
            progress.advance(n)
    report.entries = acc.size
    for size in cp_sizes[cp_pos:]:
        findings.append(
            Finding(
                "log", f"checkpoint size {size}", f"log truncated: only {acc.size} entries remain"
            )
        )
    if cp_sizes and acc.size > cp_sizes[-1]:
        findings.append(
            Finding(
                "log",
                f"entries {cp_sizes[-1]}..{acc.size - 1}",
                "not covered by any signed checkpoint (appended outside the anchoring service)",
            )
        )
    head = LogHead.objects.filter(pk=1).first()
    if head is not None and (head.size, bytes(head.chain_hash)) != (acc.size, prev_chain):
        findings.append(
            Finding("log", "head", f"head says {head.size} entries, log has {acc.size}")
        )
    findings.extend(background.findings())
    report.log_seconds = time.perf_counter() - started


def _digest_or_none(obj) -> str | None:
    """The row's digest, or None when its canonical content cannot be read."""
    try:
        return subjects.digest_of(obj)
    except subjects.SubjectUnreadable:
        return None


def verify_subjects(report: Report, progress=None) -> None:
    """Re-digest live subjects against the digest of their latest anchored entry."""
    started = time.perf_counter()
    latest: dict[tuple[str, str], str] = {}
    for (leaf,) in _stream(
        f"SELECT leaf FROM {_table(Entry)} ORDER BY {connection.ops.quote_name('index')}"  # noqa: S608
    ):
        try:
            doc = json.loads(bytes(leaf))
            subject_type, _, subject_id = doc["subject"].partition(":")
            latest[(subject_type, subject_id)] = doc["digest"]
        except (ValueError, KeyError, AttributeError):
            continue  # a damaged leaf is already named by the log pass
    registry = subjects.registered()
    by_type: dict[str, dict[str, str]] = {}
    for (subject_type, subject_id), digest in latest.items():
        by_type.setdefault(subject_type, {})[subject_id] = digest
    for subject_type, wanted in by_type.items():
        if subject_type not in registry:
            continue  # events about things that are not rows (for example a whole chart view)
        model = registry[subject_type][0]
        ids = list(wanted)
        for start in range(0, len(ids), 2000):
            chunk = ids[start : start + 2000]
            key = subjects.key_field(subject_type)
            rows = {
                str(getattr(obj, key)): obj
                for obj in model._base_manager.filter(**{f"{key}__in": chunk})
            }
            for subject_id in chunk:
                obj = rows.get(subject_id)
                ref = f"{subject_type} {subject_id}"
                if obj is None:
                    report.findings.append(
                        Finding(
                            "subject", ref, "row is gone (deleted behind the application's back)"
                        )
                    )
                elif (current := _digest_or_none(obj)) is None:
                    report.findings.append(
                        Finding(
                            "subject",
                            ref,
                            "row cannot be read back (an encrypted value was altered, moved "
                            "or its key is missing)",
                        )
                    )
                elif current != wanted[subject_id]:
                    report.findings.append(
                        Finding(
                            "subject",
                            ref,
                            "row differs from its last anchored digest "
                            "(edited behind the application's back)",
                        )
                    )
            report.subjects += len(chunk)
            if progress is not None:
                progress.advance(len(chunk))
    report.subject_seconds = time.perf_counter() - started


def ledger_verify(*, subjects_pass: bool = True, progress_factory=None) -> Report:
    report = Report()
    total = Entry.objects.count()
    if progress_factory is not None:
        with progress_factory("Checking the log", total) as progress:
            verify_log(report, progress)
    else:
        verify_log(report)
    if subjects_pass:
        if progress_factory is not None:
            count = Event.objects.values("subject_type", "subject_id").distinct().count()
            with progress_factory("Re-digesting subjects", count) as progress:
                verify_subjects(report, progress)
        else:
            verify_subjects(report)
    return report
