"""Verify the store: recompute every hash chain, check every checkpoint, name the first break.

For each chained events table the events are streamed in position order beside the chain
table and each link is recomputed from the stored bytes. The first position that does not
match is named, with why: altered bytes, a missing event, an event without chain entry, a chain
entry without event, a missing position, a chain rewritten consistently (its head differs from
a signed checkpoint: the rewrite lies after the last checkpoint that still matches), or a chain
that ends before a signed checkpoint (truncation). Checkpoints are checked first: a signature
that does not hold is rejected, naming the checkpoint, and the checkpoint is not relied on.

Nothing written into the store stops verification: in SQLite any column can hold any type, so
a row whose values have the wrong type (or text that is not UTF-8) is reported where it lies —
a break at its position, a damaged row of `audit_chains` or `audit_chain_rewrites`, a
checkpoint problem — and everything else is still verified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain.application.snapshots import SnapshotCheck
from nervenbahn.audit.chain import (
    CHAINS_TABLE,
    REWRITES_TABLE,
    ChainedTable,
    EventRow,
    UnreadableRow,
    chain_hash,
    event_record,
)
from nervenbahn.audit.checkpoints import Checkpoint, CheckpointStore
from nervenbahn.audit.database import AuditDatabase
from nervenbahn.audit.hashing import (
    MAX_BREAKS,
    ChainBreak,
    ChainHead,
    ChainVerification,
    SignedAnchor,
    genesis,
)
from nervenbahn.audit.merkle import Frontier, TreeHead, leaf_hash
from nervenbahn.audit.verify_ranges import SignedRoot, chain_holds

__all__ = [
    "EXIT_CHAIN_BROKEN",
    "EXIT_CHECKPOINT_REJECTED",
    "EXIT_OK",
    "AccessLogCheck",
    "AccessLogMissing",
    "AccessLogVerifier",
    "AuditReport",
    "CheckpointProblem",
    "DamagedRow",
    "MissingAccessLog",
    "OtherLog",
    "verify_chain",
    "verify_roots",
    "verify_store",
]

EXIT_OK = 0
EXIT_CHAIN_BROKEN = 4
"""A chain does not match what was recorded (tampering, or a checkpoint the chain contradicts)."""
EXIT_CHECKPOINT_REJECTED = 5
"""Every chain matches, but a checkpoint is forged, altered, missing or unreadable."""

T = TypeVar("T")
AccessLogVerifier = Callable[
    [Sequence[ChainHead], Sequence[tuple[int, SignedAnchor]]], ChainVerification
]
"""Verifies the access log against the signed heads and the signed retention anchors (with
the sequence of the checkpoint naming each)."""


@dataclass(frozen=True)
class CheckpointProblem:
    """A checkpoint that cannot be relied on, and why."""

    sequence: int | None
    source: str
    reason: str

    def to_json(self) -> dict[str, object]:
        """As JSON."""
        return {"sequence": self.sequence, "source": self.source, "reason": self.reason}

    def describe(self) -> str:
        """One line for people."""
        which = f"checkpoint #{self.sequence}" if self.sequence is not None else "a checkpoint"
        return f"{which} ({self.source}): {self.reason}"


@dataclass(frozen=True)
class DamagedRow:
    """A row of one of the audit's own tables (`audit_chains`, `audit_chain_rewrites`) whose
    values have the wrong type or do not fit: it is reported as a break (exit 4)."""

    table: str
    row: str
    problem: str

    def to_json(self) -> dict[str, object]:
        """As JSON."""
        return {"table": self.table, "row": self.row, "problem": self.problem}

    def describe(self) -> str:
        """One line for people."""
        return f"{self.table} row {self.row}: {self.problem}"


@dataclass(frozen=True)
class AccessLogCheck:
    """The access log to verify: its identity, and how to verify it against signed heads."""

    log_id: str
    verify: AccessLogVerifier


@dataclass(frozen=True)
class AccessLogMissing:
    """The access log to verify is not where it should be (`location`): there is nothing to
    verify, but signed checkpoints that name its head fail verification."""

    location: str


@dataclass(frozen=True)
class MissingAccessLog:
    """An access log whose head signed checkpoints name is missing (deleted or moved): what
    they vouched for can no longer be compared, so verification fails (exit 4) — a deleted
    log must not pass as "no log"."""

    location: str
    sequences: tuple[int, ...]
    """The trusted checkpoints that name a head of it (position above 0)."""
    head: ChainHead
    """The newest head they name."""
    log_id: str | None

    def describe(self) -> str:
        """One line for people."""
        which = ", ".join(f"#{n}" for n in self.sequences)
        named = f" (log {self.log_id})" if self.log_id else ""
        return (f"the access log {self.location} is missing, but signed checkpoint"
                f"{'s' if len(self.sequences) > 1 else ''} {which} name its head{named}, the "
                f"newest at position {self.head.position}: it was deleted or moved, and the "
                "entries they vouch for cannot be verified")

    def to_json(self) -> dict[str, object]:
        """As JSON."""
        return {"location": self.location, "sequences": list(self.sequences),
                "head": self.head.to_json(), "log_id": self.log_id,
                "problem": self.describe()}


@dataclass(frozen=True)
class OtherLog:
    """A signed checkpoint that names an access log other than the one verified: the log it
    signed was replaced or re-created since (or lies elsewhere), so what it vouched for can no
    longer be compared. Verification fails: a log rewritten under a new identity must not pass
    as intact."""

    sequence: int
    log_id: str

    def to_json(self) -> dict[str, object]:
        """As JSON."""
        return {"sequence": self.sequence, "log_id": self.log_id,
                "problem": "this log was not found: the access log was replaced or re-created "
                           "since this checkpoint signed it; its head was not compared"}


@dataclass(frozen=True)
class AuditReport:
    """What `audit verify` found: each chain's verification, the checkpoint problems, the
    snapshots that do not match their events, explicit re-chainings, and checkpoints naming
    an access log other than the one verified (which fails: the log was replaced)."""

    chains: list[ChainVerification]
    access_log: ChainVerification | None = None
    checkpoint_problems: list[CheckpointProblem] = field(default_factory=list)
    checkpoints: int = 0
    other_logs: list[OtherLog] = field(default_factory=list)
    chain_rewrites: list[dict[str, object]] = field(default_factory=list)
    snapshots_checked: int = 0
    snapshot_problems: list[SnapshotCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    damaged_rows: list[DamagedRow] = field(default_factory=list)
    missing_access_log: MissingAccessLog | None = None

    @property
    def ok(self) -> bool:
        """True if every chain and every checkpoint holds."""
        return self.exit_code == EXIT_OK

    @property
    def exit_code(self) -> int:
        """0 all good; 4 a chain or a snapshot is broken, or the access log a checkpoint
        signed was replaced or is missing; 5 only checkpoints are rejected."""
        verifications = [*self.chains, *([self.access_log] if self.access_log else [])]
        if (any(not v.ok for v in verifications) or self.snapshot_problems or self.other_logs
                or self.damaged_rows or self.missing_access_log):
            return EXIT_CHAIN_BROKEN
        if self.checkpoint_problems:
            return EXIT_CHECKPOINT_REJECTED
        return EXIT_OK

    def problems(self) -> list[str]:
        """Every finding that makes verification fail, one line each for people (empty when
        it holds): breaks, a missing or replaced access log, damaged rows, snapshots and
        rejected checkpoints."""
        verifications = [*self.chains, *([self.access_log] if self.access_log else [])]
        lines = [f"{v.chain}: bad position {b.position}: {b.reason}"
                 for v in verifications for b in v.all_breaks]
        if self.missing_access_log is not None:
            lines.append(self.missing_access_log.describe())
        lines += [f"checkpoint #{o.sequence} signs access log {o.log_id}, which was not found "
                  "here: the access log was replaced or re-created since" for o in self.other_logs]
        lines += [f"damaged row: {d.describe()}" for d in self.damaged_rows]
        lines += [f"snapshot {s.table} {s.originator_id} version {s.version}: {s.problem}"
                  for s in self.snapshot_problems]
        lines += [f"checkpoint rejected: {p.describe()}" for p in self.checkpoint_problems]
        return lines

    def to_json(self) -> dict[str, object]:
        """As JSON."""
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "checkpoints": self.checkpoints,
            "chains": [v.to_json() for v in self.chains],
            "access_log": self.access_log.to_json() if self.access_log else None,
            "checkpoint_problems": [p.to_json() for p in self.checkpoint_problems],
            "logs_not_found": [o.to_json() for o in self.other_logs],
            "access_log_missing": (self.missing_access_log.to_json()
                                   if self.missing_access_log else None),
            "chain_rewrites": self.chain_rewrites,
            "snapshots_checked": self.snapshots_checked,
            "snapshot_problems": [p.to_json() for p in self.snapshot_problems],
            "notes": self.notes,
            "damaged_rows": [d.to_json() for d in self.damaged_rows],
        }


# --- one chain -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Expected:
    """A head a signed checkpoint vouches for."""

    sequence: int
    head: ChainHead
    created_at: str


@dataclass
class _Walk:
    """The state of recomputing one chain."""

    table: ChainedTable
    dense: bool
    expected: list[_Expected]
    previous: bytes
    position: int = 0
    records: int = 0
    matched: _Expected | None = None
    checked: int = 0
    found: ChainBreak | None = None
    breaks: list[ChainBreak] = field(default_factory=list)

    def stop(self, position: int, reason: str) -> None:
        """Note a break (the walk goes on, resynchronised by the caller)."""
        if self.found is None:
            self.found = ChainBreak(position, reason)
        if len(self.breaks) < MAX_BREAKS:
            self.breaks.append(ChainBreak(position, reason))

    def check_expected(self, upto: int) -> None:
        """Compare the checkpoints at positions up to `upto` (the current position)."""
        while self.expected and self.expected[0].head.position <= upto:
            exp = self.expected.pop(0)
            if exp.head.position != self.position:
                self.stop(exp.head.position,
                          f"checkpoint #{exp.sequence} names position {exp.head.position}, "
                          "which is no longer in the chain (removed)")
            elif exp.head.hash != self.previous:
                self.stop(self._rewrite_start(),
                          f"the chain was rewritten: at position {exp.head.position} it differs "
                          f"from signed checkpoint #{exp.sequence} ({exp.created_at}); the change "
                          f"lies in positions {self._rewrite_start()}..{exp.head.position}"
                          f"{self._since()}")
            else:
                self.matched, self.checked = exp, self.checked + 1

    def _rewrite_start(self) -> int:
        return self.matched.head.position + 1 if self.matched else 1

    def _since(self) -> str:
        if self.matched is None:
            return " (no earlier checkpoint matches)"
        return f", after checkpoint #{self.matched.sequence}, which still matches"

    def result(self) -> ChainVerification:
        if self.expected:
            ahead = self.expected[-1]
            self.stop(self.position + 1,
                      f"the chain ends at position {self.position}, but signed checkpoint "
                      f"#{ahead.sequence} ({ahead.created_at}) names position "
                      f"{ahead.head.position}: events after {self.position} were removed "
                      "(truncated)")
        matched = None
        if self.matched is not None:
            matched = {"sequence": self.matched.sequence, "created_at": self.matched.created_at,
                       **self.matched.head.to_json()}
        return ChainVerification(
            chain=self.table.chain,
            records=self.records,
            head=ChainHead(self.position, self.previous),
            first_break=self.found,
            checkpoints_checked=self.checked,
            checkpoint=matched,
            breaks=tuple(self.breaks),
        )


def verify_chain(
    db: AuditDatabase, table: ChainedTable, expected: Sequence[tuple[int, ChainHead, str]] = (),
    trees: Sequence[SignedTree] = (),
) -> ChainVerification:
    """Recompute one chain from its stored events and compare it with its chain table, with
    the heads signed checkpoints vouch for (`expected`: sequence, head, created_at) and with
    the Merkle trees they sign (`trees`)."""
    quick = _verify_quickly(db, table, expected, trees)
    if quick is not None:
        return quick
    walk = _Walk(
        table=table,
        dense=db.dense_positions,
        expected=sorted((_Expected(s, h, t) for s, h, t in expected),
                        key=lambda e: (e.head.position, e.sequence)),
        previous=genesis(table.chain),
    )
    walk.check_expected(0)
    events, links = _Peekable(db.events(table)), _Peekable(db.links(table))
    while events.head is not None or links.head is not None:
        _step(walk, events, links)
    return _with_roots(walk.result(), verify_roots(db, table, trees) if trees else [])


SignedTree = tuple[int, ChainHead, TreeHead]
"""A tree a trusted checkpoint signs: its sequence, the chain head and the tree."""


class _Roots:
    """The signed trees of one chain, compared as its events are read in position order."""

    def __init__(self, signed: Sequence[SignedTree]) -> None:
        self.pending = sorted(signed, key=lambda s: (s[2].size, s[0]))
        self.frontier = Frontier()
        self.last = 0
        self.breaks: list[ChainBreak] = []
        self._compare()

    def add(self, position: int, record: bytes) -> None:
        """The next event's record (at `position`)."""
        self.frontier.append(leaf_hash(record))
        self.last = position
        self._compare()

    def _compare(self) -> None:
        while self.pending and self.pending[0][2].size == self.frontier.size:
            sequence, head, tree = self.pending.pop(0)
            if tree.root != self.frontier.root() or head.position != self.last:
                self.breaks.append(ChainBreak(head.position, (
                    f"the Merkle root over the first {tree.size} events (up to position "
                    f"{self.last}) differs from the one signed checkpoint #{sequence} names: "
                    f"an event up to position {head.position} was altered, removed or "
                    "inserted")))

    def finish(self) -> list[ChainBreak]:
        """Every break: the roots that differ, and the trees larger than the chain."""
        return self.breaks + [
            ChainBreak(head.position, f"signed checkpoint #{sequence} names a Merkle tree of "
                       f"{tree.size} events, but the chain holds only {self.frontier.size}: "
                       "events were removed") for sequence, head, tree in self.pending]


