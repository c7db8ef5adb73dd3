"""Transparency log trust policies (c2sp.org/tlog-policy): which logs, which witnesses, what quorum.

A policy file, e.g.::

    log example.org/ledger+1a2b3c4d+AQ...            # the hospital's log key (type 0x01)
    witness W1 w1.example+5e6f7a8b+BA... https://w1.example/
    witness W2 w2.example+9c0d1e2f+BA...
    witness W3 w3.example+3a4b5c6d+BA...
    group majority 2 W1 W2 W3
    quorum majority

A checkpoint satisfies the policy when it is signed by one of the logs (the log key's name is
the checkpoint origin) and the witnesses with valid cosignatures on it satisfy the quorum:
a witness is satisfied when it cosigned; a group ``k`` (``any`` = 1, ``all`` = n) when at
least k of its members are; ``quorum none`` needs no cosignature.

Parsing is strict (a policy is security configuration: a typo must not silently weaken it)
and every error names the line.  Standard library and ``cryptography`` only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ledger import cosignature, note

__all__ = [
    "Group",
    "LogKey",
    "Policy",
    "PolicyError",
    "PolicyResult",
    "WitnessKey",
    "parse_policy",
    "policy_from_keys",
]

MAX_ENTRIES = 256
"""The spec recommends supporting at least 32 logs, witnesses and groups; refuse absurd files."""

NONE = "none"
_WS = re.compile(r"[ \t]+")
_DECIMAL = re.compile(r"[1-9][0-9]*")


class PolicyError(ValueError):
    """A policy file is malformed, or a checkpoint does not satisfy the policy."""


@dataclass(frozen=True)
class LogKey:
    """A ``log`` line: the log's note key (its name is the origin) and an optional URL."""

    verifier: note.Verifier
    url: str | None = None

    @property
    def origin(self) -> str:
        return self.verifier.name


@dataclass(frozen=True)
class WitnessKey:
    """A ``witness`` line: policy-local name, cosignature key, optional submission URL."""

    name: str
    verifier: cosignature.CosignatureVerifier
    url: str | None = None


@dataclass(frozen=True)
class Group:
    """A ``group`` line: satisfied when at least ``threshold`` of ``members`` are."""

    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class PolicyResult:
    """The outcome of checking one signed checkpoint against a policy."""

    checkpoint: note.Checkpoint
    log: LogKey
    cosignatures: dict[str, cosignature.Cosignature]
    """Verified cosignatures by policy witness name."""
    satisfied: bool


