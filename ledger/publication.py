"""Publication: the log's checkpoints cosigned by independent witnesses (c2sp.org/tlog-witness).

After each checkpoint commits, `publication_enqueue` asks a worker (`ledger.publish`) to send
the latest checkpoint to every configured witness (`ledger.cosign`, one task per witness):
`add-checkpoint` with the size that witness last cosigned and a consistency proof from it. A
witness answers with its cosignature (stored, verified, in `Cosignature`), 409 with the size
it has (resynchronise and send again), or a refusal (403/404/422: recorded on its
`WitnessState`, named on the ledger health page, not retried on every checkpoint). A witness
that is down is retried with exponential back-off; anchoring never waits for any of this.

A checkpoint is *witnessed* once the cosignatures stored for it satisfy the quorum of the
witness policy (c2sp.org/tlog-policy, k of n). With no witnesses configured the log is
published without witnesses: nothing is sent, nothing is witnessed, nothing fails.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ledger import cosignature, merkle, note, policy
from ledger.keys import log_origin, log_verifier
from ledger.models import Checkpoint, Cosignature, Entry, WitnessState
from ledger.proofs import consistency_proof_for, merkle_nodes_fetch

logger = logging.getLogger(__name__)

# Back-off of a witness that does not answer: 2, 4, 8 ... seconds, at most BACKOFF_MAX.
BACKOFF_BASE = 2.0
BACKOFF_MAX = 300.0
# A witness that refused (403/404/422) is asked again this long after, in case its operator
# has fixed its configuration; a change of its URL or key in ours retries at once.
STOPPED_RETRY = timedelta(hours=1)
# Enqueue debounce: one `ledger.publish` per this many seconds per process, sent with this
# countdown, so that it publishes the newest checkpoint cut meanwhile (a trailing edge: a
# checkpoint cut after the countdown has passed enqueues again).
PUBLISH_DEBOUNCE = 0.25
MAX_RESPONSE_BYTES = 64 * 1024
# Rows of cosignatures looked at to find a witnessed checkpoint (a witness long down under a
# k-of-k quorum leaves many checkpoints cosigned by the others only).
WITNESSED_SCAN_ROWS = 5000
_last_enqueue = float("-inf")


class WitnessUnavailable(Exception):
    """The witness did not answer usefully (network error, timeout, 5xx): retry later."""

    delay: float = BACKOFF_BASE  # seconds until the next attempt (set when recorded)


class WitnessConfigError(ValueError):
    """LEDGER_WITNESSES / LEDGER_WITNESS_POLICY / LEDGER_WITNESS_QUORUM cannot be used."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Witness:
    name: str  # the witness's name in the policy
    url: str  # its submission prefix (add-checkpoint is under it); may be empty
    vkey: str  # its cosignature/v1 verifier key
    verifier: cosignature.CosignatureVerifier


@dataclass(frozen=True)
class WitnessSetup:
    """The configured witnesses and quorum (or why they cannot be used)."""

    witnesses: tuple[Witness, ...] = ()
    policy: policy.Policy | None = None
    source: str = ""  # where it came from, for the health page
    error: str = ""
    by_name: dict[str, Witness] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        return bool(self.witnesses) and not self.error

    def quorum_met(self, names: set[str]) -> bool:
        return self.policy is not None and self.configured and policy_quorum_met(self, names)

    def describe_quorum(self) -> str:
        if not self.configured or self.policy is None:
            return "none"
        return policy_describe(self)


