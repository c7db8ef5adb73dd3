"""Tests for ledger.note: C2SP signed notes and tlog checkpoints."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.note import (
    MAX_SIGNATURES,
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    generate_signer,
    is_valid_key_name,
    key_id,
    open_checkpoint,
    open_note,
    parse_checkpoint_body,
    sign_checkpoint,
    split_note,
)

EM = "\u2014"

# Known answers from the package documentation of golang.org/x/mod/sumdb/note.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG_LINE = (
    f"{EM} PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_NOTE = GO_TEXT + "\n" + GO_SIG_LINE
# The doubly-signed example from the same documentation (EnochRoot re-signs the note).
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
ENOCH_SIG_LINE = (
    f"{EM} EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
# The worked example of the C2SP signed-note spec (revision d4c16da5 of C2SP/C2SP).
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    f"{EM} example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

ORIGIN = "portal.example/ledger"
ROOT = hashlib.sha256(b"some root").digest()


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate(ORIGIN)


# --------------------------------------------------------------------------------------------
# Known answers
# --------------------------------------------------------------------------------------------


def test_go_known_answer_sign_reproduces_exact_note() -> None:
    s = Signer.from_string(GO_SKEY)
    assert s.name == "PeterNeumann"
    assert s.key_id == 0xC74F20A3
    assert s.vkey() == GO_VKEY
    assert s.to_string() == GO_SKEY
    # Ed25519 is deterministic: the same key and text must give the same signature line.
    assert s.sign_note(GO_TEXT) == GO_NOTE


def test_go_known_answer_verify() -> None:
    v = Verifier.from_string(GO_VKEY)
    assert (v.name, v.key_id) == ("PeterNeumann", 0xC74F20A3)
    assert v.to_string() == GO_VKEY
    assert open_note(GO_NOTE, v) == GO_TEXT
    assert open_note(GO_NOTE.encode("utf-8"), [v]) == GO_TEXT


def test_go_doubly_signed_note() -> None:
    doubly = GO_NOTE + ENOCH_SIG_LINE
    peter = Verifier.from_string(GO_VKEY)
    enoch = Verifier.from_string(ENOCH_VKEY)
    assert open_note(doubly, peter) == GO_TEXT  # the other signature is ignored as unknown
    assert open_note(doubly, enoch) == GO_TEXT
    assert open_note(doubly, [peter, enoch]) == GO_TEXT
    text, sigs = split_note(doubly)
    assert text == GO_TEXT
    assert [(s.name, f"{s.key_id:08x}") for s in sigs] == [
        ("PeterNeumann", "c74f20a3"),
        ("EnochRoot", "af0cfe78"),
    ]


def test_c2sp_spec_example() -> None:
    assert open_note(SPEC_NOTE, Verifier.from_string(SPEC_VKEY)) == "This is an example message.\n"


def test_independent_reimplementation_accepts_our_note(signer: Signer) -> None:
    """Check a note we sign with hand-written parsing and raw cryptography primitives."""
    body = Checkpoint(ORIGIN, 1234, ROOT).body()
    signed = sign_checkpoint(Checkpoint(ORIGIN, 1234, ROOT), signer)
    # Format, by hand.
    assert signed.startswith(body + "\n")
    sig_line = signed[len(body) + 1 :]
    assert sig_line.endswith("\n") and sig_line.count("\n") == 1
    prefix = "\u2014 " + ORIGIN + " "
    assert sig_line.startswith(prefix)
    blob = base64.b64decode(sig_line[len(prefix) : -1], validate=True)
    assert len(blob) == 4 + 64
    # Key ID, by hand, from the published verifier key string.
    name, hex_id, key_b64 = signer.vkey().split("+", 2)
    raw_key = base64.b64decode(key_b64)
    assert raw_key[0] == 0x01 and len(raw_key) == 33
    expected_id = hashlib.sha256(name.encode() + b"\n" + b"\x01" + raw_key[1:]).digest()[:4]
    assert blob[:4] == expected_id
    assert hex_id == expected_id.hex()
    # Signature, by hand, over exactly the body bytes.
    Ed25519PublicKey.from_public_bytes(raw_key[1:]).verify(blob[4:], body.encode("utf-8"))
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(raw_key[1:]).verify(blob[4:], body.encode() + b"x")
    # Checkpoint body, by hand.
    assert body == f"{ORIGIN}\n1234\n{base64.b64encode(ROOT).decode()}\n"


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


def test_generate_round_trip() -> None:
    skey, vkey = generate_signer("hospital.example/log")
    s = Signer.from_string(skey)
    v = Verifier.from_string(vkey)
    assert s.vkey() == vkey
    assert (v.name, v.key_id) == (s.name, s.key_id)
    assert key_id(s.name, s.public_key) == s.key_id
    assert open_note(s.sign_note("hello\n"), v) == "hello\n"
    assert skey.startswith("PRIVATE+KEY+hospital.example/log+")


def test_signer_repr_hides_secret() -> None:
    s = Signer.from_string(GO_SKEY)
    assert "AYEKFALV" not in repr(s)
    assert "c74f20a3" in repr(s)


def _manglings(key: str) -> list[str]:
    """Every proper substring and every single-byte increment (as Go's TestNewVerifier)."""
    out = [key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1)]
    out = [k for k in out if k != key]
    for i in range(len(key)):
        out.append(key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :])
    return out


