"""The root of the auditor toolkit's errors (hash chains, checkpoints, verification)."""

from __future__ import annotations

from domain.errors import NervenbahnError

__all__ = ["AuditError"]


class AuditError(NervenbahnError):
    """The audit trail cannot be used as it is: a chain, a checkpoint or a key is wrong."""
