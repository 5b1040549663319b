"""A relay's batches: the messages of the next recorded events, prepared in the relay's own
process or, while it catches up, in a process of its own on another core.

**Why a second process** (issue 17, benchmarks/bus_throughput.py). A relay catching up spends
about as much CPU preparing each event's messages (decoding it through eventsourcing's mapper,
its Avro record, its headers: ~60-110 µs) as kafka-python spends sending them (~80-95 µs),
and both ran under one interpreter's lock: in one process the relay could not exceed about half
the raw producer's rate (0.46-0.53× measured). The same relay fed messages prepared beforehand
sent at 1.04-1.07× the raw producer (2 runs, 20,000 events). So while it is far behind, the
relay has its batches prepared by a process of its own, one batch ahead: the process prepares
the next batch while the relay sends this one.

**What stays where.** The preparing process only reads: the notification log after a position,
through its own connections, and the encoder. Everything that carries a guarantee stays in the
relay: the lease and its fencing, the order of sending, the acknowledgements, the position
saved after them, the takeover's check of the topic's tail. A batch is the relay's only if it
starts after the position the relay loaded (a batch read ahead from another position is
dropped), and the messages are the same bytes the relay's own encoder makes (encoders are
deterministic; tests/bus/test_relay_batches.py compares them).

**When.** The process starts when the relay finds itself at least `from_lag` events behind
(NERVENBAHN_RELAY_PREPARE_FROM_LAG, default 5000; 0: never) and ends as soon as a batch comes
back short (caught up): a relay keeping pace with a trickle of commands prepares in its own
process, without a process waiting beside it, and without a round trip between processes in
the command → effect latency.

**Supervised.** A process that died (killed, out of memory) or does not answer within
`timeout_s` is ended, and the relay's batch fails with `RelayPreparerError`; `Relay.run` logs
it and retries (a new process, or its own if no longer far behind). Nothing was sent for that
batch, so nothing is sent twice. An error no retry can cure (an event that does not fit its
schema) stops the relay at that event, as in its own process. The process ends with the relay
(`close`), and by itself when the relay's process dies (its pipe closes).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import structlog

from bus.errors import BusError, EncodeError, SchemaError
from domain.application.ports import NotificationLog

__all__ = [
    "PERMANENT_ERRORS",
    "Batch",
    "PreparingProcess",
    "RelayPreparerError",
    "RelaySource",
    "prepare_batch",
]

log = structlog.get_logger("nervenbahn.relay")

PERMANENT_ERRORS: tuple[type[Exception], ...] = (EncodeError, SchemaError)
"""Errors no retry can cure: the event does not fit its schema, or the schema is wrong. (An
unreachable broker or registry is retried.)"""

Messages = Sequence[Any]
"""The messages of one event (`bus.relay.OutgoingMessage`s), as its encoder made them."""

RelaySource = tuple[NotificationLog, Callable[[Any], Messages], Callable[[], None]]
"""What a preparing process reads and encodes with: the notification log, the encoder (a
domain event → its messages), and what closes them."""


class RelayPreparerError(BusError):
    """The process preparing a relay's batches failed (it died, did not answer in time, or
    an event's preparation raised an error a retry may cure); nothing of the batch was sent."""


@dataclass(frozen=True)
class Batch:
    """The messages of the recorded events after position `after`, in order."""

    after: int
    items: list[tuple[int, Messages]]
    """(position, messages) of each event, in the log's order."""
    full: bool
    """As many events as asked for: there may be more."""
    stopped: tuple[int, str] | None = None
    """The position of an event no retry can publish and why (the items end before it)."""
    cause: BaseException | None = None
    """That event's error, when prepared in this process."""


def prepare_batch(
    source: NotificationLog, encode: Callable[[Any], Messages], after: int, limit: int
) -> Batch:
    """The next `limit` events after `after`, each decoded and encoded, up to the first that
    cannot be encoded at all (`Batch.stopped`)."""
    notifications = source.notifications(gt=after, limit=limit)
    items: list[tuple[int, Messages]] = []
    for n in notifications:
        try:
            items.append((n.id, encode(source.decode(n))))
        except PERMANENT_ERRORS as exc:
            return Batch(after, items, True, (n.id, f"{type(exc).__name__}: {exc}"), exc)
    return Batch(after, items, len(notifications) >= limit)


