"""Several `serve` instances on one store: which consumer groups feed which read models, and
the refusal of a shape that would silently split a read model.

Two shapes are right (docs/operations.md "Several instances"):

- **shared read models** (NERVENBAHN_PROJECTIONS_STORE, one PostgreSQL schema): every instance
  joins one consumer group per read model, `projection-<read model>`; Kafka splits the
  partitions between them, and each event is applied once, in the transaction that records it
  as processed in the shared schema. Every instance answers the same.
- **instance-local read models** (SQLite files in each instance's own folder): each instance
  has a name (NERVENBAHN_INSTANCE) and its own group per read model,
  `projection-<read model>.<instance>`, so it reads every partition and holds every case.

The wrong shape is a consumer group shared by read models that are not the same: two instances
with read models of their own in one group would each hold about half of the cases, and every
answer would depend on which instance served it. The opposite is wrong too: one read model fed
by two groups applies every event twice. Each instance therefore announces, in the store's
database (`bus.positions`, `serve_instances`), where its read models lie and which group suffix
it uses, renews that every `ANNOUNCE_SECONDS`, and at start compares itself with every other
live instance: same read models with a different group, or a same group with different read
models, is refused (`InstanceConflictError`) before any worker starts. An instance killed
without withdrawing stays listed until its announcement runs out (`ANNOUNCE_TTL_SECONDS`).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from bus.positions import InstanceRecord, RelayPositionStore
from domain.errors import NervenbahnError
from nervenbahn.config import Settings
from nervenbahn.paths import projection_path

__all__ = [
    "ANNOUNCE_SECONDS",
    "ANNOUNCE_TTL_SECONDS",
    "InstanceConflictError",
    "Membership",
    "conflicts",
    "group_suffix",
    "instance_record",
    "read_model_location",
]

log = structlog.get_logger("nervenbahn.instances")

ANNOUNCE_SECONDS = 5.0
"""How often a running instance renews its announcement."""
ANNOUNCE_TTL_SECONDS = 15.0
"""How long an announcement lasts unless renewed: an instance killed without withdrawing is
taken for live this long."""

_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


class InstanceConflictError(NervenbahnError):
    """`serve` refused to start: another live instance on the store shares a consumer group
    with read models that are not this instance's, or feeds this instance's read models
    through another group."""


def group_suffix(settings: Settings) -> str:
    """What this instance adds to each read model's consumer group: `.<instance>` when its
    read models are its own (SQLite) and it has a name, else ""."""
    instance = settings.serve.instance
    if settings.projections_store is None and instance:
        return f".{instance}"
    return ""


def read_model_location(settings: Settings) -> str:
    """Where this instance's read models lie, comparable across instances: the PostgreSQL
    server, database and schema of NERVENBAHN_PROJECTIONS_STORE (a local address counts as
    the same on every instance of one host), or host and folder of the SQLite files."""
    store = settings.projections_store
    if store is None:
        folder = projection_path(settings.store, "_").parent.resolve()
        return f"sqlite://{socket.gethostname()}{folder}"
    host = "local" if store.host in _LOCAL_HOSTS or store.host.startswith("/") else store.host
    return f"postgresql://{host}:{store.port}/{store.dbname}?schema={store.schema_name}"


def instance_record(settings: Settings) -> InstanceRecord:
    """This run of `serve` as it announces itself."""
    host, pid = socket.gethostname(), os.getpid()
    return InstanceRecord(
        holder=f"{host}:{pid}:{uuid.uuid4().hex[:8]}",
        instance=settings.serve.instance or "",
        host=host,
        pid=pid,
        read_models=read_model_location(settings),
        group_suffix=group_suffix(settings),
    )


def conflicts(me: InstanceRecord, others: Sequence[InstanceRecord]) -> list[str]:
    """Why `me` must not run beside `others` (empty: it may)."""
    found = []
    for other in others:
        same_models = other.read_models == me.read_models
        same_groups = other.group_suffix == me.group_suffix
        who = (f"instance {other.instance or '(unnamed)'} (host {other.host}, "
               f"process {other.pid})")
        if same_groups and not same_models:
            found.append(
                f"{who} feeds its read models at {other.read_models} through the same consumer "
                f"groups (projection-<read model>{me.group_suffix}) as this instance's at "
                f"{me.read_models}: each would hold about half of the cases. Give every "
                "instance with read models of its own a name of its own (NERVENBAHN_INSTANCE), "
                "or share one PostgreSQL schema (NERVENBAHN_PROJECTIONS_STORE)"
            )
        elif same_models and not same_groups:
            found.append(
                f"{who} feeds the read models at {me.read_models} through the groups "
                f"projection-<read model>{other.group_suffix}, this instance through "
                f"projection-<read model>{me.group_suffix}: every event would be applied "
                "twice. Instances that share read models must share their groups: unset "
                "NERVENBAHN_INSTANCE or give them folders of their own"
            )
    return found


@dataclass
class Membership:
    """This instance's announcement on the store: `join` checks and announces (or refuses),
    `renew` keeps it live, `leave` withdraws it."""

    positions: RelayPositionStore
    record: InstanceRecord
    ttl_seconds: float = ANNOUNCE_TTL_SECONDS
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    others: list[InstanceRecord] = field(default_factory=list)
    """The other live instances, as last announced."""

    def join(self) -> None:
        """Announce this instance, or withdraw at once and raise `InstanceConflictError`
        naming each conflict and what to change."""
        others = self._announce()
        found = conflicts(self.record, others)
        if found:
            self.leave()
            raise InstanceConflictError(
                "serve refused to start: " + "; ".join(found)
            )
        log.info("instance announced", instance=self.record.instance or None,
                 read_models=self.record.read_models, others=len(others))

    def renew(self) -> None:
        """Renew the announcement (the other live instances are kept in `others`)."""
        self._announce()

    def leave(self) -> None:
        """Withdraw the announcement (a clean stop) and release the connection."""
        with self._lock:
            try:
                self.positions.withdraw(self.record.holder)
            finally:
                self.positions.close()

    def _announce(self) -> list[InstanceRecord]:
        with self._lock:
            self.others = self.positions.announce(self.record, self.ttl_seconds)
            return self.others
