"""Secrets for the local demo.

A hospital deployment passes every secret through the environment. The zero-setup demo
(DEBUG=true) instead generates them once into an untracked file, so that nothing secret is
ever committed and a restart keeps the same keys (otherwise encrypted rows and signed
checkpoints from the previous run would become unreadable).
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

# OIDC_RSA_PRIVATE_KEY signs SMART apps' id_tokens (RS256): a PEM, or its base64 on one line
# (how the demo's file keeps it).
SECRET_NAMES = ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "LEDGER_SIGNING_KEY", "OIDC_RSA_PRIVATE_KEY")


def generate_secret(name: str) -> str:
    if name == "SECRET_KEY":
        return secrets.token_urlsafe(64)
    if name == "FIELD_ENCRYPTION_KEYS":
        # A key ring: "id:base64(32 bytes)" entries, comma separated, the first one is used
        # to wrap new data keys; the others stay readable for rotation.
        return "k1:" + base64.b64encode(os.urandom(32)).decode()
    if name == "LEDGER_SIGNING_KEY":
        from ledger.note import generate_signer

        signer_key, _vkey = generate_signer(f"hospital-portal-demo-{secrets.token_hex(4)}")
        return signer_key
    if name == "OIDC_RSA_PRIVATE_KEY":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return base64.b64encode(pem).decode()
    raise KeyError(name)


def pem_secret(value: str) -> str:
    """A PEM secret as given: the PEM itself, or its base64 on one line."""
    value = value.strip()
    if value.startswith("-----BEGIN"):
        return value
    return base64.b64decode(value).decode()


def ensure_local_secrets(path: Path) -> None:
    """Create (or complete) the local secrets file; existing values are never replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existing: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                existing[key.strip()] = value.strip()
    missing = [n for n in SECRET_NAMES if not existing.get(n)]
    if not missing:
        return
    lines = [] if path.exists() else ["# Generated for the local demo. Never commit this file.\n"]
    lines += [f"{name}={generate_secret(name)}\n" for name in missing]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.writelines(lines)
