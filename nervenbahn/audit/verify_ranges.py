"""The common case of chain verification, on every core: is the chain intact, with every head
and every Merkle root signed checkpoints vouch for? Yes or no, nothing in between — where and
why a chain breaks is the careful walk's business (`nervenbahn.audit.verify`).

The chain is cut into ranges of whole Merkle blocks (`BLOCK` events), one per core; each range
is read with a connection of its own in a process of its own (the first in this one) and
starts from the link stored just before it. A range holds if each of its events, chained to
the link before, makes the link stored beside it; the ranges join up if each one starts from
the very link (position and hash) the range before it ended with — so together they prove
the chain from the genesis, exactly as one walk would. Each range also hashes its events as
Merkle leaves and returns the root of each whole block, plus, for a signed tree that ends
inside one of its blocks, the frontier of that block's leaves up to it; here the block roots
are folded into each signed tree's root (a tree of size s is the perfect subtrees of its
s // BLOCK whole blocks followed by those of its last s % BLOCK leaves: RFC 6962's split
of a tree at powers of two). Finally both tables must hold exactly the rows the ranges read.

Why: verification read, hashed (twice: link and leaf) and compared every event in one process
at 0.55x the rate of reading the rows and hashing each once (benchmarks/audit.py, 30,000
events); the work is per event and independent once a range's starting link is known.
Below `PARALLEL_FROM` events one process does it all (starting another costs more).
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import NamedTuple
from uuid import UUID

from domain.application.forking import end_with_parent
from nervenbahn.audit.chain import ChainedTable
from nervenbahn.audit.database import AuditDatabase
from nervenbahn.audit.hashing import ChainHead, genesis
from nervenbahn.audit.merkle import EMPTY_ROOT, Frontier, perfect_root

__all__ = ["BLOCK", "PARALLEL_FROM", "PROCESSES", "SignedRoot", "chain_holds"]

BLOCK = 1024
"""Events per Merkle block (a power of two): ranges are cut at whole blocks."""
PARALLEL_FROM = 20_000
"""Events from which the chain is verified in `PROCESSES` ranges at once."""
FIRST_SHARE = 0.9
"""The range this process checks, relative to each other's: it also forks the others (and
pays for the pages it writes to after the fork), 20-40 ms of 30,000 events' 250 ms here."""
PROCESSES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
"""Processes a long chain is verified in (this one and others): the cores it may run on."""


class SignedRoot(NamedTuple):
    """A Merkle tree a trusted checkpoint signs: its size, the position of the chain head the
    checkpoint names with it, and its root."""

    size: int
    position: int
    root: bytes


@dataclass(frozen=True)
class _Range:
    """Part of the chain: the events after position `after` up to `upto` (None: to the end),
    `size` of them (None: as many as there are), the first being leaf `first` of the tree."""

    first: int
    size: int | None
    after: int
    upto: int | None


@dataclass(frozen=True)
class _Part:
    """What a range was found to hold: the link it started from and the one it ended with,
    its events, the signed heads it matched, the roots of its whole Merkle blocks and, per
    signed tree size ending in it, the frontier nodes of that size's last (partial) block."""

    start: ChainHead
    end: ChainHead
    records: int
    vouched: int
    blocks: list[bytes]
    cuts: dict[int, list[bytes]]


def chain_holds(
    db: AuditDatabase,
    table: ChainedTable,
    heads: Mapping[int, Sequence[bytes]],
    roots: Sequence[SignedRoot],
) -> tuple[int, ChainHead] | None:
    """(events, head) if every event makes its stored link, the links run unbroken from the
    genesis, every signed head (`heads`: hashes by position) and every signed Merkle root
    holds and both tables hold exactly those rows; None as soon as anything does not."""
    total = db.count(table.chain_table)
    ranges = _ranges(db, table, total)
    if ranges is None:
        return None
    parts = _run(db, table, ranges, heads, roots)
    if not _joined_up(ranges, parts):
        return None
    held = [part for part in parts if part is not None]
    records = sum(part.records for part in held)
    if sum(part.vouched for part in held) != sum(len(h) for h in heads.values()):
        return None  # a signed head at a position the chain no longer holds
    if not _roots_hold(held, roots):
        return None
    if records != total or db.count(table.events_table) != total:
        return None
    return records, held[-1].end


