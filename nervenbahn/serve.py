"""`nervenbahn serve`: the HTTP API, the relay and the projections' consumers, together.

Each runs in a thread of its own (a Kafka consumer needs its own thread to join its group).
A projection whose database does not exist yet is first rebuilt from the event store; its
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

from bus.effects import SQLiteEffectStore
from nervenbahn.wiring import Bus
from projections import PROJECTIONS, Projection, open_projection_store, rebuild

__all__ = ["Server"]

log = structlog.get_logger("nervenbahn.serve")


@dataclass
class Server:
    """The API, the relay and the projections of one process."""

    bus: Bus
    projection_path: Callable[[str], Path]
    app: Any
    host: str = "127.0.0.1"
    port: int = 8000
    projections: tuple[str, ...] = tuple(PROJECTIONS)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stores: dict[str, SQLiteEffectStore] = field(default_factory=dict)
    _uvicorn: uvicorn.Server | None = None

    @property
    def url(self) -> str:
        """Where the API answers."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Build missing read models, then start the relay, the consumers and the API."""
        for name in self.projections:
            projection = PROJECTIONS[name]()
            path = self.projection_path(name)
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                events = rebuild(projection, self.bus.service, path)
                log.info("projection built from the store", projection=name, events=events)
            self._stores[name] = open_projection_store(projection, path)
            self._spawn(f"projection-{name}", self._consume, projection, self._stores[name])
        self._spawn("relay", self._relay)
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
        self._stop.set()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        for thread in self._threads:
            thread.join(timeout=30)
        for store in self._stores.values():
            store.close()

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

    def _consume(self, projection: Projection, store: SQLiteEffectStore) -> None:
        def apply(received: Any, tx: Any) -> None:
            projection.apply(received.event, tx)

        with self.bus.consumer(projection.group, apply, store) as consumer:
            consumer.run(self._stop, poll_ms=200)
