"""Retention anchors against signed checkpoints: a purge counts only if a signature vouches
for it.

Anyone who can write the access log's file can insert a retention anchor and delete the
entries before it (the anchor and permit tables accept INSERT): the chain then starts at the
forged anchor and verifies. So every anchor in the log must be named, with the same values,
by a trusted signed checkpoint (`audit access-purge` signs one right after its purge), its
last entry must have been at least the legal retention old when it was purged, and it must
continue the anchor before it. A signed anchor the log no longer holds is reported too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from nervenbahn.audit.access_log import (
    MINIMUM_RETENTION_DAYS,
    AccessLogVerification,
    RetentionAnchor,
)
from nervenbahn.audit.hashing import MAX_BREAKS, ChainBreak, SignedAnchor

__all__ = ["check_anchors", "describe_anchor"]


def check_anchors(
    verification: AccessLogVerification,
    signed: Sequence[tuple[int, SignedAnchor]],
    now: datetime,
) -> AccessLogVerification:
    """The verification with every anchor's vouching checkpoints (`vouched_by`) and a break
    for each anchor that is not vouched for, purged too young or in the future, or does not
    continue the one before, and for each signed anchor missing from the log (`signed`:
    checkpoint sequence and the anchor it names)."""
    found: list[ChainBreak] = []
    vouched: dict[int, tuple[int, ...]] = {}
    previous = 0
    for anchor in verification.anchors:
        vouched[anchor.seq] = tuple(seq for seq, s in signed if s == anchor.signed())
        found.extend(_problems(anchor, previous, vouched[anchor.seq], signed, now))
        previous = anchor.position
    held = {a.signed() for a in verification.anchors}
    for sequence, named in signed:
        if named not in held and named.seq not in vouched:
            found.append(ChainBreak(named.position, (
                f"signed checkpoint #{sequence} names retention anchor #{named.seq} (up to "
                f"position {named.position}, purged at {named.purged_at}), which the log no "
                "longer holds readable (removed, or damaged: see its break)")))
    breaks = (*found, *verification.all_breaks)[:MAX_BREAKS]
    return replace(verification, vouched_by=vouched, breaks=breaks,
                   first_break=breaks[0] if breaks else None)


def describe_anchor(anchor: RetentionAnchor, previous: int | None = None) -> str:
    """`retention anchor #2 (entries 10-19, the last recorded …, purged at …)`."""
    start = anchor.position - anchor.entries + 1 if previous is None else previous + 1
    return (f"retention anchor #{anchor.seq} (entries {start}-{anchor.position}, the last "
            f"recorded {anchor.last_at.isoformat()}, purged at {anchor.purged_at.isoformat()})")


def _problems(
    anchor: RetentionAnchor, previous: int, vouchers: tuple[int, ...],
    signed: Sequence[tuple[int, SignedAnchor]], now: datetime,
) -> list[ChainBreak]:
    """Why this anchor cannot be relied on (empty if it can)."""
    name = describe_anchor(anchor, previous)
    problems = []
    if not vouchers:
        differing = [seq for seq, s in signed if s.seq == anchor.seq]
        problems.append(
            f"{name} differs from what signed checkpoint #{differing[0]} names: altered"
            if differing else
            f"{name} is not named by any signed checkpoint: a purge nobody vouched for "
            "(inserted to hide deleted entries?)")
    age = anchor.purged_at - anchor.last_at
    if age < timedelta(days=MINIMUM_RETENTION_DAYS):
        problems.append(f"{name}: its last entry was {age.days} days old when purged; the "
                        f"access log is kept at least {MINIMUM_RETENTION_DAYS} days")
    if anchor.purged_at > now:
        problems.append(f"{name}: purged in the future (now {now.isoformat()})")
    if anchor.position <= previous or anchor.entries != anchor.position - previous:
        problems.append(f"{name}: does not continue the anchor before it (at {previous}); "
                        f"it claims {anchor.entries} entries")
    return [ChainBreak(anchor.position, problem) for problem in problems]
