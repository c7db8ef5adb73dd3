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

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import connection, transaction

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


def _stream(sql: str, params: tuple = ()) -> Iterator[tuple]:
    """Rows of a large query without loading them all; a server-side cursor on PostgreSQL."""
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with transaction.atomic(), connection.connection.cursor(name="verify_ledger") as cur:
            cur.itersize = CHUNK
            cur.execute(sql, params)
            while rows := cur.fetchmany(CHUNK):
                yield from rows
    else:
        with connection.cursor() as cur:
            cur.execute(sql, params)
            while rows := cur.fetchmany(CHUNK):
                yield from rows


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def verify_log(report: Report, progress=None) -> None:
    started = time.perf_counter()
    findings = report.findings
    verifier = log_verifier()
    origin = log_origin()
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
    entry_t, event_t = _table(Entry), _table(Event)
    rows = _stream(
        f"SELECT en.{connection.ops.quote_name('index')}, en.leaf, en.leaf_hash, en.chain_hash, "  # noqa: S608
        f"ev.leaf, ev.status FROM {entry_t} en LEFT JOIN {event_t} ev ON ev.id = en.event_id "
        f"ORDER BY en.{connection.ops.quote_name('index')}"
    )
    tick = 0
    for index, leaf, stored_leaf_hash, stored_chain, event_leaf, event_status in rows:
        if index != expected:
            if index > expected:
                findings.append(
                    Finding(
                        "log", f"entries {expected}..{index - 1}", "missing (deleted from the log)"
                    )
                )
            else:
                findings.append(Finding("entry", str(index), "duplicate or out-of-order index"))
            expected = index
        leaf = bytes(leaf)
        lh = sha(b"\x00" + leaf).digest()
        if lh != bytes(stored_leaf_hash):
            findings.append(
                Finding("entry", str(index), "leaf bytes do not match the stored leaf hash")
            )
        if event_leaf is None:
            findings.append(
                Finding("entry", str(index), "has no outbox event (inserted into the log)")
            )
        elif bytes(event_leaf) != leaf:
            findings.append(
                Finding("entry", str(index), "leaf bytes differ from its recorded event")
            )
        elif event_status != Event.ANCHORED:
            findings.append(Finding("entry", str(index), "its event is not marked anchored"))
        chain = sha(prev_chain + lh).digest()
        if chain != bytes(stored_chain):
            findings.append(
                Finding(
                    "entry", str(index), "hash chain broken (does not follow the previous entry)"
                )
            )
        # Continue from the stored value so one bad entry is named once, not with all after it.
        prev_chain = bytes(stored_chain)
        acc.append(lh)
        expected += 1
        while cp_pos < len(cp_sizes) and cp_sizes[cp_pos] <= acc.size:
            size = cp_sizes[cp_pos]
            if size == acc.size and acc.root() != signed_roots[size]:
                findings.append(
                    Finding(
                        "checkpoint", f"size {size}", "signed root does not match the log's entries"
                    )
                )
            cp_pos += 1
        tick += 1
        if progress is not None and tick == 1000:
            progress.advance(tick)
            tick = 0
    if progress is not None and tick:
        progress.advance(tick)
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
    anchored_without_entry = Event.objects.filter(
        status=Event.ANCHORED, entry__isnull=True
    ).values_list("event_id", flat=True)[:20]
    for event_id in anchored_without_entry:
        findings.append(Finding("event", str(event_id), "marked anchored but its entry is missing"))
    report.log_seconds = time.perf_counter() - started


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
            rows = {str(obj.pk): obj for obj in model._base_manager.filter(pk__in=chunk)}
            for subject_id in chunk:
                obj = rows.get(subject_id)
                ref = f"{subject_type} {subject_id}"
                if obj is None:
                    report.findings.append(
                        Finding(
                            "subject", ref, "row is gone (deleted behind the application's back)"
                        )
                    )
                elif subjects.digest_of(obj) != wanted[subject_id]:
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
