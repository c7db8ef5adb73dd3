"""A standalone transparency-log witness (c2sp.org/tlog-witness, cosignature/v1).

Run by someone *other* than the hospital (a partner hospital, a regulator, a patients'
association) on their own machine.  It needs only Python, ``cryptography`` and SQLite: this
module imports nothing from Django and nothing that does.

::

    python -m ledger.witness keygen --name witness.example/w1 --out witness.key \\
        [--alg ed25519|ml-dsa-44]
    python -m ledger.witness serve --db witness.sqlite3 --key witness.key [--key more.key] \\
        --log hospital.example/ledger+1a2b3c4d+AQ... [--journal FILE] --listen 127.0.0.1:7380
    python -m ledger.witness vkey --key witness.key
    python -m ledger.witness recover --db ... --key ... --log ... --journal FILE

Each ``--key`` adds one cosignature line to every answer (Ed25519 ``cosignature/v1`` by default;
the spec recommends ML-DSA-44 for new witnesses, and a witness may offer both).

HTTP interface:

``POST /add-checkpoint`` (tlog-witness)
    Body: ``old <size>\\n``, zero to 63 base64 consistency-proof lines, an empty line, the
    signed checkpoint.  200: the witness's cosignature line(s) (``text/plain``).  Errors: 400
    malformed request or old size above the checkpoint size; 403 no valid signature by a
    trusted key for the origin; 404 unknown origin; 409 old size is not the size the witness
    last cosigned (body ``<size>\\n``, ``Content-Type: text/x.tlog.size``); 422 bad consistency
    proof, non-empty proof from size 0, wrong empty-tree root, or same size with another root
    (a fork).  The check of the old size and the update are one SQLite transaction
    (``BEGIN IMMEDIATE``, then ``UPDATE ... WHERE size = old AND root = stored root``), and the
    answer is sent only after the commit, so two concurrent requests can never both advance
    and a crash never leaves a cosignature the witness has not recorded.

``GET /<lowercase hex SHA-256 of the origin>/checkpoint`` (tlog-witness monitoring)
    The latest cosigned checkpoint: the log's signature(s) it verified and its own cosignature.
    404 if it never cosigned one for that log.

Extensions (not in the spec): ``GET /checkpoint?origin=<origin>`` (the same, by origin) and
``GET /vkey`` (the witness's public key(s), one a line).

State and backups: the witness's promise ("I never cosign two inconsistent views") holds only
while its state never goes backwards.  A witness restored from an old backup still refuses
anything smaller than, or forked from, what the restored state holds, but it has forgotten
what it cosigned after the backup.  So every cosigned state is also appended and fsynced to a
journal (``DB.journal`` unless ``--journal FILE`` puts it elsewhere, best on storage that only
grows and is not restored with the database; ``--no-journal`` turns it off) before the answer,
and at start-up the witness refuses to run if its database is behind the journal (``recover``
brings the database forward to the journal).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import json
import logging
import os
import queue
import re
import signal
import socket
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ledger import cosignature, merkle, note

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PROOF_LINES",
    "Response",
    "Witness",
    "WitnessError",
    "load_log_keys",
    "main",
    "parse_add_checkpoint",
    "parse_log_arg",
]

log = logging.getLogger("ledger.witness")

MAX_BODY_BYTES = 64 << 10
"""A request is a few hundred bytes; refuse huge ones before reading them."""

MAX_PROOF_LINES = 63
"""The spec's limit on consistency proof lines."""

SIZE_CONTENT_TYPE = "text/x.tlog.size"
_MAX_SIZE = (1 << 63) - 1  # SQLite INTEGER; no real log comes near it
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_ORIGIN_HASH_PATH = re.compile(r"/([0-9a-f]{64})/checkpoint")

SCHEMA = """
CREATE TABLE IF NOT EXISTS log_state (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL CHECK (size >= 0),
    root BLOB NOT NULL CHECK (length(root) = 32),
    timestamp INTEGER NOT NULL,   -- time in the latest cosignature
    note TEXT NOT NULL            -- the checkpoint with the log's and this witness's signatures
);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    received INTEGER NOT NULL,
    reason TEXT NOT NULL,
    request TEXT NOT NULL          -- a validly signed checkpoint the witness refused
);
"""


class WitnessError(Exception):
    """Bad configuration or state (the command line reports it and exits)."""


