"""The progress bar of long management commands lives with the ledger's verifier, which
imports nothing from the portal; the portal's commands use the same one."""

from ledger.progress import Progress

__all__ = ["Progress"]
