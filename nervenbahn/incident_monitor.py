"""The incident monitor of `serve`: every NERVENBAHN_INCIDENT_CHECK_SECONDS it looks at the
workers, the relays' lag, the broker and the store, and opens or closes incidents
(`nervenbahn.incidents`) as conditions start and end.

It is a supervised worker itself (`incident-monitor`); it never reports itself as down. A
relay that has not opened yet (right after start or a restart) is not lagging: its worker is
what is down, if anything.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from nervenbahn.health import Supervision
from nervenbahn.incidents import Incident, IncidentStore

__all__ = ["MONITOR", "IncidentMonitor", "probe_brokers"]

log = structlog.get_logger("nervenbahn.incidents")

MONITOR = "incident-monitor"
"""The monitor's own worker name."""

_NOT_STARTED = "not started yet"


def _now() -> datetime:
    return datetime.now(UTC)


def probe_brokers(bootstrap: Sequence[str], timeout: float = 2.0) -> None:
    """Return if a broker of `bootstrap` (`host:port`) accepts a TCP connection, else raise
    the last OSError."""
    error: OSError = OSError("no broker configured")
    for server in bootstrap:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return
        except (OSError, ValueError) as exc:
            error = exc if isinstance(exc, OSError) else OSError(str(exc))
    raise error


@dataclass
class IncidentMonitor:
    """Opens and closes incidents from what `supervision` and the probes find."""

    open_store: Callable[[], IncidentStore]
    supervision: Supervision
    max_lag: int
    probe_broker: Callable[[], None]
    probe_store: Callable[[], None]
    clock: Callable[[], datetime] = _now
    _store: IncidentStore | None = field(default=None, init=False)
    _store_down_since: datetime | None = field(default=None, init=False)

    def conditions(self) -> set[tuple[str, str]]:
        """(kind, subject) of every condition present now, but the store's."""
        found = {("worker-down", name) for name, alive in self.supervision.workers_alive().items()
                 if not alive and name != MONITOR}
        for relay, lag in self.supervision.relay_lags().items():
            if (isinstance(lag, int) and lag > self.max_lag) or (
                    isinstance(lag, str) and lag != _NOT_STARTED):
                found.add(("relay-lag", relay))
        try:
            self.probe_broker()
        except OSError:
            found.add(("broker-unreachable", "kafka"))
        return found

    def look(self) -> None:
        """One look: record what started and what ended since the last one."""
        now, found = self.clock(), self.conditions()
        try:
            self.probe_store()
        except Exception:  # any failure to answer is the store being down
            self._store_down(now)
            return
        try:
            self._record(now, found)
        except Exception as exc:
            if self._store is None or not self._store.lost(exc):
                raise
            # The incidents' connection was lost (a PostgreSQL restart) after the probe
            # answered: the store was down meanwhile. A new connection next time; before,
            # the monitor died here and stayed dead.
            self._forget_store()
            self._store_down(now)

    def _store_down(self, now: datetime) -> None:
        if self._store_down_since is None:
            self._store_down_since = now
            log.warning("incident: the event store is unreachable")

    def _record(self, now: datetime, found: set[tuple[str, str]]) -> None:
        store = self._opened()
        if self._store_down_since is not None:
            store.record(Incident("store-unreachable", "event store", self._store_down_since,
                                  now, "recorded when the store answered again"))
            self._store_down_since = None
        recorded = store.open_keys()
        for kind, subject in sorted(found - recorded):
            log.warning("incident opened", kind=kind, subject=subject)
            store.open(kind, subject, now)
        for kind, subject in sorted(recorded - found):
            log.info("incident closed", kind=kind, subject=subject)
            store.close(kind, subject, now)
        store.heartbeat(now)

    def run(self, stop: threading.Event, interval: float) -> None:
        """Look every `interval` seconds until `stop`; then close what is open (a clean
        stop ends every incident) and the connection."""
        try:
            while not stop.is_set():
                self.look()
                if stop.wait(interval):
                    break
            if self._store is not None:
                self._store.close_all(self.clock())
        finally:
            if self._store is not None:
                self._store.close_connection()
                self._store = None

    def _forget_store(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            store.close_connection()

    def _opened(self) -> IncidentStore:
        if self._store is None:
            self._store = self.open_store()
        return self._store