@dataclass(frozen=True)
class Response:
    """An HTTP answer: status, content type and body."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


def _text(status: int, message: str) -> Response:
    return Response(status, (message + "\n").encode("utf-8"))


class _Refused(Exception):
    def __init__(self, response: Response, reason: str, evidence: bool = False) -> None:
        super().__init__(reason)
        self.response = response
        self.reason = reason
        self.evidence = evidence


@dataclass(frozen=True)
class AddCheckpointRequest:
    """A parsed ``add-checkpoint`` body (nothing verified yet)."""

    old_size: int
    proof: list[bytes]
    note_text: str


def parse_add_checkpoint(body: bytes) -> AddCheckpointRequest:
    """Parse an ``add-checkpoint`` request body strictly.  Raises ``ValueError``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("request body is not valid UTF-8") from None
    head, sep, note_text = text.partition("\n\n")
    if not sep:
        raise ValueError("request body has no empty line before the checkpoint")
    lines = head.split("\n")
    old_line, proof_lines = lines[0], lines[1:]
    if not old_line.startswith("old ") or not _DECIMAL.fullmatch(old_line[4:]):
        raise ValueError("first line must be 'old <size>' in decimal without leading zeros")
    old_size = int(old_line[4:])
    if old_size > _MAX_SIZE:
        raise ValueError("old size is too large")
    if len(proof_lines) > MAX_PROOF_LINES:
        raise ValueError(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for number, line in enumerate(proof_lines, start=1):
        try:
            raw = note.decode_base64(line, f"consistency proof line {number}")
        except note.NoteError as exc:
            raise ValueError(str(exc)) from None
        if len(raw) != merkle.HASH_SIZE:
            raise ValueError(f"consistency proof line {number} is not a 32-byte hash")
        proof.append(raw)
    return AddCheckpointRequest(old_size, proof, note_text)


# --------------------------------------------------------------------------------------------
# The witness
# --------------------------------------------------------------------------------------------


class Witness:
    """The witness's logic and state, independent of HTTP (the server is a thin layer)."""

    def __init__(
        self,
        db_path: str,
        signer: cosignature.CosignatureSigner | Sequence[cosignature.CosignatureSigner],
        logs: dict[str, list[note.Verifier]],
        *,
        journal_path: str | None = None,
        clock: Any = time.time,
        check_journal: bool = True,
    ) -> None:
        if not logs:
            raise WitnessError("no logs configured: give at least one --log")
        self.db_path = db_path
        # Several keys (e.g. Ed25519 and ML-DSA-44) give several lines in each answer.
        self.signers = (
            [signer] if isinstance(signer, cosignature.CosignatureSigner) else list(signer)
        )
        if not self.signers:
            raise WitnessError("no witness key given")
        self.logs = {origin: list(keys) for origin, keys in logs.items()}
        self.journal_path = journal_path
        self.clock = clock
        self._journal_lock = threading.Lock()
        self._pool: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        with self._connect() as db:
            db.executescript(SCHEMA)
        if journal_path is not None and check_journal:
            self._check_journal()

    # -- storage ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A pool of connections, each used by one request at a time.  Opening and closing one
        # per request would checkpoint and fsync the WAL on every close (4 ms here).
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) so that the
        # read-check-update of add-checkpoint is one unit.
        try:
            db = self._pool.get_nowait()
        except queue.Empty:
            db = sqlite3.connect(
                self.db_path, timeout=30, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")  # committed means on disk: then we answer
            db.execute("PRAGMA busy_timeout = 30000")
        try:
            yield db
        except BaseException:
            db.close()  # its state is unknown; a fresh one will be opened
            raise
        else:
            self._pool.put(db)

    def close(self) -> None:
        """Close the pooled database connections."""
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    def latest(self, origin: str) -> tuple[int, bytes, int, str] | None:
        """``(size, root, timestamp, cosigned note)`` of the latest cosigned checkpoint."""
        with self._connect() as db:
            row = db.execute(
                "SELECT size, root, timestamp, note FROM log_state WHERE origin = ?", (origin,)
            ).fetchone()
        if row is None:
            return None
        return int(row[0]), bytes(row[1]), int(row[2]), str(row[3])

    def latest_note_by_origin_hash(self, origin_hash: str) -> str | None:
        for origin in self.logs:
            if hashlib.sha256(origin.encode("utf-8")).hexdigest() == origin_hash:
                state = self.latest(origin)
                return state[3] if state else None
        return None

    # -- journal ---------------------------------------------------------------------------

    def _journal_entries(self) -> dict[str, dict[str, Any]]:
        assert self.journal_path is not None
        latest: dict[str, dict[str, Any]] = {}
        try:
            with open(self.journal_path, encoding="utf-8") as fh:
                for number, line in enumerate(fh, start=1):
                    if not line.endswith("\n"):
                        break  # a torn last write: that answer was never sent
                    try:
                        entry = json.loads(line)
                        origin, size = entry["origin"], int(entry["size"])
                    except (ValueError, KeyError, TypeError):
                        raise WitnessError(
                            f"journal {self.journal_path}: line {number} is not a witness entry"
                        ) from None
                    if origin in latest and int(latest[origin]["size"]) > size:
                        raise WitnessError(
                            f"journal {self.journal_path}: line {number} goes backwards for "
                            f"{origin!r}"
                        )
                    latest[origin] = entry
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise WitnessError(f"cannot read journal {self.journal_path}: {exc}") from None
        return latest

    def _check_journal(self) -> None:
        for origin, entry in self._journal_entries().items():
            state = self.latest(origin)
            size, root = int(entry["size"]), bytes.fromhex(entry["root"])
            if state is None or state[0] < size or (state[0] == size and state[1] != root):
                have = "nothing" if state is None else f"size {state[0]}"
                raise WitnessError(
                    f"the database holds {have} for {origin!r} but the journal says this witness "
                    f"cosigned size {size}: the database was restored from an old backup or "
                    "rolled back.  Refusing to run; `python -m ledger.witness recover` rebuilds "
                    "the database from the journal."
                )

    def recover_from_journal(self) -> list[str]:
        """Bring the database forward to the journal's latest state; returns what changed."""
        changed = []
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                for origin, entry in self._journal_entries().items():
                    size = int(entry["size"])
                    row = db.execute(
                        "SELECT size FROM log_state WHERE origin = ?", (origin,)
                    ).fetchone()
                    if row is not None and int(row[0]) >= size:
                        continue
                    db.execute(
                        "INSERT INTO log_state (origin, size, root, timestamp, note) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin) DO UPDATE SET "
                        "size = excluded.size, root = excluded.root, "
                        "timestamp = excluded.timestamp, note = excluded.note",
                        (
                            origin,
                            size,
                            bytes.fromhex(entry["root"]),
                            int(entry["timestamp"]),
                            entry["note"],
                        ),
                    )
                    changed.append(f"{origin}: size {None if row is None else row[0]} -> {size}")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return changed

    def _append_journal(self, origin: str, size: int, root: bytes, ts: int, text: str) -> None:
        if self.journal_path is None:
            return
        line = json.dumps(
            {"origin": origin, "size": size, "root": root.hex(), "timestamp": ts, "note": text},
            sort_keys=True,
        )
        with self._journal_lock:
            fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)

    # -- add-checkpoint --------------------------------------------------------------------

    def add_checkpoint(self, body: bytes) -> tuple[Response, dict[str, Any]]:
        """Handle one ``add-checkpoint`` body; returns the answer and fields to log."""
        info: dict[str, Any] = {}
        try:
            return self._add_checkpoint(body, info), info
        except _Refused as refused:
            info["reason"] = refused.reason
            if refused.evidence and "origin" in info:
                self._keep_evidence(info["origin"], refused.reason, body)
            return refused.response, info

    def _add_checkpoint(self, body: bytes, info: dict[str, Any]) -> Response:
        try:
            request = parse_add_checkpoint(body)
        except ValueError as exc:
            raise _Refused(_text(400, str(exc)), str(exc)) from None
        info["old"] = request.old_size
        try:
            text, _ = note.split_note(request.note_text)
            checkpoint = note.parse_checkpoint_body(text)
        except note.NoteError as exc:
            raise _Refused(_text(400, f"checkpoint: {exc}"), f"checkpoint: {exc}") from None
        info["origin"], info["size"] = checkpoint.origin, checkpoint.size
        keys = self.logs.get(checkpoint.origin)
        if keys is None:
            raise _Refused(_text(404, "unknown log origin"), "unknown log origin")
        try:
            note.open_note(request.note_text, keys)
        except note.NoteError as exc:
            reason = f"checkpoint signature: {exc}"
            raise _Refused(_text(403, reason), reason) from None
        if request.old_size > checkpoint.size:
            raise _Refused(
                _text(400, "old size is larger than the checkpoint size"),
                "old size above checkpoint size",
            )
        if checkpoint.size > _MAX_SIZE:
            raise _Refused(_text(400, "tree size too large"), "tree size too large")
        if checkpoint.size == 0 and checkpoint.root != merkle.EMPTY_ROOT:
            raise _Refused(
                _text(422, "a checkpoint of size 0 must have the empty tree's root"),
                "size 0 with a non-empty root",
                evidence=True,
            )
        refused: _Refused | None = None
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # the write lock: check and update are one unit
            try:
                response = self._advance(db, checkpoint, request, info)
                db.execute("COMMIT")
            except _Refused as exc:  # an answer, not a failure: the connection stays pooled
                db.execute("ROLLBACK")
                refused = exc
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        if refused is not None:
            raise refused
        return response

    def _advance(
        self,
        db: sqlite3.Connection,
        checkpoint: note.Checkpoint,
        request: AddCheckpointRequest,
        info: dict[str, Any],
    ) -> Response:
        row = db.execute(
            "SELECT size, root, timestamp FROM log_state WHERE origin = ?", (checkpoint.origin,)
        ).fetchone()
        stored_size, stored_root, stored_ts = (
            (int(row[0]), bytes(row[1]), int(row[2])) if row else (0, merkle.EMPTY_ROOT, 0)
        )
        info["stored"] = stored_size
        if request.old_size != stored_size:
            # Still a 409 (the client resynchronises and is refused with 422 next time), but a
            # second root for a size already cosigned is evidence of a fork: keep it now.
            fork = checkpoint.size == stored_size and checkpoint.root != stored_root
            raise _Refused(
                Response(409, f"{stored_size}\n".encode("ascii"), SIZE_CONTENT_TYPE),
                ("fork: another root for the cosigned size; " if fork else "")
                + f"old size {request.old_size} is not the cosigned size {stored_size}",
                evidence=fork,
            )
        if request.old_size == 0 and request.proof:
            raise _Refused(
                _text(422, "the consistency proof from size 0 must be empty"),
                "non-empty proof from size 0",
            )
        try:
            merkle.verify_consistency(
                stored_size, checkpoint.size, stored_root, checkpoint.root, request.proof
            )
        except merkle.ProofError as exc:
            fork = stored_size == checkpoint.size
            reason = f"{'fork' if fork else 'consistency proof'}: {exc}"
            raise _Refused(_text(422, reason), reason, evidence=True) from None
        # Cosignature times never go backwards for a log, even if the clock does.
        timestamp = max(int(self.clock()), stored_ts, 1)
        body = checkpoint.body()
        line = "".join(signer.cosign(body, timestamp=timestamp) for signer in self.signers)
        cosigned = cosignature.add_signature_lines(_log_signed_only(request.note_text, self), line)
        if row is None:
            db.execute(
                "INSERT INTO log_state (origin, size, root, timestamp, note) "
                "VALUES (?, ?, ?, ?, ?)",
                (checkpoint.origin, checkpoint.size, checkpoint.root, timestamp, cosigned),
            )
        else:
            updated = db.execute(
                "UPDATE log_state SET size = ?, root = ?, timestamp = ?, note = ? "
                "WHERE origin = ? AND size = ? AND root = ?",
                (
                    checkpoint.size,
                    checkpoint.root,
                    timestamp,
                    cosigned,
                    checkpoint.origin,
                    stored_size,
                    stored_root,
                ),
            ).rowcount
            if updated != 1:  # pragma: no cover - BEGIN IMMEDIATE already serialises writers
                raise _Refused(
                    Response(409, f"{stored_size}\n".encode("ascii"), SIZE_CONTENT_TYPE),
                    "concurrent update",
                )
        # The journal is written inside the transaction, before the commit and the answer: a
        # cosignature that was sent is always in the journal.
        self._append_journal(
            checkpoint.origin, checkpoint.size, checkpoint.root, timestamp, cosigned
        )
        info["cosigned"] = checkpoint.size
        return Response(200, line.encode("utf-8"))

    def _keep_evidence(self, origin: str, reason: str, body: bytes) -> None:
        # The spec allows keeping refused but validly signed checkpoints: they may prove that
        # the log misbehaved (e.g. two trees of one size).
        with contextlib.suppress(sqlite3.Error), self._connect() as db:
            db.execute(
                "INSERT INTO evidence (origin, received, reason, request) VALUES (?, ?, ?, ?)",
                (origin, int(self.clock()), reason, body.decode("utf-8", "replace")),
            )