def witnesses_policy_text(spec: str, quorum: str) -> str:
    """LEDGER_WITNESSES ("name=url=vkey,...") and LEDGER_WITNESS_QUORUM (k, "all" or "any";
    default all) as a tlog-policy file, so both ways of configuring are one policy."""
    lines: list[str] = []
    names: list[str] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        pieces = item.split("=", 2)
        if len(pieces) != 3 or not all(p.strip() for p in pieces):
            raise WitnessConfigError(
                f"LEDGER_WITNESSES item {item.split('=', 1)[0]!r} is not name=url=vkey"
            )
        name, url, vkey = (p.strip() for p in pieces)
        if any(ch.isspace() for ch in name + url + vkey):
            raise WitnessConfigError(f"LEDGER_WITNESSES item {name!r} contains whitespace")
        lines.append(f"witness {name} {vkey} {url}")
        names.append(name)
    if not names:
        return ""
    quorum = (quorum or "all").strip().lower()
    if quorum not in ("all", "any"):
        try:
            k = int(quorum)
        except ValueError:
            raise WitnessConfigError(
                f"LEDGER_WITNESS_QUORUM {quorum!r} is not a number, 'all' or 'any'"
            ) from None
        if not 1 <= k <= len(names):
            raise WitnessConfigError(
                f"LEDGER_WITNESS_QUORUM {k} must be between 1 and the {len(names)} witnesses"
            )
        quorum = str(k)
    lines.append(f"group portal-witnesses {quorum} {' '.join(names)}")
    lines.append("quorum portal-witnesses")
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=4)
def _setup_for(policy_path: str, spec: str, quorum: str) -> WitnessSetup:
    try:
        if policy_path and spec:
            raise WitnessConfigError(
                "set either LEDGER_WITNESS_POLICY or LEDGER_WITNESSES, not both"
            )
        if policy_path:
            try:
                text = Path(policy_path).read_text(encoding="utf-8")
            except OSError as exc:
                raise WitnessConfigError(
                    f"LEDGER_WITNESS_POLICY {policy_path!r} cannot be read: {exc.strerror}"
                ) from None
            source = f"policy file {policy_path}"
        else:
            text = witnesses_policy_text(spec, quorum)
            source = "LEDGER_WITNESSES"
        if not text:
            return WitnessSetup()
        parsed = policy_parse(text)
        witnesses = tuple(policy_witnesses(parsed))
    except (WitnessConfigError, note.NoteError, ValueError) as exc:
        logger.error("ledger: witnesses not used: %s", exc)
        return WitnessSetup(error=str(exc))
    return WitnessSetup(
        witnesses=witnesses,
        policy=parsed,
        source=source,
        by_name={w.name: w for w in witnesses},
    )


def witness_setup() -> WitnessSetup:
    """The witnesses from settings (parsed once per value)."""
    return _setup_for(
        getattr(settings, "LEDGER_WITNESS_POLICY", ""),
        getattr(settings, "LEDGER_WITNESSES", ""),
        str(getattr(settings, "LEDGER_WITNESS_QUORUM", "") or ""),
    )


# --------------------------------------------------------------------------------------------
# Witness states
# --------------------------------------------------------------------------------------------


def witness_states_sync() -> list[WitnessState]:
    """One WitnessState per configured witness; a changed URL or key starts afresh (the size
    it had cosigned is its own to tell us again, by a 409)."""
    setup = witness_setup()
    states = {s.name: s for s in WitnessState.objects.filter(name__in=list(setup.by_name))}
    out: list[WitnessState] = []
    for witness in setup.witnesses:
        state = states.get(witness.name)
        if state is None:
            state, _ = WitnessState.objects.get_or_create(
                name=witness.name, defaults={"url": witness.url, "vkey": witness.vkey}
            )
        if (state.url, state.vkey) != (witness.url, witness.vkey):
            WitnessState.objects.filter(pk=state.pk).update(
                url=witness.url, vkey=witness.vkey, stopped=False, attempts=0,
                next_attempt_at=None, last_error="", last_status=None,
            )  # fmt: skip
            state.refresh_from_db()
        out.append(state)
    return out


def _backoff(attempts: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_BASE ** max(1, attempts))


def _record_failure(state: WitnessState, status: int | None, message: str, *, stop: bool) -> float:
    """Record a failed attempt; returns the back-off (seconds) before the next one."""
    now = timezone.now()
    attempts = state.attempts + 1
    delay = STOPPED_RETRY.total_seconds() if stop else _backoff(attempts)
    WitnessState.objects.filter(pk=state.pk).update(
        attempts=attempts, next_attempt_at=now + timedelta(seconds=delay), stopped=stop,
        last_status=status, last_error=message[:500], last_error_at=now, updated_at=now,
    )  # fmt: skip
    log = logger.error if stop else logger.warning
    log("ledger: witness %s: %s", state.name, message[:200])
    return delay


# --------------------------------------------------------------------------------------------
# The protocol (client side)
# --------------------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _timeout() -> float:
    return float(getattr(settings, "LEDGER_WITNESS_TIMEOUT", 5.0))


