"""Readiness of a process: is its event store reachable, its access log writable, every worker
alive, every relay close enough to the store's head, and has every read model's consumer read
what its partitions held since it started?

`Readiness` is built by the composition root (`nervenbahn.api.context.build_api_context`) from
the settings; `GET /health/ready` asks it on every call. The worker and lag checks need the
process's `Supervision` (`nervenbahn.serve.Server`); an API app without one (tests, a plain
app) reports its workers as "not supervised", which is ok.

Every probe opens a connection of its own instead of reusing a pooled one: an open connection
keeps working when its file is moved away or its server restarts, and a probe must see what the
next request would meet. The probes read or lock, never write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import psycopg

from nervenbahn.config import StoreConfig

if TYPE_CHECKING:
    from nervenbahn.progress import GroupReport

__all__ = ["Check", "Readiness", "Supervision", "probe_access_log", "probe_store"]

_PROBE_TIMEOUT_SECONDS = 2


@dataclass(frozen=True)
class Check:
    """One readiness check: its name, whether it passed, and what it found."""

    name: str
    ok: bool
    detail: str


class Supervision(Protocol):
    """What a process that runs workers tells about them (`nervenbahn.serve.Server`)."""

    def workers_alive(self) -> Mapping[str, bool]:
        """Each worker thread by name: whether it is alive."""

    def relay_lags(self) -> Mapping[str, int | str]:
        """Each relay by name: recorded events not yet published, or why that is unknown."""

    def worker_restarts(self) -> Mapping[str, int]:
        """Each worker by name: how often it was restarted since the process started."""

    def consumer_groups(self) -> Sequence[GroupReport]:
        """Each read model's consumer group: lag, dead letters, freshness (`GET /metrics`)."""

    def read_models_caught_up(self) -> Mapping[str, bool]:
        """Each read model by name: whether its consumer has read what its partitions held
        since it started (an instance joining late catches up before it is ready)."""


def probe_store(store: StoreConfig) -> None:
    """Raise unless a new connection to the event store answers a query."""
    if store.kind == "sqlite":
        uri = f"{Path(store.sqlite_path or '').absolute().as_uri()}?mode=ro"
        db = sqlite3.connect(uri, uri=True, timeout=_PROBE_TIMEOUT_SECONDS)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            db.close()
        return
    conninfo = psycopg.conninfo.make_conninfo(store.conninfo(),
                                              connect_timeout=_PROBE_TIMEOUT_SECONDS)
    with psycopg.connect(conninfo) as server:
        server.execute("SELECT 1").fetchone()


def probe_access_log(path: Path) -> None:
    """Raise unless the access log exists and its write lock can be taken now (taken and
    released at once: nothing is written)."""
    uri = f"{path.absolute().as_uri()}?mode=rw"
    db = sqlite3.connect(uri, uri=True, timeout=_PROBE_TIMEOUT_SECONDS, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
    finally:
        db.close()


@dataclass(frozen=True)
class Readiness:
    """The readiness checks of one process: its store, its access log, and (when supervised)
    its workers and relays' lag against `max_lag` (NERVENBAHN_READY_MAX_LAG)."""

    store: StoreConfig
    access_log: Path
    max_lag: int

    def checks(self, supervision: Supervision | None) -> list[Check]:
        """Every check, in a fixed order: store, access-log, workers, relay-lag,
        read-models."""
        return [
            _probed("store", lambda: probe_store(self.store), self.store.describe()),
            _probed("access-log", lambda: probe_access_log(self.access_log),
                    str(self.access_log)),
            _workers(supervision),
            _lag(supervision, self.max_lag),
            _read_models(supervision),
        ]

    def report(self, supervision: Supervision | None) -> tuple[bool, dict[str, Any]]:
        """Whether every check passed, and the answer's body: the status, each check with
        "ok" or what is wrong, and the names of the failing ones."""
        checks = self.checks(supervision)
        failing = [check.name for check in checks if not check.ok]
        body = {
            "status": "not ready" if failing else "ready",
            "failing": failing,
            "checks": {check.name: check.detail for check in checks},
        }
        return not failing, body


def _probed(name: str, probe: Any, what: str) -> Check:
    try:
        probe()
    except (sqlite3.Error, psycopg.Error, OSError) as exc:
        return Check(name, False, f"{what} unreachable: {exc}".strip())
    return Check(name, True, "ok")


def _workers(supervision: Supervision | None) -> Check:
    if supervision is None:
        return Check("workers", True, "not supervised")
    dead = sorted(name for name, alive in supervision.workers_alive().items() if not alive)
    if dead:
        return Check("workers", False, f"not alive: {', '.join(dead)}")
    return Check("workers", True, "ok")


def _lag(supervision: Supervision | None, max_lag: int) -> Check:
    if supervision is None:
        return Check("relay-lag", True, "not supervised")
    problems = []
    for relay, lag in sorted(supervision.relay_lags().items()):
        if isinstance(lag, str):
            problems.append(f"{relay}: {lag}")
        elif lag > max_lag:
            problems.append(f"{relay}: {lag} events behind (bound {max_lag})")
    if problems:
        return Check("relay-lag", False, "; ".join(problems))
    return Check("relay-lag", True, "ok")


def _read_models(supervision: Supervision | None) -> Check:
    if supervision is None:
        return Check("read-models", True, "not supervised")
    behind = sorted(name for name, done in supervision.read_models_caught_up().items()
                    if not done)
    if behind:
        return Check("read-models", False, f"catching up: {', '.join(behind)}")
    return Check("read-models", True, "ok")