def verify_roots(
    db: AuditDatabase, table: ChainedTable, signed: Sequence[SignedTree]
) -> list[ChainBreak]:
    """Recompute the chain's Merkle tree from its stored events and compare it with each tree
    a trusted checkpoint signs (`signed`: sequence, head, tree): a break for each root that
    differs, or whose last event is not at the signed head. The events are read up to the
    largest signed tree only; an event that cannot be read ends the comparison (the chain's
    own verification names it)."""
    roots = _Roots(signed)
    for row in db.events(table) if roots.pending else ():
        if isinstance(row, UnreadableRow):
            return roots.breaks
        roots.add(row[0], event_record(*row))
        if not roots.pending:
            break
    return roots.finish()


def _verify_quickly(
    db: AuditDatabase, table: ChainedTable, expected: Sequence[tuple[int, ChainHead, str]],
    trees: Sequence[SignedTree] = (),
) -> ChainVerification | None:
    """The common case fast (`verify_ranges.chain_holds`: every link, signed head and signed
    Merkle root compared, on every core). None as soon as anything does not match (or a row
    has no partner): the careful walk then finds the first bad position and says why."""
    heads: dict[int, list[bytes]] = {}
    for _, head, _ in expected:
        heads.setdefault(head.position, []).append(head.hash)
    roots = [SignedRoot(tree.size, head.position, tree.root) for _, head, tree in trees]
    held = chain_holds(db, table, heads, roots)
    if held is None:
        return None
    records, head = held
    signed = sorted(expected, key=lambda e: (e[1].position, e[0]))
    last = signed[-1] if signed else None
    return ChainVerification(
        chain=table.chain,
        records=records,
        head=head,
        first_break=None,
        checkpoints_checked=len(signed),
        checkpoint=None if last is None else {
            "sequence": last[0], "created_at": last[2], **last[1].to_json()
        },
    )