def _http(request: urllib.request.Request) -> tuple[int, str, bytes]:
    """(status, content type, body) of any answer; WitnessUnavailable if there is none."""
    try:
        with urllib.request.urlopen(request, timeout=_timeout()) as response:  # noqa: S310 - configured https/http URL
            return (
                response.status,
                response.headers.get_content_type(),
                response.read(MAX_RESPONSE_BYTES),
            )
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get_content_type(), exc.read(MAX_RESPONSE_BYTES)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WitnessUnavailable(f"no answer from {request.full_url}: {reason}") from None


def add_checkpoint_body(old_size: int, proof: list[bytes], signed_note: str) -> bytes:
    """The tlog-witness add-checkpoint request body."""
    lines = [f"old {old_size}", *(_b64(h) for h in proof)]
    return ("".join(line + "\n" for line in lines) + "\n" + signed_note).encode("utf-8")


def add_checkpoint_post(
    url: str, old_size: int, proof: list[bytes], signed_note: str
) -> tuple[int, str, bytes]:
    request = urllib.request.Request(  # noqa: S310 - the witness URL is configuration
        url.rstrip("/") + "/add-checkpoint",
        data=add_checkpoint_body(old_size, proof, signed_note),
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )
    return _http(request)


def witness_checkpoint_fetch(url: str, origin: str) -> tuple[int, bytes]:
    """GET <prefix>/<hex SHA-256 of the origin>/checkpoint (tlog-witness's monitoring
    retrieval): the latest checkpoint the witness cosigned for this log."""
    origin_hash = hashlib.sha256(origin.encode("utf-8")).hexdigest()
    request = urllib.request.Request(f"{url.rstrip('/')}/{origin_hash}/checkpoint", method="GET")  # noqa: S310
    status, _, body = _http(request)
    return status, body


def _size_from_409(body: bytes) -> int | None:
    text = body.decode("ascii", errors="replace")
    if not text.endswith("\n") or not text[:-1].isdigit():
        return None
    return int(text[:-1])


# --------------------------------------------------------------------------------------------
# Cosigning one witness (the task's body)
# --------------------------------------------------------------------------------------------


def _store_cosignatures(
    checkpoint: Checkpoint, witness: Witness, body: bytes
) -> list[cosignature.Cosignature]:
    """Verify the response's lines against the witness's key on this checkpoint; store those."""
    try:
        cosigned = cosignature.add_signature_lines(checkpoint.note, body.decode("utf-8"))
        verified = cosignature.verify_cosignatures(cosigned, [witness.verifier])
    except (note.NoteError, UnicodeDecodeError) as exc:
        raise WitnessUnavailable(f"its answer is not a valid cosignature: {exc}") from None
    if not verified:
        raise WitnessUnavailable("its answer holds no cosignature by its configured key")
    lines = {sig.key_id: sig for sig in cosignature.parse_signature_lines(body)}
    rows = []
    for cosig in verified:
        sig = lines[cosig.key_id]
        raw = sig.key_id.to_bytes(4, "big") + sig.signature
        rows.append(
            Cosignature(
                checkpoint=checkpoint,
                witness=witness.name,
                vkey=witness.vkey,
                timestamp=cosig.timestamp,
                line=f"{note.SIGNATURE_PREFIX}{sig.name} {_b64(raw)}\n",
            )
        )
    # Another task may have stored the same witness's cosignature of it meanwhile.
    Cosignature.objects.bulk_create(rows, ignore_conflicts=True)
    return verified