def _log_signed_only(note_text: str, witness: Witness) -> str:
    """The checkpoint with only the signatures the witness verified (its trusted log keys).

    Other lines (other witnesses' cosignatures, unknown keys) are not the witness's to vouch for.
    """
    text, signatures = note.split_note(note_text)
    origin = note.parse_checkpoint_body(text).origin
    trusted = {(v.name, v.key_id) for v in witness.logs[origin]}
    kept = ""
    seen = set()
    for sig in signatures:
        if (sig.name, sig.key_id) in trusted and (sig.name, sig.key_id) not in seen:
            seen.add((sig.name, sig.key_id))
            raw = sig.key_id.to_bytes(4, "big") + sig.signature
            kept += f"{note.SIGNATURE_PREFIX}{sig.name} {note.encode_base64(raw)}\n"
    return text + "\n" + kept


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the spec recommends
    timeout = 60  # seconds a client may stay silent: a stalled one cannot hold a thread forever
    server_version = "ledger-witness/1"
    witness: Witness  # set on the subclass made by make_server

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes; without this, Nagle's algorithm and the client's
        # delayed ACK add ~40 ms to every answer on a keep-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one structured line per request is written by _send instead

    def _send(self, response: Response, started: float, info: dict[str, Any]) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        fields = " ".join(f"{k}={v!r}" for k, v in info.items())
        log.info(
            "%s %s %s %d %.1fms %s",
            self.client_address[0],
            self.command,
            self.path,
            response.status,
            (time.monotonic() - started) * 1000,
            fields,
        )

    def do_POST(self) -> None:
        started = time.monotonic()
        if urlsplit(self.path).path != "/add-checkpoint":
            self._discard_body()
            self._send(_text(404, "not found"), started, {})
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True
            self._send(_text(411, "Content-Length required"), started, {})
            return
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(_text(413, "request body too large"), started, {"length": length})
            return
        body = self.rfile.read(length)
        try:
            response, info = self.witness.add_checkpoint(body)
        except Exception:  # a bug or a broken disk: answer 500, keep serving, log it
            log.exception("add-checkpoint failed")
            response, info = _text(500, "internal error"), {}
        self._send(response, started, info)

    def do_GET(self) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        response = _text(404, "not found")
        info: dict[str, Any] = {}
        match = _ORIGIN_HASH_PATH.fullmatch(url.path)
        if match:
            cosigned = self.witness.latest_note_by_origin_hash(match.group(1))
            if cosigned is not None:
                response = Response(200, cosigned.encode("utf-8"))
        elif url.path == "/checkpoint":
            origins = parse_qs(url.query).get("origin", [])
            if len(origins) == 1 and origins[0] in self.witness.logs:
                info["origin"] = origins[0]
                state = self.witness.latest(origins[0])
                if state is not None:
                    response = Response(200, state[3].encode("utf-8"))
        elif url.path == "/vkey":
            response = _text(200, "\n".join(s.vkey() for s in self.witness.signers))
        self._send(response, started, info)

    do_HEAD = do_GET

    def _discard_body(self) -> None:
        length = self.headers.get("Content-Length", "0")
        if length.isdigit() and int(length) <= MAX_BODY_BYTES:
            self.rfile.read(int(length))
        else:
            self.close_connection = True