def _step(walk: _Walk, events: _Events, links: _Links) -> None:
    """Check the next position; after a break, go on from the stored link (or, without one,
    from the recomputed hash), so that every later break is found too."""
    event, link = events.head, links.head
    position = min(row[0] for row in (event, link) if row is not None)
    walk.check_expected(position - 1)
    if walk.dense and position != walk.position + 1:
        walk.stop(walk.position + 1, "position missing: its event and its chain entry were both "
                  "removed")
        walk.position = position - 1
    elif any(isinstance(row, UnreadableRow) and row.position == position
             for row in (event, link)):
        _unreadable(walk, events, links, position)
    elif event is None or event[0] != position:
        walk.stop(position, "chain entry without event: the event was removed")
        assert link is not None
        assert not isinstance(link, UnreadableRow)
        walk.previous, walk.position = link[1], position
        links.advance()
    elif link is None or link[0] != position:
        walk.stop(position, "event without chain entry: written outside the recorder, or its "
                  "chain entry was removed")
        walk.previous = chain_hash(walk.previous, event_record(*event))
        walk.position, walk.records = position, walk.records + 1
        events.advance()
    else:
        assert not isinstance(event, UnreadableRow)
        assert not isinstance(link, UnreadableRow)
        recomputed = chain_hash(walk.previous, event_record(*event))
        resync = recomputed
        if recomputed != link[1]:
            reason, resync = _mismatch(recomputed, link[1], events.next(), links.next())
            walk.stop(position, reason)
        events.advance()
        links.advance()
        walk.previous, walk.position, walk.records = resync, position, walk.records + 1
        walk.check_expected(position)


