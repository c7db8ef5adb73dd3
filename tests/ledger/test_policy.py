"""ledger.policy: c2sp.org/tlog-policy files and quorum evaluation."""

from __future__ import annotations

import hashlib

import pytest

from ledger import note
from ledger.cosignature import CosignatureSigner, add_signature_lines
from ledger.policy import PolicyError, parse_policy, policy_from_keys

ORIGIN = "hospital.example/ledger"
LOG = note.Signer.generate(ORIGIN)
X = [CosignatureSigner.generate(f"x{i}.example") for i in range(3)]
Y = [CosignatureSigner.generate(f"y{i}.example") for i in range(3)]


def spec_example() -> str:
    """The two-level example of the spec, with real keys."""
    return (
        f"log {LOG.vkey()}\n\n"
        + "".join(f"witness X{i + 1} {w.vkey()}\n" for i, w in enumerate(X))
        + "group X-witnesses 2 X1 X2 X3\n\n"
        + "".join(f"witness Y{i + 1} {w.vkey()} https://y{i}.example/\n" for i, w in enumerate(Y))
        + "group Y-witnesses any Y1 Y2 Y3\n\n"
        + "group X-and-Y all X-witnesses Y-witnesses\n"
        + "quorum X-and-Y\n"
    )


def cosigned(*witnesses: CosignatureSigner, size: int = 10) -> str:
    body = note.Checkpoint(ORIGIN, size, hashlib.sha256(b"r%d" % size).digest()).body()
    text = LOG.sign_note(body)
    for w in witnesses:
        text = add_signature_lines(text, w.cosign(body, timestamp=1_700_000_000))
    return text


def test_spec_example_quorum() -> None:
    policy = parse_policy(spec_example())
    assert policy.quorum == "X-and-Y"
    assert policy.witnesses["Y2"].url == "https://y1.example/"
    assert policy.groups["X-witnesses"].threshold == 2
    assert policy.groups["X-and-Y"].threshold == 2
    assert policy.is_satisfied({"X1", "X3", "Y2"})
    assert not policy.is_satisfied({"X1", "Y1", "Y2", "Y3"})  # only one X
    assert not policy.is_satisfied({"X1", "X2", "X3"})  # no Y
    assert not policy.is_satisfied(set())


def test_check_verifies_log_and_cosignatures() -> None:
    policy = parse_policy(spec_example())
    result = policy.check(cosigned(X[0], X[2], Y[1]))
    assert result.satisfied
    assert sorted(result.cosignatures) == ["X1", "X3", "Y2"]
    assert result.cosignatures["Y2"].timestamp == 1_700_000_000
    assert result.checkpoint.origin == ORIGIN and result.log.origin == ORIGIN
    short = policy.check(cosigned(X[0], Y[1]))
    assert not short.satisfied
    with pytest.raises(PolicyError, match=r"quorum .* not met: cosigned by X1, Y2"):
        policy.require(cosigned(X[0], Y[1]))


def test_unknown_log_or_forged_log_signature_is_refused() -> None:
    policy = parse_policy(spec_example())
    other = note.Signer.generate(ORIGIN)  # same origin, different key
    body = note.Checkpoint(ORIGIN, 1, bytes(32)).body()
    with pytest.raises(PolicyError, match="not signed by the trusted key"):
        policy.check(other.sign_note(body))
    stranger = note.Signer.generate("elsewhere.example")
    with pytest.raises(PolicyError, match="not a log of the policy"):
        policy.check(stranger.sign_note(note.Checkpoint("elsewhere.example", 1, bytes(32)).body()))
    with pytest.raises(PolicyError, match="expected log"):
        policy.check(cosigned(), origin="other")


def test_quorum_none_and_single_witness() -> None:
    assert parse_policy(f"log {LOG.vkey()}\nquorum none\n").check(cosigned()).satisfied
    policy = parse_policy(f"witness W {X[0].vkey()}\nquorum W\n# no log lines: known otherwise\n")
    assert policy.is_satisfied({"W"}) and not policy.is_satisfied(set())


def test_comments_whitespace_and_tabs() -> None:
    text = f"  # comment\n\t log \t{LOG.vkey()}  \n\nwitness\tW\t{X[0].vkey()}\nquorum W \n"
    policy = parse_policy(text)
    assert len(policy.logs) == 1 and "W" in policy.witnesses


def test_policy_from_keys_k_of_n() -> None:
    policy = policy_from_keys([LOG.verifier()], [w.verifier() for w in X], 2)
    assert policy.require(cosigned(X[0], X[1])).satisfied
    assert not policy.check(cosigned(X[0])).satisfied
    assert policy.describe_quorum().startswith("2 of 3")
    assert policy_from_keys([LOG.verifier()], [], 0).check(cosigned()).satisfied
    with pytest.raises(PolicyError, match="more than the 1 witness"):
        policy_from_keys([LOG.verifier()], [X[0].verifier()], 2)
    with pytest.raises(PolicyError, match="given twice"):
        policy_from_keys([LOG.verifier()], [X[0].verifier(), X[0].verifier()], 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no quorum line"),
        ("quorum none\nquorum none\n", "exactly one quorum"),
        ("quorum W\n", "not a witness or group defined on an earlier line"),
        (f"quorum W\nwitness W {X[0].vkey()}\n", "defined on an earlier line"),
        (f"witness W {X[0].vkey()}\nwitness W {X[1].vkey()}\nquorum W\n", "already defined"),
        (f"witness A {X[0].vkey()}\nwitness B {X[0].vkey()}\nquorum A\n", "duplicate key"),
        (f"log {LOG.vkey()}\nlog {LOG.vkey()}\nquorum none\n", "duplicate key"),
        (f"witness none {X[0].vkey()}\nquorum none\n", "reserved"),
        (f"witness W {LOG.vkey()}\nquorum W\n", "type 0x01"),
        (f"log {X[0].vkey()}\nquorum none\n", "log key"),
        (f"witness W {X[0].vkey()}\ngroup G 2 W\nquorum G\n", "more than the group's 1"),
        (f"witness W {X[0].vkey()}\ngroup G 0 W\nquorum G\n", "must be 'all', 'any'"),
        (f"witness W {X[0].vkey()}\ngroup G 01 W\nquorum G\n", "must be 'all', 'any'"),
        (f"witness W {X[0].vkey()}\ngroup G any W W\nquorum G\n", "listed twice"),
        (f"witness W {X[0].vkey()}\ngroup G any\nquorum G\n", "at least one member"),
        (f"witness W {X[0].vkey()}\ngroup G any none\nquorum G\n", "cannot be a group member"),
        (f"witness W {X[0].vkey()}\ngroup G any V\nquorum G\n", "'V' is not a witness or group"),
        ("quorum none\r\n", "Windows line endings"),
        ("quorum none\x00\n", "control character"),
        ("quorums none\n", "unknown keyword"),
        (f"witness W {X[0].vkey()} url extra\nquorum W\n", "expected 'witness"),
        (f"log {LOG.vkey()[:-4]}\nquorum none\n", "line 1: log key"),
    ],
)
def test_malformed_policies_are_refused_with_the_line(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)


def test_names_are_opaque_octets() -> None:
    # "K" and the Kelvin sign (U+212A) are different names.
    kelvin = "\u212a"
    text = f"witness K {X[0].vkey()}\nwitness {kelvin} {X[1].vkey()}\ngroup G all K {kelvin}\n"
    text += "quorum G\n"
    policy = parse_policy(text.encode("utf-8"))
    assert set(policy.witnesses) == {"K", kelvin}