def _ranges(db: AuditDatabase, table: ChainedTable, total: int) -> list[_Range] | None:
    """The chain cut into `PROCESSES` ranges (whole blocks each, the last to the end; the
    first, checked here, `FIRST_SHARE` of the others' size), or one range for a short chain
    or a database other processes cannot open."""
    count = PROCESSES if total >= PARALLEL_FROM and db.opener() is not None else 1
    weights = [FIRST_SHARE if k == 0 and count > 1 else 1.0 for k in range(count)]
    firsts = sorted(
        {round(total * sum(weights[:k]) / sum(weights) / BLOCK) * BLOCK for k in range(count)}
        - {total}
    ) or [0]
    afters = [db.link_position(table, first) for first in firsts]
    if any(after is None for after in afters):
        return None
    bounds = [int(after or 0) for after in afters]
    return [
        _Range(first, None, after, None)
        if k == len(firsts) - 1
        else _Range(first, firsts[k + 1] - first, after, bounds[k + 1])
        for k, (first, after) in enumerate(zip(firsts, bounds, strict=True))
    ]


def _run(
    db: AuditDatabase,
    table: ChainedTable,
    ranges: Sequence[_Range],
    heads: Mapping[int, Sequence[bytes]],
    roots: Sequence[SignedRoot],
) -> list[_Part | None]:
    """Each range checked, the first here and the others each in a process of its own."""
    leaves = max((root.size for root in roots), default=0)
    jobs = [(span, _heads_in(span, heads), _cuts_in(span, roots), leaves, BLOCK) for span in ranges]
    opener = db.opener()
    # Forking a process that runs other threads can copy a lock one of them holds, and the
    # child then waits on it for ever (seen in CI: a range process stuck on a futex in the
    # test runner's worker): only a single-threaded process (the CLI) forks; others check
    # the ranges one after the other here, with the same findings.
    if len(jobs) == 1 or opener is None or threading.active_count() > 1:
        return [_check(db, table, *job) for job in jobs]
    pool = ProcessPoolExecutor(len(jobs) - 1, mp_context=get_context("fork"),
                               initializer=end_with_parent, initargs=(os.getpid(),))
    try:
        later = [pool.submit(_check_apart, opener, table, *job) for job in jobs[1:]]
        first = _check(db, table, *jobs[0])
        return [first, *(future.result() for future in later)]
    finally:
        # The verdict does not wait for the finished processes to exit (10-20 ms here): the
        # pool's own thread reaps them, and the interpreter waits for it at exit.
        pool.shutdown(wait=False, cancel_futures=True)


def _heads_in(span: _Range, heads: Mapping[int, Sequence[bytes]]) -> dict[int, list[bytes]]:
    return {
        position: list(hashes)
        for position, hashes in heads.items()
        if position > span.after and (span.upto is None or position <= span.upto)
    }


def _cuts_in(span: _Range, roots: Sequence[SignedRoot]) -> dict[int, set[int]]:
    """The signed tree sizes that end in the range, with the head positions they name."""
    cuts: dict[int, set[int]] = {}
    for root in roots:
        if root.size > span.first and (span.size is None or root.size <= span.first + span.size):
            cuts.setdefault(root.size, set()).add(root.position)
    return cuts


def _check_apart(
    opener: Callable[[], AuditDatabase], table: ChainedTable, *job: object
) -> _Part | None:
    """`_check` on a connection of this process's own."""
    db = opener()
    try:
        return _check(db, table, *job)  # type: ignore[arg-type]
    finally:
        db.close()


