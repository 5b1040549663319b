"""Opening a store whose events the hash chain does not cover, and chaining them deliberately.

Opening never chains anything on its own: a store whose events table holds events without a
link (a store written before the chain existed, or one whose chain rows or registration were
deleted) is refused with `UnchainedEventsError`. Only the explicit `nervenbahn audit
chain-existing --confirm` chains such events (inside `chaining_existing()`); it logs a warning
with the counts and records the rewrite in `audit_chain_rewrites`, which `audit verify` reports.
Both recorders (`nervenbahn.audit.recorders`) run `check_opening` when they create their tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from nervenbahn.audit.chain import CHAINS_TABLE, as_bytes, chain_table_name, link_rows
from nervenbahn.audit.errors import AuditError
from nervenbahn.audit.hashing import genesis

__all__ = ["ChainRewrite", "Opening", "UnchainedEventsError", "chaining_existing", "check_opening"]

log = structlog.get_logger("nervenbahn.audit.chain")

class UnchainedEventsError(AuditError):
    """The store holds events that the hash chain does not cover; opening it is refused.

    Either the store was written before the chain existed, or chain rows (or the table's
    `audit_chains` registration) were deleted. Chaining them is an explicit decision:
    `nervenbahn audit chain-existing --confirm`.
    """

    def __init__(self, events_table: str, unchained: int, registered: bool) -> None:
        self.events_table = events_table
        self.unchained = unchained
        self.registered = registered
        missing = "" if registered else f" and the table is not registered in {CHAINS_TABLE}"
        super().__init__(
            f"{events_table}: {unchained} events have no hash-chain link{missing}; the store "
            "is not opened (chain rows deleted, or a store from before the chain). Verify with "
            "`nervenbahn audit verify`; chain them only deliberately: `nervenbahn audit "
            "chain-existing --confirm`"
        )


@dataclass(frozen=True)
class ChainRewrite:
    """What one explicit chaining of existing events did."""

    events_table: str
    events: int
    unchained: int
    registered: bool


_CHAIN_EXISTING: ContextVar[list[ChainRewrite] | None] = ContextVar(
    "nervenbahn_chain_existing", default=None
)


@contextmanager
def chaining_existing() -> Iterator[list[ChainRewrite]]:
    """Within this block, opening a store chains its unchained events (from genesis, the whole
    table) instead of refusing; the list collects what was chained. Only for `audit
    chain-existing`."""
    done: list[ChainRewrite] = []
    token = _CHAIN_EXISTING.set(done)
    try:
        yield done
    finally:
        _CHAIN_EXISTING.reset(token)

_MIGRATION_BATCH = 2000


@dataclass(frozen=True)
class Opening:
    """What opening one chained events table needs, for either database (statements carry
    the backend's own placeholder, `mark`; table names already qualified and checked)."""

    query: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
    events: str
    chain_table: str
    chain: str
    position: str
    chains: str
    rewrites: str
    registered_name: str | None = None
    lock: str | None = None
    mark: str = "?"
    """The backend's parameter placeholder (`?` sqlite3, `%s` psycopg)."""

    def marks(self, count: int) -> str:
        """`count` placeholders, comma-separated (a VALUES list)."""
        return ", ".join([self.mark] * count)

    @property
    def name(self) -> str:
        """The events table's plain name (as registered)."""
        return self.registered_name or self.events


def check_opening(o: Opening) -> None:
    """Register a new, empty events table; refuse one with events the chain does not cover
    (or chain them, inside `chaining_existing`)."""
    registered = bool(o.query(
        f"SELECT 1 FROM {o.chains} WHERE events_table = {o.mark}", (o.name,)  # noqa: S608
    ))
    if registered and not _unchained(o):
        return
    if not registered and not o.query(f"SELECT 1 FROM {o.events} LIMIT 1", ()):  # noqa: S608
        _register(o)
        return
    done = _CHAIN_EXISTING.get()
    if done is None:
        raise UnchainedEventsError(o.name, _unchained(o), registered)
    done.append(_chain_whole_table(o, registered))


def _register(o: Opening) -> None:
    """List the events table in `audit_chains` (if it is not yet)."""
    o.query(f"INSERT INTO {o.chains} VALUES ({o.marks(3)}) ON CONFLICT DO NOTHING",  # noqa: S608
            (o.name, chain_table_name(o.name), o.chain))


def _unchained(o: Opening) -> int:
    """Events without a link in the chain table."""
    rows = o.query(
        f"SELECT COUNT(*) FROM {o.events} e WHERE NOT EXISTS "  # noqa: S608
        f"(SELECT 1 FROM {o.chain_table} c WHERE c.position = e.{o.position})", ()
    )
    return int(rows[0][0])


def _chain_whole_table(o: Opening, registered: bool) -> ChainRewrite:
    """Chain every event of the table anew, from genesis (the explicit command only)."""
    if o.lock:
        o.query(o.lock, ())
    unchained = _unchained(o)
    o.query(f"DELETE FROM {o.chain_table}", ())  # noqa: S608
    chained, last, previous = 0, 0, genesis(o.chain)
    select = (
        f"SELECT {o.position}, originator_id, originator_version, topic, state "  # noqa: S608
        f"FROM {o.events} WHERE {o.position} > {o.mark} ORDER BY {o.position} LIMIT {o.mark}"
    )
    while rows := o.query(select, (last, _MIGRATION_BATCH)):
        links = link_rows(previous, [(int(r[0]), r[1], int(r[2]), str(r[3]), as_bytes(r[4]))
                                      for r in rows])
        for link_row in links:
            o.query(f"INSERT INTO {o.chain_table} (position, hash) VALUES ({o.marks(2)})",  # noqa: S608
                    link_row)
        last, previous = links[-1]
        chained += len(links)
    _register(o)
    o.query(
        f"CREATE TABLE IF NOT EXISTS {o.rewrites} (at TEXT NOT NULL, events_table TEXT NOT "
        "NULL, events BIGINT NOT NULL, unchained BIGINT NOT NULL, registered INTEGER NOT NULL)",
        (),
    )
    o.query(f"INSERT INTO {o.rewrites} VALUES ({o.marks(5)})",  # noqa: S608
            (datetime.now(UTC).isoformat(), o.name, chained, unchained, int(registered)))
    log.warning(
        "existing events chained by explicit command: the chain vouches for them only from "
        "now on; checkpoints signed before show whether they were altered",
        events_table=o.name, events=chained, unchained=unchained, registered=registered,
    )
    return ChainRewrite(o.name, chained, unchained, registered)


