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

from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, connections, transaction

from ledger import facts, merkle, note, subjects
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
    covered_rows: int = 0
    coverage_seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    # What could not be checked (a witness that cannot be reached): said, not a finding.
    warnings: list[str] = field(default_factory=list)

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


LEAF_BYTES_DIFFER = "leaf bytes differ from its recorded event"


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
                problem = "has no outbox event (inserted into the log, or its event deleted)"
            elif not same_leaf:
                problem = LEAF_BYTES_DIFFER
            else:
                problem = "its event is not marked anchored"
            found.append(Finding("entry", str(index), problem))
    anchored_without_entry = Event.objects.filter(
        status=Event.ANCHORED, entry__isnull=True
    ).values_list("event_id", flat=True)[:20]
    for event_id in anchored_without_entry:
        found.append(Finding("event", str(event_id), "marked anchored but its entry is missing"))
    return found


# A prefilter, on PostgreSQL: the database picks the events whose leaf might not state their
# columns, and `facts.facts_differing` (the rule) then names what differs for those only. It
# writes the columns as canonical_leaf writes them (sorted keys, compact; values quoted
# without escaping: a value that needs escaping only makes its event a candidate) and looks
# for them in the leaf's text, which costs a fraction of parsing a million leaves as jsonb.
# The attributes are compared as jsonb, cut from the leaf after `"attrs":{` up to the first
# `}` (attribute values are codes: no braces). A leaf in another format only makes every
# event a candidate (slower, still exact); one the database cannot read fails the statement,
# and then every event goes through the Python comparison, which names it.
_FACTS_PREFILTER_SQL = """
WITH x AS (
  SELECT id, attrs, convert_from(leaf, 'UTF8') AS s,
    '{{"actor":' || COALESCE(actor_id::text, 'null')
      || COALESCE(',"actor_hospital":' || actor_hospital_id::text, '')
      || CASE WHEN attrs = '{{}}'::jsonb THEN ',"attrs":{{}}' ELSE ',"attrs":{{"' END AS head,
    '}},"digest":"' || digest || '","event":"' || event_id::text
      || '","hospital":' || COALESCE(hospital_id::text, 'null')
      || ',"kind":"' || kind || '","patient":' || COALESCE(patient_id::text, 'null')
      || ',"subject":"' || subject_type || ':' || subject_id
      || '","time":"' || to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
      || '",' AS tail
  FROM {event_t}
)
SELECT id FROM x
WHERE NOT starts_with(s, head) OR strpos(s, tail) = 0
   OR (attrs <> '{{}}'::jsonb
       AND ('{{' || split_part(split_part(s, '"attrs":{{', 2), '}}', 1) || '}}')::jsonb <> attrs)
ORDER BY id
"""


def _fact_candidates() -> list[int] | None:
    """The ids of events whose leaf may not state their columns (PostgreSQL's prefilter), or
    None: every event is to be compared."""
    if connection.vendor != "postgresql":
        return None
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off; SET LOCAL max_parallel_workers_per_gather = 0")
            cursor.execute(_FACTS_PREFILTER_SQL.format(event_t=_table(Event)))
            return [pk for (pk,) in cursor.fetchall()]
    except DatabaseError:
        return None  # a leaf it cannot read: each is named by the comparison