def _unreadable(walk: _Walk, events: _Events, links: _Links, position: int) -> None:
    """An event or a chain entry at `position` whose values have the wrong type: a break
    naming the table and the columns; the walk goes on from the stored link (if readable),
    else from the hash recomputed over the event (if readable)."""
    event = events.head if events.head is not None and events.head[0] == position else None
    link = links.head if links.head is not None and links.head[0] == position else None
    for row, table in ((event, walk.table.events_table), (link, walk.table.chain_table)):
        if isinstance(row, UnreadableRow):
            walk.stop(position, f"{table} at position {position} cannot be read: {row.problem}")
    if link is not None and not isinstance(link, UnreadableRow):
        walk.previous = link[1]
    elif event is not None and not isinstance(event, UnreadableRow):
        walk.previous = chain_hash(walk.previous, event_record(*event))
    walk.position = position
    if event is not None:
        walk.records += 1
        events.advance()
    if link is not None:
        links.advance()
    walk.check_expected(position)


def _mismatch(
    recomputed: bytes, stored: bytes, event: EventRow | UnreadableRow | None,
    link: tuple[int, bytes] | UnreadableRow | None,
) -> tuple[str, bytes]:
    """Why the recomputed link differs from the stored one, judged from the next link, and
    the hash to go on from (the one the next link continues)."""
    if isinstance(event, UnreadableRow) or isinstance(link, UnreadableRow):
        return "the event does not match its chain entry (altered event or chain entry)", stored
    if event is not None and link is not None and event[0] == link[0]:
        record = event_record(*event)
        if chain_hash(stored, record) == link[1]:
            return ("the event's stored bytes (state, topic, id or version) differ from what "
                    "was chained: altered", stored)
        if chain_hash(recomputed, record) == link[1]:
            return "the chain entry's hash was altered", recomputed
    return "the event does not match its chain entry (altered event or chain entry)", stored


