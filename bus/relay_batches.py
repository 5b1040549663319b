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

**When.** The process starts when the relay, after a full batch, finds itself at least
`from_lag` events (NERVENBAHN_RELAY_PREPARE_FROM_LAG, default 5000; 0: never) and two batches
behind, and ends as soon as a batch comes back short (caught up), or the relay is standby or
closes: a relay keeping pace with a trickle of commands prepares in its own process, without
a process waiting beside it, and without a round trip between processes in the command →
effect latency. While the process starts (0.5-0.7 s), the relay prepares its batches itself.

**Supervised.** A process that died (killed, out of memory), does not answer within
`timeout_s` (the relay keeps it within half of what its lease has left after a renewal: 5 s
by default) or cannot be started is ended (killed if it hangs), and `RelayPreparerError`
says why; the relay logs it and prepares its batches itself for a while. Nothing was sent for
that batch, so nothing is sent twice. An error no retry can cure (an event that does not fit
its schema) stops the relay at that event, as in its own process. The process ends by itself
when the relay's process dies (its socket closes).

**Started as a new interpreter** (`python -c`, the parent's import path first), not through
`multiprocessing`'s spawn, which would run the embedding program's main module again in the
child (a script without an `if __name__ == "__main__":` guard, a connector's test harness),
nor a fork, which would copy the relay's threads and their locks. The factory, the store's
settings and master key with it, goes through the socket pair, never a file or the command
line.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
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
    """Prepares a relay's batches in a process of its own (one batch ahead) while the relay is
    far behind. `factory`, called in that process, opens what it reads (`RelaySource`); it
    must pickle (a module-level function, or a partial of one). The relay starts it at least
    `from_lag` events (and two batches) behind; `timeout_s` is the longest it waits for one
    batch (`Relay` keeps it well within its lease)."""

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
        self.timeout_s = timeout_s
        self._process: subprocess.Popen[bytes] | None = None
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
        in about 0.5-0.7 s here (an interpreter importing the domain)."""
        if not self._ready and self._conn is not None and self._conn.poll(0):
            kind, payload = self._take()
            if kind != "ready":
                self._failed(f"could not start: {payload}")
            self._ready = True
        return self._ready

    def start(self) -> None:
        """Start the process: a new interpreter running `_child` (not `multiprocessing`'s
        spawn, which runs the embedding program's main module again in the child), given the
        parent's import path and, through a socket pair, the factory. RelayPreparerError if
        it cannot be started (no process, no descriptor left)."""
        if self._process is not None:
            return
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(  # noqa: S603 - our interpreter, our module
                [sys.executable, "-c", _CHILD, str(theirs.fileno()),
                 *(path for path in sys.path if path)],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True,
            )
        except Exception as exc:
            ours.close()
            raise RelayPreparerError(
                f"relay {self._name}: the process preparing its batches could not start: "
                f"{type(exc).__name__}: {exc}") from exc
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        self._process, self._conn, self._asked, self._ready = process, conn, None, False
        self.starts += 1
        try:
            conn.send(self._factory)
        except OSError:
            self._ended()
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

    def stop(self, *, kill: bool = False) -> None:
        """End the process (caught up, standby, or the relay closes): asked to end, and killed
        if it does not within a second; killed at once if it is still starting (it holds
        nothing yet) or `kill` (it did not answer)."""
        process, conn, ready = self._process, self._conn, self._ready
        self._process, self._conn, self._asked, self._ready = None, None, None, False
        if process is None:
            return
        if conn is not None:
            if ready and not kill:
                with contextlib.suppress(OSError):  # it may be gone already
                    conn.send(None)
            conn.close()
        if kill or not ready:
            process.kill()
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

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
        deadline = time.monotonic() + self.timeout_s
        while not conn.poll(min(1.0, max(deadline - time.monotonic(), 0))):
            if process.poll() is not None:
                self._failed(f"ended (exit code {process.returncode})")
            if time.monotonic() >= deadline:
                self._failed(f"did not answer within {self.timeout_s:g} s", kill=True)

    def _take(self) -> tuple[str, Any]:
        """What the process sent (it has: `poll` said so)."""
        assert self._conn is not None
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError):
            self._ended()
        return kind, payload

    def _ended(self) -> Any:
        """The pipe broke: the process ended (or is ending); say how."""
        assert self._process is not None
        try:
            code: int | None = self._process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            code = None
        self._failed(f"ended (exit code {code})", kill=code is None)

    def _failed(self, what: str, *, kill: bool = False) -> Any:
        self.stop(kill=kill)
        raise RelayPreparerError(f"relay {self._name}: the process preparing its batches {what}")


_CHILD = (
    "import sys; sys.path[:0] = sys.argv[2:]; "
    "from bus.relay_batches import _child; _child(int(sys.argv[1]))"
)
"""What the preparing process runs: the parent's import path first (its arguments after the
socket's descriptor), so that it imports the same modules the factory names."""


def _child(fd: int) -> None:
    """The preparing process: takes the factory from the socket `fd`, says it is ready once
    it opened what it reads, then sends a batch for each (after, limit) asked, until None or
    the socket closes (the relay stopped it, or its process is gone). An error a retry may
    cure is sent back as text (the relay retries); an event that cannot be encoded at all ends
    its batch (`Batch.stopped`)."""
    conn = Connection(fd)
    try:
        factory = conn.recv()
    except (EOFError, OSError):
        return  # the relay stopped it while it started
    try:
        source, encode, close = factory()
    except Exception as exc:  # a store or registry not reachable (OSError too): say so
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