def witness_cosign(*, witness_id: int, checkpoint_id: int | None = None) -> str:
    """Send a checkpoint to one witness and store its cosignature: `checkpoint_id`, the one
    `ledger.publish` chose for every witness due, or else the latest. Idempotent: returns
    what happened ("cosigned", "current", "refused", "unconfigured", "empty"). Raises
    WitnessUnavailable (after recording it) when the witness should be retried.

    One checkpoint for all: each task taking the latest at its own moment, under a steady
    stream of checkpoints (one per anchoring batch) the witnesses cosigned different ones,
    and a k-of-n quorum was met only when the stream paused (commit -> witnessed p99 3 s at
    2,000 events/s in bench/ledger.py, 7 of 199 checkpoints witnessed)."""
    setup = witness_setup()
    state = WitnessState.objects.filter(pk=witness_id).first()
    witness = setup.by_name.get(state.name) if state is not None else None
    if state is None or witness is None or not setup.configured:
        return "unconfigured"
    if (state.url, state.vkey) != (witness.url, witness.vkey):
        witness_states_sync()
        state.refresh_from_db()
    checkpoint = None
    if checkpoint_id is not None:
        checkpoint = Checkpoint.objects.filter(pk=checkpoint_id).first()
    if checkpoint is None:
        checkpoint = Checkpoint.objects.order_by("-size").first()
    if checkpoint is None:
        _lease_release(state)
        return "empty"
    if Cosignature.objects.filter(
        checkpoint=checkpoint, witness=witness.name, vkey=witness.vkey
    ).exists():
        _lease_release(state)
        return "current"
    if not witness.url:
        _record_failure(state, None, "has no URL configured", stop=True)
        return "refused"
    old = state.size
    try:
        for _ in range(3):  # the second and third only after a 409 told us its size
            if old > checkpoint.size:
                # Another task may have sent it a newer checkpoint meanwhile: go on from that.
                newer = Checkpoint.objects.order_by("-size").first()
                if newer is not None and newer.size >= old:
                    checkpoint = newer
                    if Cosignature.objects.filter(
                        checkpoint=checkpoint, witness=witness.name, vkey=witness.vkey
                    ).exists():
                        _lease_release(state)
                        return "current"
            if old > checkpoint.size:
                _record_failure(
                    state, None,
                    f"has cosigned a tree of size {old}, larger than this log's latest "
                    f"checkpoint ({checkpoint.size}): the log lost entries (run verify_ledger)",
                    stop=True,
                )  # fmt: skip
                return "refused"
            try:
                proof = (
                    consistency_proof_for(old_size=old, new_size=checkpoint.size)
                    if 0 < old < checkpoint.size
                    else []
                )
            except (ValueError, merkle.MissingNodeError):
                _record_failure(
                    state, None,
                    f"has cosigned size {old}, from which this log cannot prove consistency",
                    stop=True,
                )  # fmt: skip
                return "refused"
            status, _, body = add_checkpoint_post(witness.url, old, proof, checkpoint.note)
            if status == 200:
                verified = _store_cosignatures(checkpoint, witness, body)
                when = datetime.fromtimestamp(max(c.timestamp for c in verified), tz=UTC)
                # Never backwards: a concurrent task may have had a larger one cosigned.
                WitnessState.objects.filter(pk=state.pk, size__lte=checkpoint.size).update(
                    size=checkpoint.size, cosigned_at=when
                )
                WitnessState.objects.filter(pk=state.pk).update(
                    attempts=0, next_attempt_at=None, stopped=False, last_status=200,
                    last_error="", updated_at=timezone.now(),
                )  # fmt: skip
                if Checkpoint.objects.filter(size__gt=checkpoint.size).exists():
                    # Rounds asked for meanwhile found this one out: one more for them.
                    publication_enqueue()
                return "cosigned"
            if status == 409:
                size = _size_from_409(body)
                if size is None:
                    raise WitnessUnavailable("answered 409 without its tree size")
                WitnessState.objects.filter(pk=state.pk).update(size=size)
                if size == old:
                    raise WitnessUnavailable(f"answered 409 with the size sent ({size})")
                old = size
                continue
            if status in (400, 403, 404, 422):
                reason = {
                    400: "refused the request as malformed",
                    403: "does not accept this log's signature (is the log's key configured?)",
                    404: "does not know this log (is its origin configured there?)",
                    422: "refused the consistency proof: this checkpoint does not extend the "
                    f"tree of size {old} it cosigned (a fork or a rewritten log)",
                }[status]
                _record_failure(state, status, f"HTTP {status}: {reason}", stop=True)
                return "refused"
            raise WitnessUnavailable(f"answered HTTP {status}")
        raise WitnessUnavailable("its size kept changing (another submitter?)")
    except WitnessUnavailable as exc:
        state.refresh_from_db()
        exc.delay = _record_failure(state, None, str(exc), stop=False)
        raise


def witnesses_due() -> list[int]:
    """Ids of configured witnesses to send the latest checkpoint to now: behind it, and not
    in back-off (a witness in back-off is retried by its own task or by the sweep)."""
    if not witness_setup().configured:
        return []
    latest = Checkpoint.objects.order_by("-size").values_list("size", flat=True).first()
    if latest is None:
        return []
    now = timezone.now()
    return [
        state.pk
        for state in witness_states_sync()
        if (state.next_attempt_at is None or state.next_attempt_at <= now)
        and (state.size != latest or state.stopped or not state.cosigned_at)
    ]