class PreparingProcess:
    """Prepares a relay's batches in a spawned process (one batch ahead) while the relay is at
    least `from_lag` events behind. `factory`, called in that process, opens what it reads
    (`RelaySource`); it must pickle (a module-level function, or a partial of one)."""

    def __init__(
        self,
        factory: Callable[[], RelaySource],
        *,
        from_lag: int,
        name: str = "relay",
        timeout_s: float = 60.0,
    ) -> None:
        if from_lag < 1:
            raise ValueError("a preparing process starts at a lag of at least one event")
        self._factory = factory
        self.from_lag = from_lag
        self._name = name
        self._timeout_s = timeout_s
        self._process: Any = None
        self._conn: Connection | None = None
        self._ready = False
        self._asked: tuple[int, int] | None = None
        """The batch asked for and not yet received: (after, limit)."""
        self.batches = 0
        """Batches this relay received from a preparing process (for tests and status)."""
        self.starts = 0
        """Processes started."""

    @property
    def running(self) -> bool:
        """The process was started and not stopped (it may still be starting)."""
        return self._process is not None

    @property
    def pid(self) -> int | None:
        """The process's id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def ready(self) -> bool:
        """The process has opened what it reads and takes batches: True once it said so
        (never waits). Until then the relay prepares its batches itself: a process starts
        in about 0.7 s here (an interpreter importing the domain), some 4,000 events."""
        if not self._ready and self._conn is not None and self._conn.poll(0):
            kind, payload = self._take()
            if kind != "ready":
                self._failed(f"could not start: {payload}")
            self._ready = True
        return self._ready

    def start(self) -> None:
        """Start the process (the relay is far behind)."""
        if self._process is not None:
            return
        context = multiprocessing.get_context("spawn")  # no copy of the relay's threads
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_serve, args=(self._factory, theirs), daemon=True,
            name=f"nervenbahn-{self._name}-prepare",
        )
        process.start()
        theirs.close()
        self._process, self._conn, self._asked, self._ready = process, ours, None, False
        self.starts += 1
        log.info("relay preparing batches in a process of its own", relay=self._name,
                 pid=process.pid)

    def batch(self, after: int, limit: int) -> Batch:
        """The batch after `after`: the one read ahead if it starts there, else asked now;
        then the next one is asked for at once (read ahead) if this one was full."""
        assert self._conn is not None, "start() first"
        while not self.ready:  # only when asked before it said so
            self._wait()
        if self._asked is not None and self._asked != (after, limit):
            self._receive()  # read ahead from a position the relay did not reach: dropped
        if self._asked is None:
            self._ask(after, limit)
        batch = self._receive()
        self.batches += 1
        if batch.full and batch.stopped is None and batch.items:
            self._ask(batch.items[-1][0], limit)
        return batch

    def stop(self) -> None:
        """End the process (caught up, or the relay closes)."""
        process, conn = self._process, self._conn
        self._process, self._conn, self._asked, self._ready = None, None, None, False
        if process is None:
            return
        try:
            if conn is not None:
                with contextlib.suppress(OSError):  # it may be gone already
                    conn.send(None)
                conn.close()
            process.join(timeout=5)
        finally:
            if process.is_alive():
                process.kill()
                process.join(timeout=5)

    def _ask(self, after: int, limit: int) -> None:
        assert self._conn is not None
        try:
            self._conn.send((after, limit))
        except OSError:
            self._ended()
        self._asked = (after, limit)

    def _receive(self) -> Batch:
        self._asked = None
        self._wait()
        kind, payload = self._take()
        if kind == "failed":
            raise RelayPreparerError(f"relay {self._name}: preparing a batch failed: {payload}")
        assert isinstance(payload, Batch)
        return payload

    def _wait(self) -> None:
        """Until the process has sent something, `timeout_s` at most (or it ended)."""
        conn, process = self._conn, self._process
        assert conn is not None
        assert process is not None
        deadline = time.monotonic() + self._timeout_s
        while not conn.poll(min(1.0, max(deadline - time.monotonic(), 0))):
            if not process.is_alive():
                self._failed(f"ended (exit code {process.exitcode})")
            if time.monotonic() >= deadline:
                self._failed(f"did not answer within {self._timeout_s:g} s")

    def _take(self) -> tuple[str, Any]:
        """What the process sent (it has: `poll` said so)."""
        conn, process = self._conn, self._process
        assert conn is not None
        assert process is not None
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            self._ended()
        return kind, payload

    def _ended(self) -> Any:
        """The pipe broke: the process ended (or is ending); say how."""
        assert self._process is not None
        self._process.join(timeout=1)
        self._failed(f"ended (exit code {self._process.exitcode})")

    def _failed(self, what: str) -> Any:
        self.stop()
        raise RelayPreparerError(f"relay {self._name}: the process preparing its batches {what}")


def _serve(factory: Callable[[], RelaySource], conn: Connection) -> None:
    """The preparing process: says it is ready once it opened what it reads, then sends a
    batch for each (after, limit) asked, until None or the pipe closes (the relay stopped it,
    or its process is gone). An error a retry may cure is sent back as text (the relay
    retries); an event that cannot be encoded at all ends its batch (`Batch.stopped`)."""
    try:
        source, encode, close = factory()
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    try:
        conn.send(("ready", None))
        while (asked := conn.recv()) is not None:
            try:
                batch = prepare_batch(source, encode, *asked)
                answer: tuple[str, Any] = (
                    "batch", Batch(batch.after, batch.items, batch.full, batch.stopped))
            except Exception as exc:  # the relay logs it and retries
                answer = ("failed", f"{type(exc).__name__}: {exc}")
            conn.send(answer)
    except (EOFError, OSError):
        return  # the relay stopped reading: stopped, or its process is gone
    finally:
        close()
