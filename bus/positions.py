"""Where the relay keeps its position: in the event store's own database, durably.

The position is the id of the last notification the relay has published and the broker has
acknowledged; `published` counts the messages it has published since it last started from
the beginning, so that a broker that comes back empty can be noticed; `epoch` names that
start, and travels in every message's headers, so that consumers notice it too.

Beside the positions, the same database holds each relay's **lease** (`relay_leases`): at most
one instance of a relay publishes at a time. An instance acquires the lease (holder id,
fencing token raised at every acquisition, expiry by the database's clock) before it publishes,
renews it while it runs and releases it when it stops; another instance waits as a hot standby
and acquires it once it is released or has run out. A position saved with a lease is saved only
if that lease (holder and token) is still held and unexpired, checked in the same transaction
(`LeaseLostError` otherwise): a relay that lost its lease cannot move the position.

The same database also lists the `serve` instances that run on it (`serve_instances`): each
announces itself (its name, host, process, where its read models lie and the suffix of its
read models' consumer groups) with an expiry it renews, so that an instance starting in a
shape that would split a consumer group over different read models is refused at start
(`nervenbahn.instances`).

This module is the port (`RelayPositionStore`) and the tables (`RELAY_POSITIONS`); each backend
is a module of its own: `bus.positions_sqlite`, `bus.positions_postgres`.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass

from schemas.sql import Component, Migration

__all__ = [
    "RELAY_POSITIONS",
    "InstanceRecord",
    "Lease",
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
        ),
        Migration(
            2,
            "a lease per relay: at most one active instance, fenced by a token",
            sqlite=[
                "CREATE TABLE IF NOT EXISTS relay_leases (relay TEXT PRIMARY KEY, "
                "holder TEXT NOT NULL, token INTEGER NOT NULL, expires_at REAL NOT NULL, "
                "acquired_at REAL NOT NULL)"
            ],
            postgres=[
                "CREATE TABLE IF NOT EXISTS {schema}.relay_leases (relay text PRIMARY KEY, "
                "holder text NOT NULL, token bigint NOT NULL, expires_at timestamptz NOT NULL, "
                "acquired_at timestamptz NOT NULL DEFAULT now())"
            ],
        ),
        Migration(
            3,
            "the serve instances on this store, each announced with an expiry",
            sqlite=[
                "CREATE TABLE IF NOT EXISTS serve_instances (holder TEXT PRIMARY KEY, "
                "instance TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, "
                "read_models TEXT NOT NULL, group_suffix TEXT NOT NULL, "
                "expires_at REAL NOT NULL, started_at REAL NOT NULL)"
            ],
            postgres=[
                "CREATE TABLE IF NOT EXISTS {schema}.serve_instances (holder text PRIMARY KEY, "
                "instance text NOT NULL, host text NOT NULL, pid integer NOT NULL, "
                "read_models text NOT NULL, group_suffix text NOT NULL, "
                "expires_at timestamptz NOT NULL, started_at timestamptz NOT NULL "
                "DEFAULT now())"
            ],
        ),
    ],
    tables=["relay_positions"],
)
"""The relays' positions and leases, in the event store's database (SQLite: `expires_at` in
seconds since 1970 by SQLite's clock; PostgreSQL: by the server's clock)."""


def new_epoch() -> str:
    """A fresh epoch: the relay (re)starts publishing from the first event."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class RelayPosition:
    """How far a relay has got, in which epoch."""

    position: int = 0
    published: int = 0
    epoch: str = ""


@dataclass(frozen=True)
class Lease:
    """A relay's lease as one instance holds it: who (`holder`) and which acquisition (`token`,
    raised at each one)."""

    relay: str
    holder: str
    token: int


@dataclass(frozen=True)
class InstanceRecord:
    """One `serve` instance as it announces itself on the store (`serve_instances`)."""

    holder: str
    """This run of the instance: host, process id and a random part."""
    instance: str
    """NERVENBAHN_INSTANCE, or "" if unnamed."""
    host: str
    pid: int
    read_models: str
    """Where its read models lie (`nervenbahn.instances.read_model_location`)."""
    group_suffix: str
    """What its read models' consumer groups add to `projection-<name>` ("" or ".<name>")."""


class RelayPositionStore(ABC):
    """Port: the durable position of each relay, and the lease that lets one instance move it."""

    @abstractmethod
    def load(self, relay: str) -> RelayPosition:
        """The relay's position (zero if it never ran)."""

    @abstractmethod
    def save(self, relay: str, position: RelayPosition, lease: Lease | None = None) -> None:
        """Record the relay's position durably (committed when this returns); with a `lease`,
        only if it is still held unexpired, checked in the same transaction (else
        `LeaseLostError`, nothing saved)."""

    @abstractmethod
    def acquire(self, relay: str, holder: str, seconds: float) -> Lease | None:
        """The relay's lease for `seconds`, if nobody else holds it unexpired (a new token),
        or `holder` already does (its token); None while another instance holds it."""

    @abstractmethod
    def renew(self, lease: Lease, seconds: float) -> bool:
        """Extend a held, unexpired lease to `seconds` from now; False if it was lost."""

    @abstractmethod
    def release(self, lease: Lease) -> None:
        """Let the lease go now (if still held), so a standby takes over without waiting."""

    @abstractmethod
    def holder(self, relay: str) -> Lease | None:
        """Who holds the relay's lease unexpired now (None: nobody)."""

    @abstractmethod
    def announce(self, record: InstanceRecord, seconds: float) -> list[InstanceRecord]:
        """Record (or renew) `record` as live for `seconds` from now, forget instances whose
        announcement ran out more than a day ago, and return the other live instances."""

    @abstractmethod
    def live_instances(self) -> list[InstanceRecord]:
        """Every instance whose announcement has not run out, the longest-running first."""

    @abstractmethod
    def withdraw(self, holder: str) -> None:
        """Forget the instance run `holder` (a clean stop)."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""
