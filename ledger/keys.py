"""The log's signing key and name, from settings (LEDGER_SIGNING_KEY, LEDGER_ORIGIN)."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings

from ledger import note


@lru_cache(maxsize=4)
def _signer_for(key: str) -> note.Signer:
    return note.Signer.from_string(key)


def log_signer() -> note.Signer:
    return _signer_for(settings.LEDGER_SIGNING_KEY)


def log_verifier() -> note.Verifier:
    return log_signer().verifier()


def log_origin() -> str:
    return settings.LEDGER_ORIGIN or log_signer().name