def _check(
    db: AuditDatabase,
    table: ChainedTable,
    span: _Range,
    heads: Mapping[int, Sequence[bytes]],
    cuts: Mapping[int, set[int]],
    leaves_upto: int,
    block: int,
) -> _Part | None:
    """One range: each event chained to the link before it must make its stored link (the
    first to the link stored at `span.after`), each signed head in it must match, and its
    events are hashed as Merkle leaves up to the largest signed tree. None at the first
    thing that does not hold, or a value of the wrong type."""
    previous = genesis(table.chain) if span.after == 0 else db.link_at(table, span.after)
    if previous is None:
        return None
    start = ChainHead(span.after, previous)
    position, index, vouched = span.after, span.first, 0
    dense, sha256 = db.dense_positions, hashlib.sha256
    shapes: dict[tuple[int, int], struct.Struct] = {}
    leaves: list[bytes] = []
    blocks: list[bytes] = []
    found: dict[int, list[bytes]] = {}
    hashing = leaves_upto > index
    try:
        for at, origin, version, topic, state, stored in db.joined(
            table, gt=span.after, lte=span.upto
        ):
            if at <= position or (dense and at != position + 1):
                return None
            if type(origin) is str:
                origin = origin.encode()
            elif isinstance(origin, UUID):
                origin = origin.hex.encode()
            else:
                return None
            kind = topic.encode()
            shape = shapes.get((len(origin), len(kind)))
            if shape is None:
                shape = shapes[len(origin), len(kind)] = _record_head(len(origin), len(kind))
            # `chain.event_record` in one pack; a value of the wrong type raises here (bytes
            # concatenate with bytes only: a TEXT state too).
            record = (
                shape.pack(8, at, len(origin), origin, 8, version, len(kind), kind, len(state))
                + state
            )
            previous = sha256(previous + record).digest()
            if previous != stored:  # bytes or memoryview; any other type never equals
                return None
            position, index = at, index + 1
            if hashing:
                leaves.append(sha256(b"\x00" + record).digest())
                if len(leaves) == block:
                    blocks.append(perfect_root(leaves))
                    leaves = []
                if index in cuts:
                    if cuts[index] != {at}:
                        return None  # the signed tree ends at another position
                    found[index] = Frontier.of(leaves).nodes
                hashing = index < leaves_upto
            if at in heads:
                if any(signed != previous for signed in heads[at]):
                    return None
                vouched += len(heads[at])
    except (TypeError, AttributeError, struct.error, UnicodeError):
        return None  # a value of the wrong type: the careful walk names it
    return _Part(start, ChainHead(position, previous), index - span.first, vouched, blocks, found)


def _record_head(origin: int, kind: int) -> struct.Struct:
    """The packer of a record's fields before its state (`chain.event_record`: every field
    length-prefixed, ints as 8-byte big-endian), for an originator id and a topic of these
    lengths."""
    return struct.Struct(f">IqI{origin}sIqI{kind}sI")


def _joined_up(ranges: Sequence[_Range], parts: Sequence[_Part | None]) -> bool:
    """Every range held, held all its events, and started where the one before it ended."""
    if any(part is None for part in parts):
        return False
    for k, (span, part) in enumerate(zip(ranges, parts, strict=True)):
        assert part is not None
        if span.size is not None and part.records != span.size:
            return False
        before = parts[k - 1] if k else None
        if before is not None and part.start != before.end:
            return False
    return True


def _roots_hold(parts: Sequence[_Part], roots: Sequence[SignedRoot]) -> bool:
    """Every signed root is the root of the tree over the first `size` events, and the
    `size`-th event is at the head its checkpoint names (checked by the range it ends in)."""
    blocks = [root for part in parts for root in part.blocks]
    cuts = {size: nodes for part in parts for size, nodes in part.cuts.items()}
    frontier = Frontier()
    for size, position, root in sorted(roots):
        if size == 0:
            if root != EMPTY_ROOT or position != 0:
                return False
            continue
        if size not in cuts:
            return False  # a tree larger than the chain
        whole = size // BLOCK
        if whole > len(blocks):
            return False
        while frontier.size < whole:
            frontier.append(blocks[frontier.size])
        if Frontier(size, [*frontier.nodes, *cuts[size]]).root() != root:
            return False
    return True