@dataclass(frozen=True)
class Policy:
    """A parsed policy.  ``quorum`` is a witness name, a group name, or ``"none"``."""

    logs: tuple[LogKey, ...]
    witnesses: Mapping[str, WitnessKey]
    groups: Mapping[str, Group]
    quorum: str

    def witness_verifiers(self) -> list[cosignature.CosignatureVerifier]:
        return [w.verifier for w in self.witnesses.values()]

    def log_for(self, origin: str) -> LogKey | None:
        for log in self.logs:
            if log.origin == origin:
                return log
        return None

    def is_satisfied(self, cosigned: Iterable[str]) -> bool:
        """Whether the witnesses named in ``cosigned`` (policy names) satisfy the quorum."""
        have = set(cosigned)
        if self.quorum == NONE:
            return True
        memo: dict[str, bool] = {}

        def ok(name: str) -> bool:
            if name in memo:
                return memo[name]
            if name in self.witnesses:
                result = name in have
            else:
                group = self.groups[name]
                result = sum(1 for m in group.members if ok(m)) >= group.threshold
            memo[name] = result
            return result

        return ok(self.quorum)

    def check(self, note_text: str | bytes, *, origin: str | None = None) -> PolicyResult:
        """Verify a cosigned checkpoint: log signature, then witness cosignatures.

        Raises :class:`PolicyError` when no listed log signed it (or a signature or cosignature
        by a listed key is invalid); returns a result whose ``satisfied`` says whether the
        quorum is met.  ``origin`` additionally requires that log.
        """
        if isinstance(note_text, (bytes, bytearray)):
            try:
                note_text = bytes(note_text).decode("utf-8")
            except UnicodeDecodeError:
                raise PolicyError("checkpoint is not valid UTF-8") from None
        try:
            text, _ = note.split_note(note_text)
            claimed = note.parse_checkpoint_body(text).origin
        except note.NoteError as exc:
            raise PolicyError(f"checkpoint: {exc}") from None
        if origin is not None and claimed != origin:
            raise PolicyError(f"checkpoint is for log {claimed!r}, expected log {origin!r}")
        logs = [log for log in self.logs if log.origin == claimed]
        if not logs:
            known = ", ".join(repr(log.origin) for log in self.logs) or "none"
            raise PolicyError(f"checkpoint origin {claimed!r} is not a log of the policy ({known})")
        try:
            checkpoint = note.open_checkpoint(note_text, [log.verifier for log in logs])
            cosigs = cosignature.verify_cosignatures(note_text, self.witness_verifiers())
        except note.NoteError as exc:
            raise PolicyError(str(exc)) from None
        by_key = {(w.verifier.name, w.verifier.key_id): w.name for w in self.witnesses.values()}
        named = {by_key[(c.name, c.key_id)]: c for c in cosigs}
        present = {(sig.name, sig.key_id) for sig in note.split_note(note_text)[1]}
        signed_by = next(log for log in logs if (log.origin, log.verifier.key_id) in present)
        return PolicyResult(
            checkpoint=checkpoint,
            log=signed_by,
            cosignatures=named,
            satisfied=self.is_satisfied(named),
        )

    def require(self, note_text: str | bytes, *, origin: str | None = None) -> PolicyResult:
        """Like :meth:`check`, but raise :class:`PolicyError` when the quorum is not met."""
        result = self.check(note_text, origin=origin)
        if not result.satisfied:
            got = ", ".join(sorted(result.cosignatures)) or "no witness"
            raise PolicyError(f"witness quorum {self.describe_quorum()} not met: cosigned by {got}")
        return result

    def describe_quorum(self) -> str:
        """A short human description of the quorum rule."""
        if self.quorum == NONE:
            return "none"
        if self.quorum in self.witnesses:
            return f"witness {self.quorum}"
        group = self.groups[self.quorum]
        return f"{group.threshold} of {len(group.members)} ({' '.join(group.members)})"


def _fields(line: str) -> list[str]:
    return [f for f in _WS.split(line.strip(" \t")) if f]