def checkpoint_to_publish() -> int | None:
    """The id of the checkpoint `ledger.publish` sends to every witness due: the latest."""
    return Checkpoint.objects.order_by("-size").values_list("pk", flat=True).first()


def _cosign_lease() -> timedelta:
    # Long enough for a queued task's three requests (the 409 resynchronisation) to time out.
    return timedelta(seconds=3 * _timeout() + 5)


def publication_round_start() -> tuple[int | None, list[int]]:
    """For `ledger.publish`: the checkpoint to send (the latest) and the witnesses to send it
    to, each claimed by a lease on its next attempt until its task has answered (or the
    lease has passed: a lost task). While any answering witness's task of the last round is
    still out, no round starts: rounds cut faster than a busy publisher worker ran them
    piled up in its queue (commit -> witnessed p99 2.3 s at 2,000 events/s in
    bench/ledger.py, the lag growing through the load), and witnesses sent rounds one at a
    time fell out of step and cosigned different checkpoints. A witness failing (in back-off,
    retried by its own task) holds no round back."""
    checkpoint_id = checkpoint_to_publish()
    if checkpoint_id is None:
        return None, []
    due = set(witnesses_due())
    if not due:
        return checkpoint_id, []
    now = timezone.now()
    with transaction.atomic():
        # Locked: of two publish tasks at once, one starts the round, for every witness.
        states = list(
            WitnessState.objects.select_for_update()
            .filter(name__in=list(witness_setup().by_name))
            .order_by("pk")
        )
        if any(
            s.attempts == 0 and not s.stopped and s.next_attempt_at and s.next_attempt_at > now
            for s in states
        ):
            return checkpoint_id, []
        claimed = [
            s.pk
            for s in states
            if s.pk in due and (s.next_attempt_at is None or s.next_attempt_at <= now)
        ]
        WitnessState.objects.filter(pk__in=claimed).update(next_attempt_at=now + _cosign_lease())
    return checkpoint_id, claimed


def _lease_release(state: WitnessState) -> None:
    """The task answered without sending (nothing new to send): the witness is free again."""
    WitnessState.objects.filter(pk=state.pk, stopped=False, attempts=0).update(next_attempt_at=None)


def publication_enqueue() -> None:
    """After a checkpoint commits: ask a worker to publish (debounced per process; never
    raises, the beat sweep publishes anything left behind)."""
    global _last_enqueue
    if not witness_setup().configured:
        return
    if time.monotonic() - _last_enqueue < PUBLISH_DEBOUNCE:
        return
    from ledger.tasks import publish

    _last_enqueue = time.monotonic()
    try:
        publish.apply_async(countdown=PUBLISH_DEBOUNCE, retry=False)
    except Exception as exc:  # broker down: the sweep will publish
        logger.warning("ledger: could not enqueue publication (%s)", type(exc).__name__)


# --------------------------------------------------------------------------------------------
# Witnessed checkpoints
# --------------------------------------------------------------------------------------------


def _first_witnessed(rows, setup: WitnessSetup) -> int | None:
    """Rows (checkpoint id, witness, vkey) grouped by checkpoint in the order wanted: the
    first checkpoint whose current witnesses' cosignatures meet the quorum."""
    current: int | None = None
    names: set[str] = set()
    for checkpoint_id, name, vkey in rows:
        if checkpoint_id != current:
            if current is not None and setup.quorum_met(names):
                return current
            current, names = checkpoint_id, set()
        witness = setup.by_name.get(name)
        if witness is not None and witness.vkey == vkey:
            names.add(name)
    if current is not None and setup.quorum_met(names):
        return current
    return None


def checkpoint_witnessed(*, covering: int | None = None) -> Checkpoint | None:
    """The latest witnessed checkpoint, or with `covering=i` the smallest witnessed one that
    includes entry i. None if there is none (or no witnesses are configured)."""
    setup = witness_setup()
    if not setup.configured:
        return None
    rows = Cosignature.objects.order_by(
        "checkpoint__size" if covering is not None else "-checkpoint__size"
    )
    if covering is not None:
        rows = rows.filter(checkpoint__size__gt=covering)
    found = _first_witnessed(
        rows.values_list("checkpoint_id", "witness", "vkey")[:WITNESSED_SCAN_ROWS].iterator(
            chunk_size=100
        ),
        setup,
    )
    return Checkpoint.objects.filter(pk=found).first() if found is not None else None


