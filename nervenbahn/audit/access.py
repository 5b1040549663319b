"""The access log as checkpoints and verification see it: its head with its identity, and a
verifier that opens the log only when called (one place for the CLI, `serve` and the demo)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict

from nervenbahn.audit.access_log import ChainedAccessLog
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.audit.anchors import check_anchors
from nervenbahn.audit.hashing import ChainHead, ChainVerification, SignedAnchor
from nervenbahn.audit.verify import AccessLogCheck, AccessLogMissing

__all__ = [
    "AccessLogToSign",
    "access_log_check",
    "access_log_head",
    "access_log_signed",
    "access_log_to_sign",
]


class AccessLogToSign(TypedDict):
    """What a checkpoint signs of the access log (keyword arguments of `write_checkpoint`)."""

    access_log: ChainHead | None
    access_log_id: str | None
    access_log_anchors: list[SignedAnchor]


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


def access_log_to_sign(path: Path) -> AccessLogToSign:
    """The head, identity and retention anchors of the access log at `path`, to sign into a
    checkpoint (nothing if there is no log)."""
    if not path.exists():
        return AccessLogToSign(access_log=None, access_log_id=None, access_log_anchors=[])
    log = SQLiteAccessLog(path)
    try:
        return access_log_signed(log)
    finally:
        log.close()


def access_log_signed(log: ChainedAccessLog) -> AccessLogToSign:
    """What a checkpoint signs of an open access log: head, identity, retention anchors."""
    return AccessLogToSign(access_log=log.head(), access_log_id=log.log_id,
                           access_log_anchors=[a.signed() for a in log.anchors()])


def access_log_check(
    path: Path, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> AccessLogCheck | AccessLogMissing:
    """The access log at `path` for `verify_store`: its identity, and a verifier that opens
    it when called and checks its chain against the signed heads and each retention anchor
    against the signed anchors (`AccessLogMissing` naming the path if there is no log: it
    fails verification if a signed checkpoint names its head)."""
    if not path.exists():
        return AccessLogMissing(str(path))
    log = SQLiteAccessLog(path)  # only its identity: an anchor, the head or any entry may
    try:  # hold a value of the wrong type, which the verifier reports
        log_id = log.log_id
    finally:
        log.close()

    def verify_access_log(
        expected: Sequence[ChainHead], anchors: Sequence[tuple[int, SignedAnchor]]
    ) -> ChainVerification:
        log = SQLiteAccessLog(path)
        try:
            return check_anchors(log.verify(expected), anchors, clock())
        finally:
            log.close()

    return AccessLogCheck(log_id, verify_access_log)
