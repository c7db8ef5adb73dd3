"""ledger.cosignature: c2sp.org/tlog-cosignature, checked against the spec text by hand."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger import cosignature, note
from ledger.cosignature import (
    Cosignature,
    CosignatureSigner,
    CosignatureVerifier,
    add_signature_lines,
    cosignature_timestamp,
    cosigned_message,
    parse_signature_lines,
    verify_cosignatures,
)

EM = "\u2014"
ORIGIN = "hospital.example/ledger"
ROOT = hashlib.sha256(b"root").digest()
BODY = f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n"

# The example of c2sp.org/tlog-cosignature: its witness line carries "time 1679315147".
SPEC_CHECKPOINT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    f"{EM} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
    "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    f"{EM} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dl"
    "rDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)


@pytest.fixture(scope="module")
def witness() -> CosignatureSigner:
    return CosignatureSigner.generate("witness.example/w1")


@pytest.fixture(scope="module")
def log_signer() -> note.Signer:
    return note.Signer.generate(ORIGIN)


def test_cosignature_verifies_by_the_spec_recomputed_by_hand(witness: CosignatureSigner) -> None:
    line = witness.cosign(BODY, timestamp=1_700_000_123)
    assert line.startswith(f"{EM} witness.example/w1 ") and line.endswith("\n")
    raw = base64.b64decode(line.rstrip("\n").split(" ")[2], validate=True)
    # key ID = SHA-256(<name> || "\n" || 0x04 || 32-byte public key)[:4]
    assert raw[:4] == hashlib.sha256(b"witness.example/w1\n\x04" + witness.public_key).digest()[:4]
    # timestamped_signature: u64 big-endian timestamp, then the 64-byte Ed25519 signature.
    assert len(raw) == 4 + 8 + 64
    assert struct.unpack(">Q", raw[4:12])[0] == 1_700_000_123
    message = b"cosignature/v1\ntime 1700000123\n" + BODY.encode()
    Ed25519PublicKey.from_public_bytes(witness.public_key).verify(raw[12:], message)
    with pytest.raises(InvalidSignature):  # the time is covered
        Ed25519PublicKey.from_public_bytes(witness.public_key).verify(
            raw[12:], message.replace(b"1700000123", b"1700000124")
        )


def test_vkey_has_type_0x04_and_its_key_id(witness: CosignatureSigner) -> None:
    name, hex_id, b64 = witness.vkey().split("+", 2)
    assert name == "witness.example/w1"
    key = base64.b64decode(b64)
    assert key == b"\x04" + witness.public_key
    assert int(hex_id, 16) == witness.key_id
    assert CosignatureVerifier.from_string(witness.vkey()) == witness.verifier()
    # The same Ed25519 key as a note key (0x01) has a different key ID: it is not interchangeable.
    assert note.key_id(name, witness.public_key) != witness.key_id


def test_log_vkey_is_refused_as_a_witness_key_and_the_reverse(
    witness: CosignatureSigner, log_signer: note.Signer
) -> None:
    with pytest.raises(note.NoteError, match="0x04"):
        CosignatureVerifier.from_string(log_signer.vkey())
    with pytest.raises(note.NoteError, match="witness cosignature key"):
        note.Verifier.from_string(witness.vkey())


def test_signer_key_round_trips_and_accepts_a_plain_note_key() -> None:
    signer = CosignatureSigner.generate("w.example")
    skey = signer.to_string()
    assert skey.startswith("PRIVATE+KEY+w.example+")
    assert base64.b64decode(skey.split("+", 4)[4])[0] == 0x04
    again = CosignatureSigner.from_string(skey)
    assert again.vkey() == signer.vkey()
    assert "PRIVATE" not in repr(again)
    # transparency-dev's generate_keys writes an ordinary 0x01 note key for a witness.
    plain, _ = note.generate_signer("w.example")
    as_witness = CosignatureSigner.from_string(plain)
    assert as_witness.public_key == note.Signer.from_string(plain).public_key


def test_verify_cosignatures_on_a_log_signed_note(
    witness: CosignatureSigner, log_signer: note.Signer
) -> None:
    signed = log_signer.sign_note(BODY)
    cosigned = add_signature_lines(signed, witness.cosign(BODY, timestamp=1_700_000_000))
    # The log's signature still opens with ordinary signed-note tooling: the witness line is
    # from an unknown key to it and ignored.
    assert note.open_checkpoint(cosigned, log_signer.verifier()).size == 42
    found = verify_cosignatures(cosigned, [witness.verifier()])
    assert found == [
        Cosignature("witness.example/w1", witness.key_id, 1_700_000_000, witness.verifier())
    ]
    assert found[0].time.isoformat() == "2023-11-14T22:13:20+00:00"
    # Unknown witness: no cosignature counted, no error.
    other = CosignatureSigner.generate("witness.example/w1")
    assert verify_cosignatures(cosigned, [other.verifier()]) == []


def test_tampered_checkpoint_or_time_is_refused(
    witness: CosignatureSigner, log_signer: note.Signer
) -> None:
    line = witness.cosign(BODY, timestamp=1_700_000_000)
    forged_body = BODY.replace("\n42\n", "\n43\n")
    forged = log_signer.sign_note(forged_body) + line  # the log re-signs; the witness did not
    with pytest.raises(note.NoteError, match="invalid cosignature by witness"):
        verify_cosignatures(forged, [witness.verifier()])
    raw = bytearray(base64.b64decode(line.rstrip("\n").split(" ")[2]))
    raw[11] ^= 1  # shift the timestamp by one second
    moved = f"{EM} witness.example/w1 {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(note.NoteError, match="invalid cosignature"):
        verify_cosignatures(log_signer.sign_note(BODY) + moved, [witness.verifier()])


def test_extension_lines_are_covered(witness: CosignatureSigner) -> None:
    body = BODY + "extension line\n"
    line = witness.cosign(body, timestamp=5)
    assert cosigned_message(body, 5).endswith(b"extension line\n")
    note_text = body + "\n" + line
    assert verify_cosignatures(note_text, [witness.verifier()])[0].timestamp == 5
    with pytest.raises(note.NoteError):
        verify_cosignatures(BODY + "\n" + line, [witness.verifier()])


@pytest.mark.parametrize("bad", [0, -1, 1 << 63, True, 1.5])
def test_timestamp_must_be_a_nonzero_63_bit_int(witness: CosignatureSigner, bad: object) -> None:
    with pytest.raises(note.NoteError, match="timestamp"):
        witness.cosign(BODY, timestamp=bad)  # type: ignore[arg-type]


def test_only_checkpoints_are_cosigned(witness: CosignatureSigner) -> None:
    with pytest.raises(note.NoteError):
        witness.cosign("just a note\n", timestamp=1)


def test_spec_example_timestamp_is_read_from_the_signature() -> None:
    _, sigs = note.split_note(SPEC_CHECKPOINT)
    assert [s.name for s in sigs] == ["example.com/behind-the-sofa", "witness.example.com/w1"]
    assert cosignature_timestamp(sigs[1]) == 1679315147


def test_witness_response_lines_parse_and_attach(
    witness: CosignatureSigner, log_signer: note.Signer
) -> None:
    response = witness.cosign(BODY, timestamp=7) + witness.cosign(BODY, timestamp=8)
    sigs = parse_signature_lines(response)
    assert [cosignature_timestamp(s) for s in sigs] == [7, 8]
    signed = log_signer.sign_note(BODY)
    once = add_signature_lines(signed, response)
    assert add_signature_lines(once, response) == once  # attaching twice changes nothing
    with pytest.raises(note.NoteError):
        parse_signature_lines("not a signature line\n")
    with pytest.raises(note.NoteError):
        parse_signature_lines(b"")


def test_mldsa44_witness_cosignature_verifies() -> None:
    mldsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.mldsa")
    from cryptography.hazmat.primitives import serialization

    key = mldsa.MLDSA44PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    verifier = CosignatureVerifier.from_public_key("pq.example", public, cosignature.ALG_MLDSA44)
    assert CosignatureVerifier.from_string(verifier.to_string()) == verifier
    # cosigned_message per the spec: label, name<1..255>, u64 time, origin<1..255>, start, end, hash
    message = (
        b"subtree/v1\n\x00"
        + bytes([len(b"pq.example")])
        + b"pq.example"
        + struct.pack(">Q", 99)
        + bytes([len(ORIGIN)])
        + ORIGIN.encode()
        + struct.pack(">QQ", 0, 42)
        + ROOT
    )
    raw = verifier.key_id.to_bytes(4, "big") + struct.pack(">Q", 99) + key.sign(message)
    line = f"{EM} pq.example {base64.b64encode(raw).decode()}\n"
    found = verify_cosignatures(BODY + "\n" + line, [verifier])
    assert [c.timestamp for c in found] == [99]


def test_mldsa44_signer_round_trips_and_cosigns(log_signer: note.Signer) -> None:
    pytest.importorskip("cryptography.hazmat.primitives.asymmetric.mldsa")
    signer = CosignatureSigner.generate("pq.example", cosignature.ALG_MLDSA44)
    skey = signer.to_string()
    assert base64.b64decode(skey.split("+", 4)[4])[0] == 0x06
    assert len(base64.b64decode(skey.split("+", 4)[4])) == 33  # type byte + 32-byte seed
    again = CosignatureSigner.from_string(skey)
    assert again.vkey() == signer.vkey()
    name, hex_id, b64 = signer.vkey().split("+", 2)
    assert name == "pq.example"
    key = base64.b64decode(b64)
    assert key[0] == 0x06 and len(key) == 1 + 1312
    assert int(hex_id, 16) == int.from_bytes(hashlib.sha256(b"pq.example\n" + key).digest()[:4])
    line = signer.cosign(BODY, timestamp=1_700_000_000)
    assert len(base64.b64decode(line.split(" ")[2])) == 4 + 8 + 2420
    cosigned = log_signer.sign_note(BODY) + line
    found = verify_cosignatures(cosigned, [CosignatureVerifier.from_string(signer.vkey())])
    assert [c.timestamp for c in found] == [1_700_000_000]
    # The ML-DSA message does not cover extension lines (the spec's choice), but the root does.
    forged = log_signer.sign_note(BODY.replace("\n42\n", "\n41\n")) + line
    with pytest.raises(note.NoteError, match="invalid cosignature"):
        verify_cosignatures(forged, [signer.verifier()])