def make_server(witness: Witness, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """An HTTP server for ``witness`` (not started)."""
    handler = type("WitnessHandler", (_Handler,), {"witness": witness})
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


# --------------------------------------------------------------------------------------------
# Configuration and command line
# --------------------------------------------------------------------------------------------


def parse_log_arg(value: str) -> tuple[str, note.Verifier]:
    """``[ORIGIN=]VKEY``: a log's note key; the origin defaults to the key's name."""
    value = value.strip()
    origin, sep, rest = value.partition("=")
    if sep and "+" not in origin and rest:
        vkey_text = rest
    else:
        origin, vkey_text = "", value
    try:
        verifier = note.Verifier.from_string(vkey_text)
    except note.NoteError as exc:
        raise WitnessError(f"log key {value!r}: {exc}") from None
    return origin or verifier.name, verifier


def load_log_keys(values: Sequence[str], files: Sequence[str]) -> dict[str, list[note.Verifier]]:
    """Logs from ``--log`` values and ``--logs`` files (one ``[ORIGIN=]VKEY`` a line)."""
    entries = list(values)
    for path in files:
        try:
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        entries.append(line)
        except OSError as exc:
            raise WitnessError(f"cannot read logs file {path!r}: {exc}") from None
    logs: dict[str, list[note.Verifier]] = {}
    for entry in entries:
        origin, verifier = parse_log_arg(entry)
        keys = logs.setdefault(origin, [])
        if verifier not in keys:
            keys.append(verifier)
    return logs


def load_signer(path: str) -> cosignature.CosignatureSigner:
    """Read the witness's private key file (warns if others can read it)."""
    try:
        mode = os.stat(path).st_mode
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise WitnessError(f"cannot read key file {path!r}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s is readable by others; chmod 600 it", path)
    try:
        return cosignature.CosignatureSigner.from_string(text.strip())
    except note.NoteError as exc:
        raise WitnessError(f"key file {path!r}: {exc}") from None


def _keygen(args: argparse.Namespace) -> int:
    alg = {"ed25519": cosignature.ALG_COSIGNATURE_V1, "ml-dsa-44": cosignature.ALG_MLDSA44}
    signer = cosignature.CosignatureSigner.generate(args.name, alg[args.alg])
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise WitnessError(f"{args.out} exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise WitnessError(f"cannot create {args.out}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(signer.to_string() + "\n")
    print(signer.vkey())
    return 0


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise WitnessError(f"--listen {value!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _serve(args: argparse.Namespace) -> int:
    signers = [load_signer(path) for path in args.key]
    logs = load_log_keys(args.log or [], args.logs or [])
    witness = Witness(args.db, signers, logs, journal_path=_journal_path(args))
    host, port = _parse_listen(args.listen)
    server = make_server(witness, host, port)
    bound_host, bound_port = host, int(server.server_address[1])  # the real port if 0

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "witness %s serving %s on http://%s:%d",
        " ".join(s.vkey() for s in signers),
        ", ".join(sorted(logs)),
        bound_host,
        bound_port,
    )
    # A machine-readable line on stdout, so whoever started us with port 0 learns the port.
    print(f"listening http://{bound_host}:{bound_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        witness.close()
        log.info("witness stopped")
    return 0


def _journal_path(args: argparse.Namespace) -> str | None:
    if args.no_journal:
        return None
    return str(args.journal) if args.journal else f"{args.db}.journal"


def _recover(args: argparse.Namespace) -> int:
    signers = [load_signer(path) for path in args.key]
    logs = load_log_keys(args.log or [], args.logs or [])
    journal_path = _journal_path(args)
    if journal_path is None:
        raise WitnessError("recover needs a journal")
    witness = Witness(args.db, signers, logs, journal_path=journal_path, check_journal=False)
    for change in witness.recover_from_journal() or ["nothing to recover"]:
        print(change)
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.witness",
        description="A transparency-log witness (c2sp.org/tlog-witness, cosignature/v1).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    keygen = sub.add_parser("keygen", help="create the witness's private key; prints its vkey")
    keygen.add_argument("--name", required=True, help="witness name, e.g. witness.example/w1")
    keygen.add_argument("--out", required=True, help="private key file to create (mode 0600)")
    keygen.add_argument(
        "--alg",
        choices=["ed25519", "ml-dsa-44"],
        default="ed25519",
        help="cosignature type: Ed25519 cosignature/v1 (default) or ML-DSA-44 subtree/v1",
    )
    vkey = sub.add_parser("vkey", help="print the vkey of a private key file")
    vkey.add_argument("--key", required=True)
    for name, help_text in (
        ("serve", "run the HTTP witness"),
        ("recover", "bring a restored database forward to the journal"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--db", required=True, help="SQLite file with the witness's state")
        p.add_argument(
            "--key",
            required=True,
            action="append",
            help="private key file (from keygen); repeat to cosign with several keys",
        )
        p.add_argument(
            "--log",
            action="append",
            metavar="[ORIGIN=]VKEY",
            help="a log to witness: its note verifier key (repeatable; several keys per origin "
            "are allowed, for key rotation)",
        )
        p.add_argument(
            "--logs", action="append", metavar="FILE", help="file with one [ORIGIN=]VKEY a line"
        )
        journal = p.add_mutually_exclusive_group()
        journal.add_argument(
            "--journal",
            metavar="FILE",
            help="append-only journal of cosigned states (default: DB.journal); best kept on "
            "storage that only grows and is not restored with the database",
        )
        journal.add_argument(
            "--no-journal", action="store_true", help="keep no journal (not recommended)"
        )
        if name == "serve":
            p.add_argument("--listen", default="127.0.0.1:7380", metavar="HOST:PORT")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "keygen":
            return _keygen(args)
        if args.command == "vkey":
            print(load_signer(args.key).vkey())
            return 0
        if args.command == "recover":
            return _recover(args)
        return _serve(args)
    except (WitnessError, note.NoteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