def test_mangled_verifier_keys_rejected() -> None:
    for bad in _manglings(GO_VKEY):
        if bad.strip() == GO_VKEY:
            continue
        with pytest.raises(NoteError):
            Verifier.from_string(bad)
    # Wrong length key and unknown algorithm, each with an adjusted key hash (from Go tests).
    with pytest.raises(NoteError):
        Verifier.from_string(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        )
    with pytest.raises(NoteError, match="algorithm"):
        Verifier.from_string("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_mangled_signer_keys_rejected() -> None:
    for bad in _manglings(GO_SKEY)[::7]:  # a sample: each parse derives a key, so stay quick
        if bad.strip() == GO_SKEY:
            continue
        with pytest.raises(NoteError) as excinfo:
            Signer.from_string(bad)
        assert "AYEKFALV" not in str(excinfo.value)  # never echo secret material


def test_private_key_given_as_verifier_key_is_refused_without_echo() -> None:
    with pytest.raises(NoteError, match="private signer key") as excinfo:
        Verifier.from_string(GO_SKEY)
    assert "AYEKFALV" not in str(excinfo.value)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u00a0b", "a\u2003b", "a\nb"])
def test_invalid_key_names(name: str) -> None:
    assert not is_valid_key_name(name)
    with pytest.raises(NoteError, match="invalid key name"):
        Signer.generate(name)


def test_valid_key_names() -> None:
    for name in ("a", "example.com/log42", "Ünïcödé/ключ", "x_y-z:1"):
        assert is_valid_key_name(name)


# --------------------------------------------------------------------------------------------
# Opening notes: rejections
# --------------------------------------------------------------------------------------------


def _resign_line(line: str, mutate) -> str:  # type: ignore[no-untyped-def]
    name_and_sig = line[2:-1]
    name, b64 = name_and_sig.split(" ")
    raw = bytearray(base64.b64decode(b64))
    mutate(raw)
    return f"{EM} {name} {base64.b64encode(bytes(raw)).decode()}\n"


def test_round_trip_and_tampering(signer: Signer) -> None:
    v = signer.verifier()
    body = "line one\nline two\n"
    signed = signer.sign_note(body)
    assert open_note(signed, v) == body

    with pytest.raises(NoteError, match="invalid signature"):
        open_note(signed.replace("line one", "line 0ne"), v)

    sig_line = signed[len(body) + 1 :]

    def flip_sig(raw: bytearray) -> None:
        raw[10] ^= 1

    with pytest.raises(NoteError, match="invalid signature"):
        open_note(body + "\n" + _resign_line(sig_line, flip_sig), v)

    def flip_id(raw: bytearray) -> None:
        raw[0] ^= 1

    # A changed key ID makes it someone else's signature: ignored, so nothing verifies.
    with pytest.raises(NoteError, match="not signed by the trusted key"):
        open_note(body + "\n" + _resign_line(sig_line, flip_id), v)


def test_wrong_key_same_name(signer: Signer) -> None:
    other = Signer.generate(signer.name)
    signed = other.sign_note("text\n")
    with pytest.raises(NoteError, match="different key ID"):
        open_note(signed, signer.verifier())


def test_unknown_key_only(signer: Signer) -> None:
    stranger = Signer.generate("someone.else/log")
    with pytest.raises(NoteError, match=r"not signed by the trusted key .*someone\.else/log"):
        open_note(stranger.sign_note("text\n"), signer.verifier())


def test_unknown_signatures_are_ignored_in_any_order(signer: Signer) -> None:
    stranger = Signer.generate("someone.else/log")
    body = "text\n"
    ours = signer.signature_line(body)
    theirs = stranger.signature_line(body)
    assert open_note(body + "\n" + theirs + ours, signer.verifier()) == body
    assert open_note(body + "\n" + ours + theirs, signer.verifier()) == body


def test_bad_known_signature_rejects_even_with_good_one(signer: Signer) -> None:
    body = "text\n"
    good = signer.signature_line(body)
    bad = signer.signature_line("other\n")  # valid key, signature over different text
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(body + "\n" + bad + good, signer.verifier())


@pytest.mark.parametrize(
    ("note_text", "reason"),
    [
        ("text\n" + GO_SIG_LINE, "no blank line"),
        (GO_TEXT + "\n", "no signature lines"),
        (GO_NOTE[:-1], "does not end with a newline"),
        (GO_TEXT + "\n" + GO_SIG_LINE.replace(EM, "--"), "em dash"),
        (GO_TEXT + "\n" + GO_SIG_LINE.replace(EM + " ", EM), "em dash"),
        (GO_TEXT + "\n" + f"{EM} PeterNeumann\n", "no signature"),
        (GO_TEXT + "\n" + f"{EM} PeterNeumann not*base64\n", "not valid base64"),
        (GO_TEXT + "\n" + f"{EM} PeterNeumann AAAA\n", "too short"),
        (GO_TEXT + "\n" + GO_SIG_LINE.replace("AM=", "AN="), "canonical"),
        (GO_TEXT + "\n" + GO_SIG_LINE.replace("PeterNeumann", "Peter+Neumann"), "key name"),
        (GO_NOTE.replace("\n", "\r\n"), "control character"),
        ("text\x00\n\n" + GO_SIG_LINE, "control character"),
        ("text\ud800\n\n" + GO_SIG_LINE, "UTF-8"),
        ("", "no blank line"),
    ],
)
def test_malformed_notes(note_text: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        open_note(note_text, Verifier.from_string(GO_VKEY))


def test_invalid_utf8_bytes() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        open_note(b"text\xff\n\n" + GO_SIG_LINE.encode(), Verifier.from_string(GO_VKEY))


def test_too_many_signatures() -> None:
    filler = Signer.generate("filler")
    body = "x\n"
    line = filler.signature_line(body)
    with pytest.raises(NoteError, match="more than"):
        open_note(body + "\n" + line * (MAX_SIGNATURES + 1), filler.verifier())
    assert open_note(body + "\n" + line * 16, filler.verifier()) == body  # spec minimum


def test_sign_note_requires_valid_text(signer: Signer) -> None:
    for bad in ("", "no newline", "tab\there\n", "cr\r\n"):
        with pytest.raises(NoteError):
            signer.sign_note(bad)


def test_text_with_blank_lines_round_trips(signer: Signer) -> None:
    body = "para one\n\npara two\n\n"
    assert open_note(signer.sign_note(body), signer.verifier()) == body


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def test_checkpoint_body_format() -> None:
    cp = Checkpoint("example.com/behind-the-sofa", 20852163, ROOT, ["ext one", "ext two"])
    assert cp.body() == (
        "example.com/behind-the-sofa\n20852163\n"
        + base64.b64encode(ROOT).decode()
        + "\next one\next two\n"
    )
    assert parse_checkpoint_body(cp.body()) == cp


def test_checkpoint_sign_open(signer: Signer) -> None:
    cp = Checkpoint(ORIGIN, 0, hashlib.sha256(b"").digest())
    signed = sign_checkpoint(cp, signer)
    assert open_checkpoint(signed, signer.verifier()) == cp
    assert open_checkpoint(signed, signer.verifier(), origin=ORIGIN) == cp
    with pytest.raises(NoteError, match="expected log"):
        open_checkpoint(signed, signer.verifier(), origin="other.example/log")


@settings(max_examples=60, deadline=None)
@given(
    origin=st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40
    ),
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1),
        max_size=3,
    ),
)
def test_checkpoint_round_trip_property(
    origin: str, size: int, root: bytes, extensions: list[str]
) -> None:
    signer = Signer.from_string(GO_SKEY)
    cp = Checkpoint(origin, size, root, extensions)
    assert open_checkpoint(sign_checkpoint(cp, signer), signer.verifier()) == cp