class _Peekable(Generic[T]):
    """An iterator with a look at its current item and the one after."""

    def __init__(self, items: Iterator[T]) -> None:
        self._items = items
        self.head: T | None = next(items, None)
        self._after: list[T | None] = []

    def next(self) -> T | None:
        if not self._after:
            self._after.append(next(self._items, None))
        return self._after[0]

    def advance(self) -> None:
        self.head = self._after.pop(0) if self._after else next(self._items, None)


_Events = _Peekable[EventRow | UnreadableRow]
_Links = _Peekable[tuple[int, bytes] | UnreadableRow]


# --- the store -----------------------------------------------------------------------------


def verify_store(
    db: AuditDatabase,
    public_key: Ed25519PublicKey,
    *,
    auditor_copy: Sequence[Checkpoint] = (),
    access_log: AccessLogCheck | AccessLogMissing | None = None,
) -> AuditReport:
    """Verify every chain of the store against the checkpoints whose signatures hold (the
    store's and the auditor's copy), and the access log if given — against the heads signed
    for its identity (and those signed before logs had one); a checkpoint naming another log
    is listed in `other_logs`, and a log that is missing while checkpoints name its head is
    `missing_access_log` (both fail verification)."""
    trusted, problems = _trusted_checkpoints(db, public_key, auditor_copy)
    registrations = db.registrations()
    damaged = [DamagedRow(CHAINS_TABLE, row, problem) for row, problem in registrations.unreadable]
    unlisted = db.unlisted_chains(t.events_table for t in registrations.tables)
    damaged += [DamagedRow(CHAINS_TABLE, "-", f"{t.events_table} has a chain table but is not "
                           "listed (its row was removed or damaged); verified all the same")
                for t in unlisted]
    tables = {table.chain: table for table in [*registrations.tables, *unlisted]}
    chains = [
        verify_chain(db, table, _expected_for(table.chain, trusted),
                     _trees_for(table.chain, trusted))
        for table in tables.values()
    ]
    for name in sorted({n for cp in trusted for n in cp.chains} - tables.keys()):
        chains.append(ChainVerification(
            chain=name, records=0, head=ChainHead(0, genesis(name)),
            first_break=ChainBreak(1, "signed checkpoints name this chain, but the store no "
                                      "longer lists it (its tables were removed)"),
        ))
    signed = [cp for cp in trusted if cp.access_log is not None]
    if isinstance(access_log, AccessLogMissing):
        missing = _missing_log(access_log.location, signed)
        others, access_log = [], None
    else:
        missing = None
        current = access_log.log_id if access_log is not None else None
        others = [OtherLog(cp.sequence, cp.access_log_id) for cp in signed
                  if cp.access_log_id is not None and cp.access_log_id != current]
    access = None
    if access_log is not None:
        own = [cp for cp in signed if cp.access_log_id in (None, current)]
        access = access_log.verify([cp.access_log for cp in own if cp.access_log is not None],
                                   [(cp.sequence, a) for cp in own for a in cp.access_log_anchors])
    rewrites = db.chain_rewrites()
    damaged += [DamagedRow(REWRITES_TABLE, str(r["row"]), str(r["problem"]))
                for r in rewrites if "problem" in r]
    problems += _missing_sequences(trusted, problems)
    return AuditReport(chains, access, problems, len(trusted), others,
                       [r for r in rewrites if "problem" not in r], damaged_rows=damaged,
                       notes=_unsigned_note(trusted, chains), missing_access_log=missing)


