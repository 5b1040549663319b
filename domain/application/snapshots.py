"""Snapshots that cannot change an answer: each one carries a MAC, checked before it is used.

Snapshots speed up loading a case (and any other aggregate), but they lie outside the events'
hash chain: a snapshot altered in the database would change what a case is owed, and payment
runs and as-of answers start from snapshots. So every snapshot is written with an HMAC-SHA256
over its stored fields (originator id, version, topic, state) under a key derived from the
installation's master key (`PersonalDataVault.derive_key`), and `MacSnapshotStore.get` uses a
snapshot only if its MAC holds. One that fails (or an old one without a MAC) is not used: the
aggregate is replayed from its events instead, and an error (a warning for an old unsigned
snapshot) names the aggregate and version.

A MAC proves the snapshot was written by this installation, not that it was computed right:
`check_snapshot` replays the events up to the snapshot's version and compares the state, for
`audit verify`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.application import Application
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    AggregateRecorder,
    EventStore,
    Mapper,
    Recording,
    StoredEvent,
    Transcoder,
)
from eventsourcing.utils import get_topic

__all__ = [
    "SNAPSHOT_KEY_PURPOSE",
    "MacSnapshotStore",
    "SnapshotCheck",
    "check_snapshot",
    "check_snapshots",
    "snapshot_from_events",
    "stored_snapshot_problem",
]

log = structlog.get_logger("nervenbahn.snapshots")

SNAPSHOT_KEY_PURPOSE = "snapshot mac v1"
_PREFIX = b"nbmac1\x00"
_MAC_SIZE = 32


@dataclass(frozen=True)
class SnapshotCheck:
    """What checking one stored snapshot found: `problem` is None when it holds.
    `originator_id` is text and `version` None for a row whose values cannot be read as such
    (the problem says why)."""

    table: str
    originator_id: UUID | str
    version: int | None
    problem: str | None

    def to_json(self) -> dict[str, object]:
        """As JSON."""
        return {"table": self.table, "originator_id": str(self.originator_id),
                "version": self.version, "problem": self.problem}


class MacSnapshotStore(EventStore[UUID]):
    """The snapshot store of an application: MACs written with each snapshot, checked on
    every read; a snapshot that fails is never returned."""

    def __init__(self, mapper: Mapper[UUID], recorder: AggregateRecorder, key: bytes) -> None:
        super().__init__(mapper, recorder)
        self._key = key

    @property
    def table(self) -> str:
        """The snapshots table's name."""
        return str(getattr(self.recorder, "events_table_name", "snapshots"))

    def put(
        self, domain_events: Sequence[DomainEventProtocol[UUID]], **kwargs: Any
    ) -> list[Recording[UUID]]:
        """Store snapshots, each with its MAC (snapshots have no notification ids, so no
        recordings)."""
        stored = [self.seal(self.mapper.to_stored_event(event)) for event in domain_events]
        self.recorder.insert_events(stored, **kwargs)
        return []

    def get(
        self,
        originator_id: UUID,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Iterator[Any]:
        """The verified snapshots asked for. Newest first (`desc`), one that fails is skipped
        and an older one looked for; oldest first, the first that fails ends the answer. The
        caller replays the remaining events, which is always correct."""
        while True:
            found = self.recorder.select_events(
                originator_id=originator_id, gt=gt, lte=lte, desc=desc, limit=limit
            )
            for stored in found:
                inner, problem = self.opened(stored)
                if inner is None:
                    (log.warning if problem == _UNSIGNED else log.error)(
                        "snapshot not used: replaying from the events",
                        table=self.table, originator_id=str(stored.originator_id),
                        version=stored.originator_version, problem=problem,
                    )
                    break
                yield self.mapper.to_domain_event(inner)
                if limit is not None:
                    limit -= 1
            else:
                return
            if not desc or limit == 0 or stored.originator_version <= (gt or 0) + 1:
                return
            lte = stored.originator_version - 1

    def seal(self, stored: StoredEvent) -> StoredEvent:
        """The stored snapshot with its MAC in front of the state."""
        mac = self._mac(stored.originator_id, stored.originator_version, stored.topic,
                        stored.state)
        return StoredEvent(stored.originator_id, stored.originator_version, stored.topic,
                           _PREFIX + mac + stored.state)

    def opened(self, stored: StoredEvent) -> tuple[StoredEvent | None, str | None]:
        """The stored snapshot without its MAC, if the MAC holds; else None and why (a value
        of the wrong type included: in SQLite any column can hold any type)."""
        problem = stored_snapshot_problem(stored.originator_version, stored.topic, stored.state)
        if problem is not None:
            return None, problem
        state = bytes(stored.state)
        if not state.startswith(_PREFIX):
            return None, _UNSIGNED
        mac, inner = state[len(_PREFIX):len(_PREFIX) + _MAC_SIZE], state[len(_PREFIX)
                                                                          + _MAC_SIZE:]
        expected = self._mac(stored.originator_id, stored.originator_version, stored.topic,
                             inner)
        if not hmac.compare_digest(mac, expected):
            return None, ("its MAC does not match (the snapshot was altered, or written with "
                          "another master key)")
        return StoredEvent(stored.originator_id, stored.originator_version, stored.topic,
                           inner), None

    def unverified(self, stored: StoredEvent) -> StoredEvent:
        """The stored snapshot without its MAC, not checked (to compare it with the events)."""
        state = bytes(stored.state)
        if state.startswith(_PREFIX):
            state = state[len(_PREFIX) + _MAC_SIZE:]
        return StoredEvent(stored.originator_id, stored.originator_version, stored.topic,
                           state)

    def _mac(self, originator_id: Any, version: int, topic: str, state: bytes) -> bytes:
        origin = str(originator_id).encode()
        message = b"".join((
            struct.pack(">I", len(origin)), origin, struct.pack(">q", version),
            struct.pack(">I", len(topic.encode())), topic.encode(), state,
        ))
        return hmac.new(self._key, message, hashlib.sha256).digest()


_UNSIGNED = "it has no MAC (written before snapshots were signed)"


def stored_snapshot_problem(version: Any, topic: Any, state: Any) -> str | None:
    """Which stored values of a snapshot have the wrong type (None if none): the version must
    be an INTEGER, the topic TEXT, the state a BLOB."""
    wrong = [f"{name} is {_kind(value)}, expected {expected}" for name, value, ok, expected in (
        ("originator_version", version, type(version) is int, "INTEGER"),
        ("topic", topic, isinstance(topic, str), "TEXT"),
        ("state", state, isinstance(state, bytes | memoryview), "BLOB"),
    ) if not ok]
    return "; ".join(wrong) or None


def _kind(value: Any) -> str:
    """The SQL type a value was stored as, for messages (never the value: personal data)."""
    if value is None:
        return "NULL"
    names = ((bool | int, "INTEGER"), (float, "REAL"), (str, "TEXT"),
             (bytes | bytearray | memoryview, "BLOB"))
    return next((name for kind, name in names if isinstance(value, kind)),
                f"not valid ({type(value).__name__})")


def check_snapshot(app: Application[UUID], originator_id: UUID, version: int) -> SnapshotCheck:
    """Check one stored snapshot of `app`: its MAC, and its state against the state replayed
    from the events up to its version (snapshots ignored)."""
    return check_snapshots(app, originator_id, [version])[0]


def check_snapshots(
    app: Application[UUID], originator_id: UUID, versions: Sequence[int]
) -> list[SnapshotCheck]:
    """Check stored snapshots of one aggregate, replaying its events once (not once per
    snapshot: a case with many snapshots would cost its length squared)."""
    store = app.snapshots
    assert isinstance(store, MacSnapshotStore), "the application's snapshots carry no MAC"
    pending = sorted(versions)
    checks = []
    try:
        for fresh in _snapshots_along(app, originator_id, pending):
            checks.append(_check_one(app, store, originator_id, pending.pop(0), fresh))
    except Exception as exc:
        problem = (f"cannot be checked: the events of {originator_id} cannot be replayed "
                   f"({type(exc).__name__}; see the chain's breaks)")
        return [*checks, *(SnapshotCheck(store.table, originator_id, v, problem)
                           for v in pending)]
    checks.extend(_check_one(app, store, originator_id, version, None) for version in pending)
    return checks


def _snapshots_along(app: Application[UUID], originator_id: UUID, versions: Sequence[int]
                     ) -> Iterator[Any]:
    """Fresh snapshots at each of `versions` (ascending), replaying the events once; stops
    where the events end."""
    if not versions:
        return
    wanted = set(versions)
    replayed: Any = None
    for event in app.events.get(originator_id, lte=max(versions)):
        replayed = event.mutate(replayed)  # type: ignore[attr-defined]
        if replayed is not None and replayed.version in wanted:
            snapshot_class = getattr(type(replayed), "Snapshot", type(app).snapshot_class)
            assert snapshot_class is not None
            yield snapshot_class.take(replayed)


def _check_one(
    app: Application[UUID], store: MacSnapshotStore, originator_id: UUID, version: int,
    fresh: Any,
) -> SnapshotCheck:
    found = store.recorder.select_events(originator_id, gt=version - 1, lte=version)
    if not found:
        return SnapshotCheck(store.table, originator_id, version, "no such snapshot")
    stored = found[0]
    problems = []
    inner, problem = store.opened(stored)
    if inner is None:
        problems.append(problem or "")
    if fresh is None:
        problems.append(f"the events of {originator_id} do not reach version {version}")
    else:
        problems.extend(_compare_state(app, store, stored, fresh))
    return SnapshotCheck(store.table, originator_id, version, "; ".join(problems) or None)


def snapshot_from_events(app: Application[UUID], originator_id: UUID, version: int) -> Any:
    """A snapshot of the aggregate at `version` replayed from its events only (None if the
    events do not reach that version)."""
    return next(iter(_snapshots_along(app, originator_id, [version])), None)


def _compare_state(
    app: Application[UUID], store: MacSnapshotStore, stored: StoredEvent, fresh: Any
) -> list[str]:
    """Differences between the snapshot's state and the replayed state, by field.

    Compared as plain JSON first (fast); only a field whose JSON differs is decoded and
    compared as values, so that personal data sealed anew (another nonce, same person and
    data) is not a difference.
    """
    try:
        document = json.loads(_plain(store.mapper, store.unverified(stored).state))
        actual = document["state"]
    except Exception as exc:  # altered bytes may fail in any way
        return [f"its state cannot be decoded ({type(exc).__name__})"]
    transcoder = app.mapper.transcoder
    expected = json.loads(transcoder.encode(fresh.state))
    if not isinstance(actual, dict) or not isinstance(expected, dict):
        return ["its state is not a record"]
    differing = [
        name for name in sorted(set(actual) | set(expected))
        if actual.get(name) != expected.get(name)
        and not _same_values(transcoder, actual.get(name), expected.get(name))
    ]
    if document.get("topic") != fresh.topic or stored.topic != get_topic(type(fresh)):
        differing.append("topic")
    if not differing:
        return []
    return [f"its state differs from the events replayed to version {stored.originator_version}"
            f" in {', '.join(differing)}"]


def _plain(mapper: Mapper[UUID], state: bytes) -> bytes:
    """Stored bytes before the mapper's cipher and compressor (if the store uses them)."""
    if mapper.cipher:
        state = mapper.cipher.decrypt(state)
    if mapper.compressor:
        state = mapper.compressor.decompress(state)
    return state


def _same_values(transcoder: Transcoder, actual: Any, expected: Any) -> bool:
    """Whether two JSON values decode to equal values (personal data compared opened)."""
    try:
        return bool(transcoder.decode(json.dumps(actual).encode())
                    == transcoder.decode(json.dumps(expected).encode()))
    except Exception:  # an altered value may not decode at all
        return False
