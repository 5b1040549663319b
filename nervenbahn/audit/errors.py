"""The root of the auditor toolkit's errors (hash chains, checkpoints, verification, the
access log), and the access log's own errors.

The access log's errors live here, beside its port (`nervenbahn.audit.access_log`) and its
storage, so that the audit feature imports no entrypoint; the API answers
`AccessLogUnavailableError` with 503 and the CLI exits 3 on it.
"""

from __future__ import annotations

from domain.errors import NervenbahnError

__all__ = [
    "AccessLogRetentionError",
    "AccessLogTamperedError",
    "AccessLogUnavailableError",
    "AuditError",
    "ProofError",
    "UnchainedAccessLogError",
]


class AuditError(NervenbahnError):
    """The audit trail cannot be used as it is: a chain, a checkpoint or a key is wrong."""


class ProofError(AuditError):
    """No proof can be given for an event against a signed checkpoint: the event is not in the
    signed tree, the checkpoint signs no tree, or the stored events no longer make it."""


# --- the access log ------------------------------------------------------------------------


class AccessLogUnavailableError(AuditError):
    """The access log cannot be written or read; personal data is not served without it."""


class AccessLogRetentionError(AuditError):
    """A retention period shorter than the data-protection ordinance allows was asked for."""


class AccessLogTamperedError(AuditError):
    """The access log's chain is broken where an operation needs it intact (e.g. a purge)."""


class UnchainedAccessLogError(AccessLogUnavailableError):
    """The access log holds entries without a hash-chain link; it is not opened.

    Either it was written by a release before the chain, or its hashes were removed (and its
    schema version reset). Chaining them is an explicit decision: `nervenbahn audit
    access-chain-existing --confirm`.
    """

    def __init__(self, path: str, unchained: int) -> None:
        self.path = path
        self.unchained = unchained
        super().__init__(
            f"the access log {path} has {unchained} entries without a hash-chain link (a log "
            "from before the chain, or its hashes were removed); it is not opened. Verify "
            "with `nervenbahn audit verify`; chain them only deliberately: `nervenbahn audit "
            "access-chain-existing --confirm`"
        )