def _missing_log(location: str, signed: Sequence[Checkpoint]) -> MissingAccessLog | None:
    """The finding for a missing access log, if a trusted checkpoint names a head of it with
    entries (a head at position 0 vouches for nothing that could be lost)."""
    naming = [cp for cp in signed if cp.access_log is not None and cp.access_log.position > 0]
    if not naming:
        return None
    newest = max(naming, key=lambda cp: cp.sequence)
    assert newest.access_log is not None
    return MissingAccessLog(location, tuple(cp.sequence for cp in naming), newest.access_log,
                            newest.access_log_id)


def _missing_sequences(trusted: Sequence[Checkpoint], problems: Sequence[CheckpointProblem],
                       ) -> list[CheckpointProblem]:
    """Checkpoints are numbered from 1 without gaps: a number below the newest one that is
    neither trusted nor named by a problem already was deleted (what it vouched for can no
    longer be compared)."""
    have = {cp.sequence for cp in trusted} | {p.sequence for p in problems}
    newest = max((cp.sequence for cp in trusted), default=0)
    gaps = [n for n in range(1, newest) if n not in have]
    unplaced = sum(1 for p in problems if p.sequence is None or not 1 <= p.sequence < newest)
    if len(gaps) <= unplaced:
        return []  # as many checkpoints whose number is unreadable or off: each named already
    return [CheckpointProblem(n, "store", f"missing: checkpoints are numbered without gaps up "
                                          f"to #{newest} (deleted?)") for n in gaps]


