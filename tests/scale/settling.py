"""What a cluster of tests/scale holds in its PostgreSQL store, read straight from the tables: the
relays' leases and positions, the consumers' processed events, and whether the shared read
models equal a rebuild from the store (rebuilt into a scratch schema and compared row by row).

The fault suite's `tests.chaos.harness.settle` does the same for SQLite read models; these
helpers are for the shared shape (read models in one PostgreSQL schema).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from tests.scale.cluster import Cluster

RELAYS = ("case-events", "reporting", "payments", "benefits", "claims")
"""The relay names `serve` runs (`nervenbahn.datasets`), one lease each."""


@dataclass(frozen=True)
class LeaseRow:
    """One row of `relay_leases`: who holds a relay's lease, which acquisition, still valid,
    and when it was acquired and runs out (by the database's clock)."""

    relay: str
    holder: str
    token: int
    valid: bool
    acquired_at: datetime
    expires_at: datetime

    @property
    def pid(self) -> int:
        """The process id in the holder (`host:pid:random`, `bus.relay._holder_id`)."""
        return int(self.holder.split(":")[1])


def _query(made: Cluster, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    text = sql.SQL(statement).format(schema=sql.Identifier(made.schema),
                                     rm=sql.Identifier(f"{made.schema}_rm"))
    with psycopg.connect(made.postgres_server_url, autocommit=True) as db:
        try:
            return db.execute(text, args).fetchall()
        except psycopg.errors.UndefinedTable:  # no instance has created it yet
            return []


def leases(made: Cluster) -> dict[str, LeaseRow]:
    """Every relay's lease as the store holds it now (validity by the server's clock)."""
    rows = _query(made, "SELECT relay, holder, token, expires_at > clock_timestamp(), "
                        "acquired_at, expires_at FROM {schema}.relay_leases WHERE holder <> ''")
    return {row[0]: LeaseRow(row[0], row[1], int(row[2]), bool(row[3]), row[4], row[5])
            for row in rows}


def relay_position(made: Cluster, relay: str) -> tuple[int, int]:
    """The notification id up to which `relay` has published and saved, and the messages it
    counts as published ((0, 0): none yet)."""
    rows = _query(made, "SELECT position, published FROM {schema}.relay_positions "
                        "WHERE relay = %s", relay)
    return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)


def processed_per_group(made: Cluster) -> dict[str, tuple[int, int]]:
    """Per consumer group of the shared read models: rows in `processed_events` and distinct
    event ids among them (equal unless an event was recorded as processed twice)."""
    rows = _query(made, "SELECT group_id, count(*), count(DISTINCT event_id) "
                        "FROM {rm}.processed_events GROUP BY group_id")
    return {row[0]: (int(row[1]), int(row[2])) for row in rows}


