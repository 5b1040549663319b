"""The Merkle trees over the store's chains: their signed heads, kept incrementally, and the
per-record proofs (`nervenbahn audit prove`).

Leaf i of a chain's tree is the i-th stored event of its events table in position order (its
`chain.event_record`, the bytes the chain link covers); a checkpoint signs, per chain, the tree
over the events up to the head it signs (`tree_size`, `root`).

Signing a checkpoint must not rehash the store: after each checkpoint the tree's frontier (the
O(log n) roots of its perfect subtrees, `merkle.Frontier`) is kept in `audit_merkle_frontiers`
with the position it ends at, and the next checkpoint reads only the events after that
position. The frontier is not trusted as stored: it is used only if it folds to the very root
the last checkpoint signed, at the size and head that checkpoint signed (a different frontier
with the same root would be a SHA-256 collision), else the tree is computed afresh from the
events. So the next checkpoint extends the tree that was signed, whatever was written into the
store since, and `audit verify` recomputes every signed root from the events.

A proof reads the events of the tree once (O(n) leaf hashes, then O(log n) path nodes): a
proof is asked for one sampled event at a time, while checkpoints are signed every few
minutes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.persistence import ProgrammingError

from bus.envelope import event_id
from nervenbahn.audit.chain import ChainedTable, UnreadableRow, event_record
from nervenbahn.audit.database import AuditDatabase
from nervenbahn.audit.errors import ProofError
from nervenbahn.audit.hashing import ChainHead
from nervenbahn.audit.merkle import (
    Frontier,
    TreeHead,
    consistency_path,
    inclusion_path,
    leaf_hash,
    tree_root,
)
from schemas.sql import Component, Migration

__all__ = [
    "FRONTIERS",
    "FRONTIERS_TABLE",
    "LeafProof",
    "leaves",
    "prove_consistency",
    "prove_event",
    "tree_heads",
]

FRONTIERS_TABLE = "audit_merkle_frontiers"
_FRONTIERS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {FRONTIERS_TABLE} ("
    "chain TEXT PRIMARY KEY, position BIGINT NOT NULL, tree_size BIGINT NOT NULL, "
    "frontier TEXT NOT NULL)",
)
FRONTIERS = Component(
    FRONTIERS_TABLE,
    [
        Migration(
            1,
            "the Merkle trees' frontiers at the last checkpoint",
            sqlite=_FRONTIERS_DDL,
            postgres=_FRONTIERS_DDL,
        )
    ],
    tables=[FRONTIERS_TABLE],
)
"""One row per chain: where its tree's frontier ends (position), its size and the frontier's
nodes (hex). The same portable DDL on both backends."""


def leaves(
    db: AuditDatabase, table: ChainedTable, *, gt: int = -1, lte: int | None = None
) -> Iterator[tuple[int, str, int, bytes]]:
    """(position, originator id, version, record) of the stored events with `gt` < position
    <= `lte`, in position order; ProgrammingError at an event whose values cannot be chained
    (`audit verify` names it)."""
    for row in db.events(table, gt=gt):
        if isinstance(row, UnreadableRow):
            raise ProgrammingError(
                f"{table.events_table} position {row.position}: "
                f"{row.problem}; verify the store (`nervenbahn audit verify`)"
            )
        position, origin, version = row[0], row[1], row[2]
        if lte is not None and position > lte:
            return
        yield position, origin, version, event_record(*row)


def tree_heads(
    db: AuditDatabase,
    heads: Mapping[str, ChainHead],
    signed: Mapping[str, tuple[ChainHead, TreeHead]],
) -> dict[str, TreeHead]:
    """The tree of every chained table up to the head `heads` names for it (a chain not in
    `heads` is left out), extending the frontier kept with the last checkpoint where it makes
    the tree that checkpoint signed (`signed`: its head and tree by chain; the caller checked
    its signature), and keeping the new frontier."""
    db.migrate(FRONTIERS)
    trees = {}
    for table in db.chained_tables():
        head = heads.get(table.chain)
        if head is None:
            continue
        frontier, after = _kept_frontier(db, table, head.position, signed.get(table.chain))
        for _, _, _, record in leaves(db, table, gt=after, lte=head.position):
            frontier.append(leaf_hash(record))
        trees[table.chain] = TreeHead(frontier.size, frontier.root())
        _keep(db, table, head, frontier)
    return trees


def _kept_frontier(
    db: AuditDatabase, table: ChainedTable, upto: int, signed: tuple[ChainHead, TreeHead] | None
) -> tuple[Frontier, int]:
    """The frontier kept for the chain and the position it ends at, if it makes the tree
    `signed` names at the head it names (at or before `upto`); else an empty one (from
    before the first position)."""
    if signed is None or signed[0].position > upto:
        return Frontier(), -1
    head, tree = signed
    rows = db.fetch(
        f"SELECT position, tree_size, frontier FROM {FRONTIERS_TABLE} "  # noqa: S608
        f"WHERE chain = {db.placeholder}",
        (table.chain,),
    )
    if rows:
        position, size, text = rows[0]
        frontier = (
            Frontier.from_text(size, text)
            if isinstance(size, int) and isinstance(text, str)
            else None
        )
        if (
            frontier is not None
            and position == head.position
            and frontier.size == tree.size
            and frontier.root() == tree.root
        ):
            return frontier, head.position
    return Frontier(), -1


def _keep(db: AuditDatabase, table: ChainedTable, head: ChainHead, frontier: Frontier) -> None:
    p = db.placeholder
    db.execute(
        f"INSERT INTO {FRONTIERS_TABLE} (chain, position, tree_size, frontier) "  # noqa: S608
        f"VALUES ({p}, {p}, {p}, {p}) ON CONFLICT (chain) DO UPDATE SET "
        "position = excluded.position, tree_size = excluded.tree_size, "
        "frontier = excluded.frontier",
        (table.chain, head.position, frontier.size, frontier.to_text()),
    )


# --- proofs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeafProof:
    """One event's place in a chain's tree: the record hashed (its leaf), its index, the audit
    path (nearest sibling first) and the tree it leads to."""

    chain: str
    position: int
    originator_id: str
    version: int
    record: bytes
    leaf_index: int
    path: tuple[bytes, ...]
    tree: TreeHead


def prove_event(
    db: AuditDatabase, table: ChainedTable, head: ChainHead, tree: TreeHead, event: UUID
) -> LeafProof | None:
    """The proof of the event with id `event` (`bus.envelope.event_id`) in the tree over the
    chain's events up to `head`; None if no event there has that id. ProofError if the events
    no longer make the signed tree (`audit verify` says where)."""
    hashes: list[bytes] = []
    found: tuple[int, str, int, bytes, int] | None = None
    for position, origin, version, record in leaves(db, table, lte=head.position):
        if found is None and _event_id(origin, version) == event:
            found = (position, origin, version, record, len(hashes))
        hashes.append(leaf_hash(record))
    if found is None:
        return None
    _check_signed(table, head, tree, hashes)
    position, origin, version, record, index = found
    return LeafProof(
        table.chain,
        position,
        origin,
        version,
        record,
        index,
        tuple(inclusion_path(hashes, index)),
        tree,
    )


def prove_consistency(
    db: AuditDatabase, table: ChainedTable, old: TreeHead, head: ChainHead, new: TreeHead
) -> list[bytes]:
    """The proof that the signed tree `old` is a prefix of the signed tree `new` over the
    chain's events up to `head` (RFC 6962 consistency proof); ProofError if the stored events
    no longer make both trees."""
    hashes = [leaf_hash(record) for _, _, _, record in leaves(db, table, lte=head.position)]
    _check_signed(table, head, new, hashes)
    if old.size > new.size or tree_root(hashes[: old.size]) != old.root:
        raise ProofError(
            f"{table.chain}: the stored events do not make the older signed tree "
            f"(size {old.size}); verify the store (`nervenbahn audit verify`)"
        )
    return consistency_path(hashes, old.size)


def _check_signed(
    table: ChainedTable, head: ChainHead, tree: TreeHead, hashes: list[bytes]
) -> None:
    """ProofError unless the leaf hashes make the signed tree."""
    if len(hashes) != tree.size or tree_root(hashes) != tree.root:
        raise ProofError(
            f"{table.chain}: the stored events up to position {head.position} do not make the "
            f"signed tree (size {tree.size}); verify the store (`nervenbahn audit verify`)"
        )


def _event_id(origin: str, version: int) -> UUID | None:
    try:
        return event_id(UUID(origin), version)
    except ValueError:
        return None  # an originator that is not a UUID has no event id