def _unsigned_note(trusted: Sequence[Checkpoint], chains: Sequence[ChainVerification],
                   ) -> list[str]:
    """Without a signed checkpoint a chain proves only that it is consistent in itself: a
    consistent rewrite (or one whose checkpoints were deleted) looks the same."""
    if trusted or not any(c.records for c in chains):
        return []
    return ["no signed checkpoint vouches for these chains: they are consistent in themselves, "
            "but a consistent rewrite cannot be told apart; verify against the auditor's copy "
            "(--checkpoints FILE --public-key FILE)"]


def _trees_for(chain: str, trusted: Sequence[Checkpoint]) -> list[SignedTree]:
    return [(cp.sequence, cp.chains[chain], cp.trees[chain]) for cp in trusted
            if chain in cp.chains and chain in cp.trees]


def _with_roots(verification: ChainVerification, roots: Sequence[ChainBreak]
                ) -> ChainVerification:
    """The chain's verification with the Merkle roots that do not match as breaks too, where
    no break of the chain at or before the signed head explains them already (an altered
    event is named at its position, not again at every checkpoint after it)."""
    found = verification.all_breaks
    breaks = [root for root in roots if not any(b.position <= root.position for b in found)]
    if not breaks:
        return verification
    return replace(verification, first_break=verification.first_break or breaks[0],
                   breaks=(*verification.all_breaks, *breaks))


def _expected_for(chain: str, trusted: Sequence[Checkpoint]) -> list[tuple[int, ChainHead, str]]:
    return [(cp.sequence, cp.chains[chain], cp.created_at) for cp in trusted if chain in cp.chains]


def _trusted_checkpoints(
    db: AuditDatabase, public_key: Ed25519PublicKey, auditor_copy: Sequence[Checkpoint]
) -> tuple[list[Checkpoint], list[CheckpointProblem]]:
    """The checkpoints whose signatures hold (the auditor's copy wins), and every problem."""
    stored, problems = _stored_checkpoints(db)
    trusted: dict[int, Checkpoint] = {}
    for checkpoint in stored:
        problem = checkpoint.signature_problem(public_key)
        if problem:
            problems.append(CheckpointProblem(checkpoint.sequence, "store", problem))
        else:
            trusted[checkpoint.sequence] = checkpoint
    by_sequence = {cp.sequence: cp for cp in stored}
    for checkpoint in auditor_copy:
        problem = checkpoint.signature_problem(public_key)
        if problem:
            problems.append(CheckpointProblem(checkpoint.sequence, "auditor's copy", problem))
            continue
        kept = by_sequence.get(checkpoint.sequence)
        if kept is None:
            problems.append(CheckpointProblem(checkpoint.sequence, "store",
                                              "in the auditor's copy but missing from the store"))
        elif kept.payload != checkpoint.payload or kept.signature != checkpoint.signature:
            problems.append(CheckpointProblem(checkpoint.sequence, "store",
                                              "differs from the auditor's copy"))
        trusted[checkpoint.sequence] = checkpoint
    return [trusted[s] for s in sorted(trusted)], problems


def _stored_checkpoints(db: AuditDatabase) -> tuple[list[Checkpoint], list[CheckpointProblem]]:
    """The store's checkpoints that can be read, and a problem naming each one that cannot."""
    checkpoints, unreadable = CheckpointStore(db).readable()
    return checkpoints, [CheckpointProblem(sequence, "store", reason)
                         for sequence, reason in unreadable]