def cosigned_note(checkpoint: Checkpoint) -> str:
    """The checkpoint's signed note with the stored cosignature lines of the configured
    witnesses appended (a reader who knows only the log's key still verifies it: signed-note
    verifiers ignore lines by keys they do not know)."""
    setup = witness_setup()
    lines = [
        line
        for name, vkey, line in Cosignature.objects.filter(checkpoint=checkpoint)
        .order_by("witness")
        .values_list("witness", "vkey", "line")
        if name in setup.by_name and setup.by_name[name].vkey == vkey
    ]
    return checkpoint.note + "".join(lines)


def checkpoint_published() -> tuple[Checkpoint | None, bool]:
    """What /ledger/checkpoint serves: the latest witnessed checkpoint, else (no witnesses,
    or none witnessed yet) the latest; and whether it is witnessed."""
    witnessed = checkpoint_witnessed()
    if witnessed is not None:
        return witnessed, True
    return Checkpoint.objects.order_by("-size").first(), False


def events_witnessed(*, event_pks: list[int]) -> set[int]:
    """Which of these events are in a witnessed checkpoint (two queries whatever the count)."""
    if not event_pks:
        return set()
    latest = checkpoint_witnessed()
    if latest is None:
        return set()
    return set(
        Entry.objects.filter(event_id__in=event_pks, index__lt=latest.size).values_list(
            "event_id", flat=True
        )
    )


def publication_summary() -> dict:
    """For the ledger health page: witnesses, quorum, latest witnessed checkpoint."""
    setup = witness_setup()
    states = {s.name: s for s in WitnessState.objects.all()} if setup.configured else {}
    witnessed = checkpoint_witnessed()
    return {
        "configured": setup.configured,
        "error": setup.error,
        "source": setup.source,
        "quorum": setup.describe_quorum(),
        "witnessed": witnessed,
        "witnesses": [
            {"name": w.name, "url": w.url, "vkey": w.vkey, "state": states.get(w.name)}
            for w in setup.witnesses
        ],
    }


# --------------------------------------------------------------------------------------------
# Verification against the witnesses (verify_ledger)
# --------------------------------------------------------------------------------------------


@dataclass
class WitnessFinding:
    witness: str
    problem: str
    evidence: str  # the witness's cosigned checkpoint, verbatim


def _log_root(size: int) -> bytes | None:
    try:
        return merkle.root_hash(size, merkle_nodes_fetch)
    except (ValueError, merkle.MissingNodeError):
        return None


def _judge(
    witness: Witness, cosigned: str, log_size: int, how: str
) -> tuple[WitnessFinding | None, str | None]:
    """Compare one checkpoint a witness cosigned with the log: (finding, warning)."""
    try:
        cp = note.open_checkpoint(cosigned, log_verifier(), origin=log_origin())
        verified = cosignature.verify_cosignatures(cosigned, [witness.verifier])
    except note.NoteError as exc:
        return None, f"witness {witness.name}: its checkpoint ({how}) does not verify: {exc}"
    if not verified:
        return None, f"witness {witness.name}: its checkpoint ({how}) carries no cosignature of it"
    stamp = datetime.fromtimestamp(max(c.timestamp for c in verified), tz=UTC)
    said = f"witness {witness.name} cosigned size {cp.size} at {stamp:%Y-%m-%d %H:%M:%S}Z"
    if cp.size > log_size:
        return WitnessFinding(
            witness.name,
            f"{said} ({how}), but the log has only {log_size} entries: entries were cut from "
            "its tail and the head rewound",
            cosigned,
        ), None
    root = _log_root(cp.size)
    if root is None:
        return None, f"{said} ({how}); the log cannot compute its tree at that size"
    if root != cp.root:
        return WitnessFinding(
            witness.name,
            f"{said} ({how}) with root {_b64(cp.root)}, but the log's tree of that size has "
            f"root {_b64(root)}: two different trees of one size (a fork)",
            cosigned,
        ), None
    return None, None


