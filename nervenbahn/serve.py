"""`nervenbahn serve`: the HTTP API, the relay and the projections' consumers, together.

Each runs in a thread of its own (a Kafka consumer needs its own thread to join its group).
A projection whose read model (SQLite file, or tables in the PostgreSQL schema of
NERVENBAHN_PROJECTIONS_STORE) does not exist yet is first rebuilt from the event store; its
consumer then starts at the beginning of the topic and skips, by event id, what the rebuild
applied. Everything stops when `stop()` is called (SIGINT/SIGTERM from the CLI).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import uvicorn

from bus.effects import EffectStore
from nervenbahn.audit.access import access_log_to_sign
from nervenbahn.audit.checkpoints import SigningKey, write_checkpoint
from nervenbahn.audit.database import open_audit_database
from nervenbahn.bootstrap import build_payment_service
from nervenbahn.config import Settings
from nervenbahn.paths import read_model_target
from nervenbahn.wiring import Bus
from projections import PROJECTIONS, Projection, open_projection_store, rebuild
from projections.storage import read_model_built

__all__ = ["Server"]

log = structlog.get_logger("nervenbahn.serve")


@dataclass
class Server:
    """The API, the relay and the projections of one process."""

    bus: Bus
    settings: Settings
    app: Any
    host: str = "127.0.0.1"
    port: int = 8000
    projections: tuple[str, ...] = tuple(PROJECTIONS)
    payments: bool = True
    """Also run the payments relay (payment runs → the payments topic)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stores: dict[str, EffectStore] = field(default_factory=dict)
    _uvicorn: uvicorn.Server | None = None

    @property
    def url(self) -> str:
        """Where the API answers."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Build missing read models (before any worker competes for the CPU), then start
        the relays, the consumers and the API."""
        projections = {name: PROJECTIONS[name].from_settings(self.settings)
                       for name in self.projections}
        for name, projection in projections.items():
            target = read_model_target(self.settings, name)
            if not read_model_built(target, projection.tables[0]):
                if isinstance(target, Path):
                    target.parent.mkdir(parents=True, exist_ok=True)
                events = rebuild(projection, self.bus.service, target)
                log.info("projection built from the store", projection=name, events=events)
        for name, projection in projections.items():
            store = open_projection_store(projection, read_model_target(self.settings, name))
            self._stores[name] = store
            self._spawn(f"projection-{name}", self._consume, projection, store)
        self._spawn("relay", self._relay)
        self._spawn("reporting-relay", self._reporting_relay)
        self._spawn("checkpointer", self._checkpointer)
        if self.payments:
            self._spawn("payments-relay", self._payments_relay)
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="warning", lifespan="off"
        )
        self._uvicorn = uvicorn.Server(config)
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

    # --- workers ---------------------------------------------------------------------------

    def _spawn(self, name: str, target: Callable[..., object], *args: Any) -> None:
        thread = threading.Thread(
            target=self._guarded, args=(name, target, *args), name=name, daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _guarded(self, name: str, target: Callable[..., object], *args: Any) -> None:
        try:
            target(*args)
        except Exception:
            log.exception("worker stopped on an error", worker=name)

    def _relay(self) -> None:
        with self.bus.relay() as relay:
            relay.run(self._stop)

    def _checkpointer(self) -> None:
        """Every NERVENBAHN_AUDIT_CHECKPOINT_SECONDS: sign a checkpoint if a chain moved, then
        publish what the broker has not acknowledged yet."""
        key = SigningKey.from_seed(self.settings.signing_key.get_secret_value())
        while not self._stop.wait(self.settings.checkpoint_interval_seconds):
            db = open_audit_database(self.settings.store)
            try:
                access = access_log_to_sign(self.settings.api.access_log)
                write_checkpoint(db, key, **access, only_if_moved=True)
                self.bus.publish_checkpoints(db)
            except Exception:
                log.exception("checkpoint not signed or not published; retried next interval")
            finally:
                db.close()

    def _reporting_relay(self) -> None:
        with self.bus.reporting_relay(self.settings.reporting_key) as relay:
            relay.run(self._stop)

    def _payments_relay(self) -> None:
        payments = build_payment_service(self.settings, self.bus.service)
        try:
            with self.bus.payments_relay(payments) as relay:
                relay.run(self._stop)
        finally:
            payments.close()

    def _consume(self, projection: Projection, store: EffectStore) -> None:
        with self.bus.projection_consumer(projection, store) as consumer:
            consumer.run(self._stop, poll_ms=200)
