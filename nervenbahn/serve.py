"""`nervenbahn serve`: the HTTP API, the relay and the projections' consumers, together.

Each runs in a thread of its own; every part comes from the container (`nervenbahn.container`),
the Server only supervises the threads (a Kafka consumer needs its own thread to join its group).
A projection whose read model (SQLite file, or tables in the PostgreSQL schema of
NERVENBAHN_PROJECTIONS_STORE) does not exist yet is first rebuilt from the event store; its
consumer then starts at the beginning of the topic and skips, by event id, what the rebuild
applied. Everything stops when `stop()` is called (SIGINT/SIGTERM from the CLI).

The Server is the app's `Supervision` (`nervenbahn.health`): `GET /health/ready` asks it which
worker threads are alive and how far each relay is behind the store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
import uvicorn

from bus.effects import EffectStore
from bus.relay import Relay
from nervenbahn.audit.access import access_log_to_sign
from nervenbahn.audit.checkpoints import SigningKey, write_checkpoint
from nervenbahn.config import Settings
from nervenbahn.container import Container
from nervenbahn.datasets import CASE_EVENTS, CASE_FACTS, PAYMENT_ORDERS
from projections import PROJECTIONS, Projection

__all__ = ["Server"]

log = structlog.get_logger("nervenbahn.serve")


@dataclass
class Server:
    """The API, the relays and the projections of one process, each in a thread."""

    container: Container
    app: Any
    host: str = "127.0.0.1"
    port: int = 8000
    projections: tuple[str, ...] = tuple(PROJECTIONS)
    payments: bool = True
    """Also run the payments relay (payment runs → the payments topic)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stores: dict[str, EffectStore] = field(default_factory=dict)
    _relays: dict[str, Relay | None] = field(default_factory=dict)
    _uvicorn: uvicorn.Server | None = None

    @property
    def settings(self) -> Settings:
        """The container's settings."""
        return self.container.settings

    @property
    def url(self) -> str:
        """Where the API answers."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Build missing read models (before any worker competes for the CPU), then start
        the relays, the consumers and the API (which asks this Server about its workers)."""
        projections = {name: self.container.projection(name) for name in self.projections}
        for name, projection in projections.items():
            events = self.container.ensure_read_model(projection)
            if events is not None:
                log.info("projection built from the store", projection=name, events=events)
        for name, projection in projections.items():
            store = self.container.projection_store(projection)
            self._stores[name] = store
            self._spawn(f"projection-{name}", self._consume, projection, store)
        self._spawn_relay("relay", CASE_EVENTS)
        self._spawn_relay("reporting-relay", CASE_FACTS)
        self._spawn("checkpointer", self._checkpointer)
        if self.payments:
            self._spawn_relay("payments-relay", PAYMENT_ORDERS)
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="warning", lifespan="off"
        )
        self._uvicorn = uvicorn.Server(config)
        self.app.state.supervision = self
        self._spawn("api", self._uvicorn.run)

    def wait_until_serving(self, within: float = 20.0) -> bool:
        """True once uvicorn accepts requests."""
        step = threading.Event()
        for _ in range(int(within / 0.05)):
            if self._uvicorn is not None and self._uvicorn.started:
                return True
            step.wait(0.05)
        return False

    def stop(self) -> None:
        """Stop everything and wait for the threads."""
        self.stop_soon()
        for thread in self._threads:
            thread.join(timeout=30)
        for store in self._stores.values():
            store.close()

    def stop_soon(self) -> None:
        """Ask everything to stop (safe from a signal handler); `stop()` then waits."""
        self._stop.set()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    def run_until_stopped(self) -> None:
        """Block until `stop()` is called from elsewhere (a signal handler)."""
        self._stop.wait()

    def workers_alive(self) -> Mapping[str, bool]:
        """Each worker thread (relays, consumers, checkpointer, API) by name: alive or not."""
        return {thread.name: thread.is_alive() for thread in self._threads}

    def relay_lags(self) -> Mapping[str, int | str]:
        """Each relay by name: recorded events it has not published yet, or why that is
        unknown (not opened yet, or its position or the store cannot be read)."""
        lags: dict[str, int | str] = {}
        for name, relay in dict(self._relays).items():
            if relay is None:
                lags[name] = "not started yet"
                continue
            try:
                lags[name] = relay.status().lag
            except Exception as exc:  # a health probe reports, it never fails the request
                lags[name] = f"lag unknown: {type(exc).__name__}: {exc}"
        return lags

    # --- workers ---------------------------------------------------------------------------

    def _spawn(self, name: str, target: Callable[..., object], *args: Any) -> None:
        thread = threading.Thread(
            target=self._guarded, args=(name, target, *args), name=name, daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _spawn_relay(self, name: str, dataset: str) -> None:
        self._relays[dataset] = None  # listed (as not started) before its thread runs
        self._spawn(name, self._relay, dataset)

    def _guarded(self, name: str, target: Callable[..., object], *args: Any) -> None:
        try:
            target(*args)
        except Exception:
            log.exception("worker stopped on an error", worker=name)

    def _relay(self, dataset: str) -> None:
        with self.container.relay(dataset) as relay:
            self._relays[dataset] = relay
            relay.run(self._stop)

    def _checkpointer(self) -> None:
        """Every NERVENBAHN_AUDIT_CHECKPOINT_SECONDS: sign a checkpoint if a chain moved, then
        publish what the broker has not acknowledged yet."""
        key = SigningKey.from_seed(self.settings.signing_key.get_secret_value())
        while not self._stop.wait(self.settings.checkpoint_interval_seconds):
            db = self.container.audit_database()
            try:
                access = access_log_to_sign(self.settings.api.access_log)
                write_checkpoint(db, key, **access, only_if_moved=True)
                self.container.publish_checkpoints(db)
            except Exception:
                log.exception("checkpoint not signed or not published; retried next interval")
            finally:
                db.close()


    def _consume(self, projection: Projection, store: EffectStore) -> None:
        with self.container.projection_consumer(projection, store) as consumer:
            consumer.run(self._stop, poll_ms=200)