def _event_fact_findings(rewritten: frozenset[int] = frozenset()) -> list[Finding]:
    """Every event's columns (what the portal shows) against its leaf: an anchored event's
    own leaf bytes are its entry's (the outbox pass names any difference), a pending event's
    are its own. Names each event and which facts differ. `rewritten`: indexes of entries
    whose event's leaf bytes were found rewritten; their columns are compared with the
    entry's leaf instead."""
    found: list[Finding] = []
    columns = ("status", "entry__index", "leaf", *facts.FACT_COLUMNS)
    # Where the outbox copy of the leaf was rewritten (the columns with it, say), the facts
    # are named against the entry's, the one the log proves.
    if rewritten:
        for index, leaf, *values in Entry.objects.filter(index__in=sorted(rewritten)).values_list(
            "index", "leaf", *(f"event__{column}" for column in facts.FACT_COLUMNS)
        ):
            found += _fact_finding(values, bytes(leaf), f"its anchored leaf (entry {index})")
    candidates = _fact_candidates()
    if candidates == []:
        return found
    everything = Event.objects.order_by("id").values_list(*columns)
    if candidates is None:
        rows: Iterator[tuple] = everything.iterator(chunk_size=2000)
    else:
        rows = (
            row
            for start in range(0, len(candidates), 2000)
            for row in everything.filter(pk__in=candidates[start : start + 2000])
        )
    for status, index, leaf, *values in rows:
        if index in rewritten:
            continue  # named above, against the entry's leaf
        where = (
            f"its anchored leaf (entry {index})"
            if status == Event.ANCHORED and index is not None
            else "its recorded leaf"
        )
        found += _fact_finding(values, bytes(leaf), where)
    return found


def _fact_finding(values: list[Any], leaf: bytes, where: str) -> list[Finding]:
    event_id = values[0]
    try:
        differing = facts.facts_differing(facts.facts_of_values(*values), leaf)
    except facts.LeafUnreadable as exc:
        return [Finding("event", str(event_id), f"{where} cannot be read: {exc}")]
    if not differing:
        return []
    return [
        Finding(
            "event",
            str(event_id),
            f"{facts.describe(differing)} in the database differ from {where} "
            "(changed behind the application's back)",
        )
    ]


def _database_findings() -> list[Finding]:
    outbox = _outbox_findings()
    rewritten = frozenset(
        int(f.ref) for f in outbox if f.kind == "entry" and f.problem == LEAF_BYTES_DIFFER
    )
    return outbox + _event_fact_findings(rewritten)


class _Background:
    """Run `_database_findings` on a second connection while the log pass hashes (the database
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
            self.result = _database_findings()
        except BaseException as exc:  # re-raised in the caller's thread
            self.error = exc
        finally:
            connections.close_all()  # this thread's own connection

    def findings(self) -> list[Finding]:
        if self.thread is None:
            return _database_findings()
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


def _digest_or_none(obj, leaf: tuple[str, int, int | None]) -> str | None:
    """The row's digest as its leaf (digest, format, hospital) computed it, or None when its
    canonical content cannot be read or the leaf's format is unknown."""
    _digest, version, hospital_id = leaf
    try:
        return subjects.digest_for_leaf(obj, version=version, hospital_id=hospital_id)
    except (subjects.SubjectUnreadable, subjects.UnknownLeafVersion):
        return None


def _subject_key(model, key: str, subject_id: str) -> Any:
    """The subject id as the key field's value, or None when it cannot be one (an integer
    where the key is a UUID, say): such an entry names no row, and is a finding."""
    field_ = model._meta.pk if key == "pk" else model._meta.get_field(key)
    try:
        return field_.to_python(subject_id)
    except (ValidationError, ValueError, TypeError):
        return None