def parse_policy(text: str | bytes) -> Policy:
    """Parse a tlog-policy file strictly; raises :class:`PolicyError` naming the bad line."""
    if isinstance(text, str):
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise PolicyError("policy text is not valid UTF-8") from None
    elif isinstance(text, (bytes, bytearray)):
        data = bytes(text)
    else:
        raise PolicyError("policy must be text")
    for offset, byte in enumerate(data):
        if (byte < 0x20 and byte not in (0x09, 0x0A)) or byte == 0x7F:
            line = data.count(b"\n", 0, offset) + 1
            hint = " (a file saved with Windows line endings?)" if byte == 0x0D else ""
            raise PolicyError(f"line {line}: control character 0x{byte:02x} is not allowed{hint}")
    # Names are opaque octet strings: surrogateescape keeps non-UTF-8 octets distinct.
    decoded = data.decode("utf-8", errors="surrogateescape")
    logs: list[LogKey] = []
    witnesses: dict[str, WitnessKey] = {}
    groups: dict[str, Group] = {}
    quorum: str | None = None
    public_keys: dict[bytes, int] = {}

    def key_once(raw: bytes, number: int) -> None:
        if raw in public_keys:
            raise PolicyError(
                f"line {number}: duplicate key: the same public key is already on line "
                f"{public_keys[raw]}"
            )
        public_keys[raw] = number

    def defined(name: str) -> bool:
        return name in witnesses or name in groups

    for number, raw_line in enumerate(decoded.split("\n"), start=1):
        stripped = raw_line.strip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        fields = _fields(stripped)
        keyword, args = fields[0], fields[1:]
        if len(logs) + len(witnesses) + len(groups) >= MAX_ENTRIES:
            raise PolicyError(f"line {number}: more than {MAX_ENTRIES} logs, witnesses and groups")
        if keyword == "log":
            if not 1 <= len(args) <= 2:
                raise PolicyError(f"line {number}: expected 'log <vkey> [<url>]'")
            try:
                verifier = note.Verifier.from_string(args[0])
            except note.NoteError as exc:
                raise PolicyError(f"line {number}: log key: {exc}") from None
            key_once(verifier.public_key, number)
            logs.append(LogKey(verifier, args[1] if len(args) == 2 else None))
        elif keyword == "witness":
            if not 2 <= len(args) <= 3:
                raise PolicyError(f"line {number}: expected 'witness <name> <vkey> [<url>]'")
            name = args[0]
            if name == NONE:
                raise PolicyError(f"line {number}: 'none' is reserved and cannot name a witness")
            if defined(name):
                raise PolicyError(f"line {number}: the name {name!r} is already defined")
            try:
                wkey = cosignature.CosignatureVerifier.from_string(args[1])
            except note.NoteError as exc:
                raise PolicyError(f"line {number}: witness {name!r} key: {exc}") from None
            key_once(wkey.public_key, number)
            witnesses[name] = WitnessKey(name, wkey, args[2] if len(args) == 3 else None)
        elif keyword == "group":
            if len(args) < 3:
                raise PolicyError(
                    f"line {number}: expected 'group <name> <all|any|k> <member>...' "
                    "with at least one member"
                )
            name, rule, members = args[0], args[1], args[2:]
            if name == NONE:
                raise PolicyError(f"line {number}: 'none' is reserved and cannot name a group")
            if defined(name):
                raise PolicyError(f"line {number}: the name {name!r} is already defined")
            seen: set[str] = set()
            for member in members:
                if member == NONE:
                    raise PolicyError(f"line {number}: 'none' cannot be a group member")
                if not defined(member):
                    raise PolicyError(
                        f"line {number}: group member {member!r} is not a witness or group "
                        "defined on an earlier line"
                    )
                if member in seen:
                    raise PolicyError(f"line {number}: {member!r} is listed twice in the group")
                seen.add(member)
            if rule == "all":
                threshold = len(members)
            elif rule == "any":
                threshold = 1
            elif _DECIMAL.fullmatch(rule):
                threshold = int(rule)
                if threshold > len(members):
                    raise PolicyError(
                        f"line {number}: threshold {threshold} is more than the group's "
                        f"{len(members)} members"
                    )
            else:
                raise PolicyError(
                    f"line {number}: group threshold {rule!r} must be 'all', 'any' or a decimal "
                    "number k with 1 <= k <= the number of members"
                )
            groups[name] = Group(name, threshold, tuple(members))
        elif keyword == "quorum":
            if len(args) != 1:
                raise PolicyError(f"line {number}: expected 'quorum <name>'")
            if quorum is not None:
                raise PolicyError(f"line {number}: a policy has exactly one quorum line")
            if args[0] != NONE and not defined(args[0]):
                raise PolicyError(
                    f"line {number}: quorum {args[0]!r} is not a witness or group defined on an "
                    "earlier line (or 'none')"
                )
            quorum = args[0]
        else:
            raise PolicyError(
                f"line {number}: unknown keyword {keyword!r} (expected log, witness, group or "
                "quorum)"
            )
    if quorum is None:
        raise PolicyError("the policy has no quorum line (use 'quorum none' for no witnesses)")
    return Policy(
        logs=tuple(logs),
        witnesses=witnesses,
        groups=groups,
        quorum=quorum,
    )


def policy_from_keys(
    log_keys: Iterable[note.Verifier],
    witness_keys: Iterable[cosignature.CosignatureVerifier],
    quorum: int,
) -> Policy:
    """A k-of-n policy built from keys given on a command line.

    Each witness is named by its key name (``#2``, ``#3``... appended if two share a name);
    ``quorum`` 0 means no cosignature is required.
    """
    logs = tuple(LogKey(v) for v in log_keys)
    witnesses: dict[str, WitnessKey] = {}
    seen_keys: set[bytes] = set()
    for wkey in witness_keys:
        if wkey.public_key in seen_keys:
            raise PolicyError(f"witness key {wkey.name} is given twice")
        seen_keys.add(wkey.public_key)
        name, n = wkey.name, 1
        while name in witnesses or name in (NONE, "quorum"):
            n += 1
            name = f"{wkey.name}#{n}"
        witnesses[name] = WitnessKey(name, wkey)
    if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 0:
        raise PolicyError("the quorum must be a non-negative number of witnesses")
    if quorum > len(witnesses):
        raise PolicyError(f"quorum {quorum} is more than the {len(witnesses)} witness key(s) given")
    if quorum == 0:
        return Policy(logs=logs, witnesses=witnesses, groups={}, quorum=NONE)
    group = Group("quorum", quorum, tuple(witnesses))
    return Policy(logs=logs, witnesses=witnesses, groups={"quorum": group}, quorum="quorum")