B64ROOT = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (f"{ORIGIN}\n01\n{B64ROOT}\n", "leading zeros"),
        (f"{ORIGIN}\n00\n{B64ROOT}\n", "leading zeros"),
        (f"{ORIGIN}\n+1\n{B64ROOT}\n", "decimal"),
        (f"{ORIGIN}\n-1\n{B64ROOT}\n", "decimal"),
        (f"{ORIGIN}\n 1\n{B64ROOT}\n", "decimal"),
        (f"{ORIGIN}\n1.0\n{B64ROOT}\n", "decimal"),
        (f"{ORIGIN}\n\u0661\n{B64ROOT}\n", "decimal"),  # Arabic-Indic digit one
        (f"{ORIGIN}\n0x10\n{B64ROOT}\n", "decimal"),
        (f"{ORIGIN}\n{2**64}\n{B64ROOT}\n", "too large"),
        (f"{ORIGIN}\n5\nnot base64!\n", "base64"),
        (f"{ORIGIN}\n5\n{B64ROOT.rstrip('=')}\n", "base64"),
        (f"{ORIGIN}\n5\n{base64.b64encode(ROOT[:31]).decode()}\n", "32 bytes"),
        (f"{ORIGIN}\n5\n", "at least 3 lines"),
        (f"\n5\n{B64ROOT}\n", "origin"),
        (f"{ORIGIN}\n5\n{B64ROOT}", "end with a newline"),
        (f"{ORIGIN}\n5\n{B64ROOT}\n\n", "extension"),
    ],
)
def test_malformed_checkpoint_bodies(body: str, reason: str, signer: Signer) -> None:
    with pytest.raises(NoteError, match=reason):
        parse_checkpoint_body(body)
    # Also when validly signed: a signature does not make a malformed body acceptable.
    if body.endswith("\n") and not body.endswith("\n\n"):
        with pytest.raises(NoteError, match=reason):
            open_checkpoint(signer.sign_note(body), signer.verifier())


def test_checkpoint_body_validation() -> None:
    for cp in (
        Checkpoint("", 1, ROOT),
        Checkpoint("a\nb", 1, ROOT),
        Checkpoint(ORIGIN, -1, ROOT),
        Checkpoint(ORIGIN, 1, ROOT[:31]),
        Checkpoint(ORIGIN, 1, ROOT, [""]),
        Checkpoint(ORIGIN, True, ROOT),  # type: ignore[arg-type]
    ):
        with pytest.raises(NoteError):
            cp.body()
