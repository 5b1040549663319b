"""Where the relay keeps its position: in the event store's own database, durably.

The position is the id of the last notification the relay has published and the broker has
acknowledged; `published` counts the messages it has published since it last started from
the beginning, so that a broker that comes back empty can be noticed; `epoch` names that
start, and travels in every message's headers, so that consumers notice it too.

This module is the port (`RelayPositionStore`) and the table (`RELAY_POSITIONS`); each backend
is a module of its own: `bus.positions_sqlite`, `bus.positions_postgres`.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass

from schemas.sql import Component, Migration

__all__ = [
    "RELAY_POSITIONS",
    "RelayPosition",
    "RelayPositionStore",
    "new_epoch",
]


RELAY_POSITIONS = Component(
    "relay_positions",
    [
        Migration(
            1,
            "the position of each relay",
            sqlite=[
                "CREATE TABLE IF NOT EXISTS relay_positions (relay TEXT PRIMARY KEY, "
                "position INTEGER NOT NULL, published INTEGER NOT NULL, epoch TEXT NOT NULL, "
                "updated_at TEXT NOT NULL DEFAULT (datetime('now')))"
            ],
            postgres=[
                "CREATE TABLE IF NOT EXISTS {schema}.relay_positions (relay text PRIMARY KEY, "
                "position bigint NOT NULL, published bigint NOT NULL, epoch text NOT NULL, "
                "updated_at timestamptz NOT NULL DEFAULT now())"
            ],
        )
    ],
    tables=["relay_positions"],
)
"""The relays' positions, in the event store's database."""


def new_epoch() -> str:
    """A fresh epoch: the relay (re)starts publishing from the first event."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class RelayPosition:
    """How far a relay has got, in which epoch."""

    position: int = 0
    published: int = 0
    epoch: str = ""


class RelayPositionStore(ABC):
    """Port: the durable position of each relay."""

    @abstractmethod
    def load(self, relay: str) -> RelayPosition:
        """The relay's position (zero if it never ran)."""

    @abstractmethod
    def save(self, relay: str, position: RelayPosition) -> None:
        """Record the relay's position durably (committed when this returns)."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""