def verify_subjects(report: Report, progress=None) -> None:
    """Re-digest live subjects against the digest of their latest anchored entry.

    Never raises on what it reads: a leaf that cannot be parsed, or a subject id that cannot
    name a row of its type, is a finding naming the entry."""
    started = time.perf_counter()
    # (entry index, digest, leaf format, hospital): the format and hospital say how to
    # re-digest; reads are skipped (a read vouches for nothing: ledger.subjects.READ_SUFFIX).
    latest: dict[tuple[str, str], tuple[int, str, int, int | None]] = {}
    kinds: dict[tuple[str, str], str] = {}
    idx = connection.ops.quote_name("index")
    for index, leaf in _stream(
        f"SELECT {idx}, leaf FROM {_table(Entry)} ORDER BY {idx}"  # noqa: S608
    ):
        try:
            doc = json.loads(bytes(leaf))
            subject_type, _, subject_id = doc["subject"].partition(":")
            if subjects.is_read(doc["kind"]):
                continue
            latest[(subject_type, subject_id)] = (index, doc["digest"], doc["v"], doc["hospital"])
            kinds[(subject_type, subject_id)] = doc["kind"]
        except (ValueError, KeyError, AttributeError, TypeError):
            report.findings.append(
                Finding("entry", str(index), "leaf cannot be read (names no subject and digest)")
            )
    registry = subjects.registered()
    by_type: dict[str, dict[str, tuple[int, str, int, int | None]]] = {}
    # A subject with a newer pending event, or whose last event deleted it, is the coverage
    # pass's to check (against that pending event / that it is gone).
    newer = set(
        Event.objects.filter(status=Event.PENDING)
        .exclude(kind__endswith=subjects.READ_SUFFIX)
        .values_list("subject_type", "subject_id")
    )
    for (subject_type, subject_id), seen in latest.items():
        if (subject_type, subject_id) in newer or subjects.is_removal(
            subject_type, kinds.get((subject_type, subject_id), "")
        ):
            continue
        by_type.setdefault(subject_type, {})[subject_id] = seen
    for subject_type, wanted in by_type.items():
        if subject_type not in registry:
            continue  # events about things that are not rows (for example a whole chart view)
        model = registry[subject_type][0]
        key = subjects.key_field(subject_type)
        # Each id as its key's value; one that cannot be is named, never looked up.
        keys: dict[str, Any] = {}
        for subject_id, (index, *_) in wanted.items():
            value = _subject_key(model, key, subject_id)
            if value is None:
                report.findings.append(
                    Finding(
                        "subject",
                        f"{subject_type} {subject_id}",
                        f"entry {index} names a subject id that cannot be a {subject_type} key",
                    )
                )
            else:
                keys[subject_id] = value
        ids = list(keys)
        for start in range(0, len(ids), 2000):
            chunk = ids[start : start + 2000]
            rows = {
                getattr(obj, key): obj
                for obj in model._base_manager.filter(
                    **{f"{key}__in": [keys[subject_id] for subject_id in chunk]}
                )
            }
            for subject_id in chunk:
                obj = rows.get(keys[subject_id])
                ref = f"{subject_type} {subject_id}"
                _index, digest, version, hospital_id = wanted[subject_id]
                if obj is None:
                    report.findings.append(
                        Finding(
                            "subject", ref, "row is gone (deleted behind the application's back)"
                        )
                    )
                    continue
                try:
                    current = _digest_or_none(obj, (digest, version, hospital_id))
                except Exception as exc:  # what the row holds must not stop the check
                    report.findings.append(
                        Finding("subject", ref, f"row cannot be digested ({type(exc).__name__})")
                    )
                    continue
                if current is None:
                    report.findings.append(
                        Finding(
                            "subject",
                            ref,
                            "row cannot be read back (an encrypted value was altered, moved "
                            "or its key is missing)",
                        )
                    )
                elif current != digest:
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


def verify_witnesses(report: Report) -> None:
    """The log against its witnesses (ledger.publication.witness_findings): a witness that
    cosigned a larger tree than the log holds (a cut tail, the head rewound) or another root
    at one of its sizes (a fork) is a finding quoting the witness's cosigned checkpoint."""
    from ledger.publication import witness_findings

    found, warnings = witness_findings(log_size=report.entries)
    for f in found:
        quoted = "".join(f"\n      | {line}" for line in f.evidence.rstrip("\n").split("\n"))
        report.findings.append(Finding("witness", f.witness, f"{f.problem}; evidence:{quoted}"))
    report.warnings.extend(warnings)