def witness_findings(*, log_size: int) -> tuple[list[WitnessFinding], list[str]]:
    """Ask each witness for its latest cosigned checkpoint (GET; else the 409 size trick)
    and check the stored cosignatures: a cosigned size beyond the log, or a cosigned root
    that is not the log's at that size, is a finding quoting the cosigned checkpoint. A
    witness that cannot be asked is a warning."""
    setup = witness_setup()
    findings: list[WitnessFinding] = []
    warnings: list[str] = []
    if setup.error:
        warnings.append(f"witnesses are configured but not usable: {setup.error}")
    if not setup.configured:
        return findings, warnings
    origin = log_origin()
    if setup.policy is not None and setup.policy.logs:
        log = setup.policy.log_for(origin)
        if log is None or log.verifier.to_string() != log_verifier().to_string():
            warnings.append(
                f"the witness policy lists no log {origin!r} with this log's key: readers "
                "given that policy file will refuse this log's receipts"
            )
    for witness in setup.witnesses:
        seen: set[str] = set()
        # Stored cosignatures: each checked against the log (a stored one is evidence too).
        for checkpoint_note, line in (
            Cosignature.objects.filter(witness=witness.name, vkey=witness.vkey)
            .order_by("-checkpoint__size")
            .values_list("checkpoint__note", "line")[:1]
        ):
            cosigned = checkpoint_note + line
            finding, warning = _judge(witness, cosigned, log_size, "stored cosignature")
            findings += [finding] if finding else []
            warnings += [warning] if warning else []
            seen.add(cosigned)
        if not witness.url:
            continue
        try:
            status, body = witness_checkpoint_fetch(witness.url, origin)
        except WitnessUnavailable as exc:
            warnings.append(f"witness {witness.name} could not be asked: {exc}")
            continue
        if status == 200:
            text = body.decode("utf-8", errors="replace")
            if text not in seen:
                finding, warning = _judge(witness, text, log_size, "served by the witness")
                findings += [finding] if finding else []
                warnings += [warning] if warning else []
            continue
        if status == 404:
            # Never cosigned for this log, or no monitoring endpoint: ask its size instead.
            size, warning = _witness_size(witness)
            if warning:
                warnings.append(warning)
            elif size is not None and size > log_size:
                findings.append(
                    WitnessFinding(
                        witness.name,
                        f"witness {witness.name} says it has cosigned a tree of size {size} "
                        f"(its 409 answer), but the log has only {log_size} entries",
                        f"409 {size}",
                    )
                )
            continue
        warnings.append(f"witness {witness.name} answered HTTP {status} for its checkpoint")
    return findings, warnings


def _witness_size(witness: Witness) -> tuple[int | None, str | None]:
    """The 409 trick: submit the latest checkpoint with old size 0. A witness that has
    cosigned anything for this log answers 409 with its size (and changes nothing); one that
    never has cosigns it, which is what it is for."""
    latest = Checkpoint.objects.order_by("-size").first()
    if latest is None:
        return None, None
    try:
        status, _, body = add_checkpoint_post(witness.url, 0, [], latest.note)
    except WitnessUnavailable as exc:
        return None, f"witness {witness.name} could not be asked: {exc}"
    if status == 409:
        return _size_from_409(body), None
    if status == 200:
        with transaction.atomic(), contextlib.suppress(WitnessUnavailable):
            _store_cosignatures(latest, witness, body)
        return latest.size, None
    return None, f"witness {witness.name} answered HTTP {status} when asked for its size"


# --------------------------------------------------------------------------------------------
# The policy (c2sp.org/tlog-policy), through ledger.policy
# --------------------------------------------------------------------------------------------


def policy_parse(text: str) -> policy.Policy:
    return policy.parse_policy(text)


def policy_witnesses(parsed: policy.Policy) -> list[Witness]:
    return [
        Witness(name=w.name, url=w.url or "", vkey=w.verifier.to_string(), verifier=w.verifier)
        for w in parsed.witnesses.values()
    ]


def policy_quorum_met(setup: WitnessSetup, names: set[str]) -> bool:
    assert setup.policy is not None
    return setup.policy.is_satisfied(names)


def policy_describe(setup: WitnessSetup) -> str:
    assert setup.policy is not None
    return setup.policy.describe_quorum()
