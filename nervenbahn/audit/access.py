"""The access log as checkpoints and verification see it: its head with its identity, and a
verifier that opens the log only when called (one place for the CLI, `serve` and the demo)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nervenbahn.api.access_log_sqlite import SQLiteAccessLog
from nervenbahn.audit.hashing import ChainHead, ChainVerification
from nervenbahn.audit.verify import AccessLogCheck

__all__ = ["access_log_check", "access_log_head"]


def access_log_head(path: Path) -> tuple[ChainHead | None, str | None]:
    """The head of the access log at `path` and the log's identity, to sign into a checkpoint
    ((None, None) if there is no log)."""
    if not path.exists():
        return None, None
    log = SQLiteAccessLog(path)
    try:
        return log.head(), log.log_id
    finally:
        log.close()


def access_log_check(path: Path) -> AccessLogCheck | None:
    """The access log at `path` for `verify_store`: its identity, and a verifier that opens
    it when called (None if there is no log)."""
    _, log_id = access_log_head(path)
    if log_id is None:
        return None

    def verify_access_log(expected: Sequence[ChainHead]) -> ChainVerification:
        log = SQLiteAccessLog(path)
        try:
            return log.verify(expected)
        finally:
            log.close()

    return AccessLogCheck(log_id, verify_access_log)