def verify_coverage(report: Report, progress=None) -> None:
    """Every row of every registered subject model is accounted for by its events.

    Each subject's latest event that is not a read (reads vouch for nothing), anchored or
    pending, is read once from the outbox in event order; then each model's keys are
    streamed and compared with it. Named: a row with no event; a row present whose last
    event removed it; a row gone whose last event is pending and did not remove it; a row
    whose last event is pending and whose digest differs. Rows whose last event is anchored
    are re-digested against its leaf, and anchored subjects that are gone named, by
    `verify_subjects`; the outbox rows read here are held to their leaves by the log pass.
    """
    started = time.perf_counter()
    registry = subjects.registered()
    labels = sorted(registry)
    # Per subject, as little as the checks need (a large hospital has millions of rows):
    # None when the last event is anchored, its digest when pending, "!kind" when it removed.
    latest: dict[str, dict[str, str | None]] = {label: {} for label in labels}
    # A pending event's hospital (its digest key), for the subjects whose last event pends.
    pending_hospital: dict[tuple[str, str], int | None] = {}
    marks = ", ".join(["%s"] * len(labels))
    for subject_type, subject_id, kind, digest, status, hospital_id in _stream(
        f"SELECT subject_type, subject_id, kind, digest, status, hospital_id "  # noqa: S608
        f"FROM {_table(Event)} "
        f"WHERE subject_type IN ({marks}) AND kind NOT LIKE %s ORDER BY id",
        (*labels, f"%{subjects.READ_SUFFIX}"),
    ):
        if subjects.is_removal(subject_type, kind):
            state: str | None = "!" + kind
        else:
            state = digest if status == Event.PENDING else None
            if state is not None:
                pending_hospital[(subject_type, subject_id)] = hospital_id
        latest[subject_type][subject_id] = state
    findings = report.findings

    def named(label: str, subject_id: str, problem: str) -> None:
        findings.append(Finding("subject", f"{label} {subject_id}", problem))

    for label in labels:
        model = registry[label][0]
        key = subjects.key_field(label)
        events = latest.pop(label)
        present: set[str] = set()
        pending: dict[str, str] = {}
        keys = model._base_manager.order_by().values_list(key, flat=True)
        for value in keys.iterator(chunk_size=CHUNK):
            subject_id = str(value)
            present.add(subject_id)
            if subject_id not in events:
                named(label, subject_id, "row has no event (written behind the application's back)")
                continue
            state = events[subject_id]
            if state is None:
                continue
            if state.startswith("!"):
                named(label, subject_id, f"row exists but its last event ({state[1:]}) removed it")
            else:
                pending[subject_id] = state
        for subject_id, state in events.items():
            if state is not None and not state.startswith("!") and subject_id not in present:
                named(
                    label, subject_id,
                    "row gone without a removal event (deleted behind the application's back)",
                )  # fmt: skip
        ids = list(pending)
        for start in range(0, len(ids), 2000):
            for obj in model._base_manager.filter(**{f"{key}__in": ids[start : start + 2000]}):
                subject_id = subjects.subject_id(obj)
                wanted = pending[subject_id]
                hospital_id = pending_hospital.get((label, subject_id))
                current = _digest_or_none(obj, (wanted, subjects.KEYED_VERSION, hospital_id))
                if current is None:
                    named(label, subject_id, "row cannot be read back (an encrypted value was "
                          "altered, moved or its key is missing)")  # fmt: skip
                elif current != wanted:
                    named(label, subject_id, "row differs from its last event (changed behind "
                          "the application's back)")  # fmt: skip
        report.covered_rows += len(present)
        if progress is not None:
            progress.advance(1)
    report.coverage_seconds = time.perf_counter() - started


def ledger_verify(*, subjects_pass: bool = True, progress_factory=None) -> Report:
    report = Report()
    total = Entry.objects.count()
    if progress_factory is not None:
        with progress_factory("Checking the log", total) as progress:
            verify_log(report, progress)
    else:
        verify_log(report)
    verify_witnesses(report)
    if subjects_pass:
        if progress_factory is not None:
            count = Event.objects.values("subject_type", "subject_id").distinct().count()
            with progress_factory("Re-digesting subjects", count) as progress:
                verify_subjects(report, progress)
        else:
            verify_subjects(report)
        if progress_factory is not None:
            with progress_factory("Checking coverage", len(subjects.registered())) as progress:
                verify_coverage(report, progress)
        else:
            verify_coverage(report)
    return report
