"""Supervision of the workers of `nervenbahn serve`: each runs in a thread of its own and is
restarted with an exponential back-off when it fails; one that keeps failing stops `serve`.

A worker *fails* when it raises, or when it returns while no stop was asked (a relay or a
consumer loop only returns when told to stop; uvicorn returns when it cannot serve). After a
failure the supervisor logs it (worker, error, attempt), waits
`backoff_seconds * 2 ** (failures in the window - 1)`, at most `backoff_max_seconds`, and
starts the worker again, counting a restart. A worker that fails more than `max_restarts`
times within `window_seconds` is given up: the supervisor records `WorkerFailedError` (worker,
failures, last error) and calls `on_give_up` (the Server stops everything); the CLI then exits
3 with that one line, so that a process manager restarts the process, which heals what a thread
restart cannot (a broken connection pool, a leaked lock).

The back-off is a wait on the stop event (`threading.Event.wait`): a stop asked during it
ends the wait at once. While a worker is down (between its failure and its restart) it is
reported as not alive (`workers_alive`), so `GET /health/ready` answers 503 meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from domain.errors import NervenbahnError
from nervenbahn.config import ServeSettings

__all__ = ["RestartPolicy", "Supervisor", "WorkerFailedError"]

log = structlog.get_logger("nervenbahn.supervision")


class WorkerFailedError(NervenbahnError):
    """A worker of `serve` kept failing, so `serve` stopped (a process manager restarts it)."""

    def __init__(self, worker: str, failures: int, window_seconds: float, error: str) -> None:
        self.worker = worker
        self.failures = failures
        self.error = error
        super().__init__(
            f"worker {worker} failed {failures} times within {window_seconds:g} s, serve "
            f"stopped; last error: {error}"
        )


@dataclass(frozen=True)
class RestartPolicy:
    """When and how often a failed worker is restarted (NERVENBAHN_WORKER_* settings)."""

    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    max_restarts: int = 5
    window_seconds: float = 300.0

    @classmethod
    def from_settings(cls, serve: ServeSettings) -> RestartPolicy:
        """The policy of the `serve` settings section."""
        return cls(
            backoff_seconds=serve.worker_backoff_seconds,
            backoff_max_seconds=serve.worker_backoff_max_seconds,
            max_restarts=serve.worker_max_restarts,
            window_seconds=serve.worker_restart_window_seconds,
        )

    def delay(self, failures: int) -> float:
        """The wait before the restart that follows the `failures`-th failure in the window."""
        return min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(failures - 1, 0))


@dataclass
class _Worker:
    name: str
    target: Callable[[], object]
    thread: threading.Thread | None = None
    running: bool = False
    restarts: int = 0
    failures: deque[float] = field(default_factory=deque)


class Supervisor:
    """Runs named workers, each in a thread, restarting them by `policy` until `stop` is set.

    `on_give_up` is called (once, from the failing worker's thread) when a worker has failed
    too often; `failure` then holds the error to report.
    """

    def __init__(
        self,
        policy: RestartPolicy,
        stop: threading.Event,
        on_give_up: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._stop = stop
        self._on_give_up = on_give_up
        self._clock = clock
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._failure: WorkerFailedError | None = None

    @property
    def failure(self) -> WorkerFailedError | None:
        """The worker given up, if one was (the first one)."""
        return self._failure

    def run(self, name: str, target: Callable[[], object]) -> None:
        """Start `target` as the worker `name` in a thread of its own, supervised."""
        worker = _Worker(name, target)
        worker.thread = threading.Thread(
            target=self._supervise, args=(worker,), name=name, daemon=True
        )
        with self._lock:
            if name in self._workers:
                raise ValueError(f"a worker named {name!r} is already supervised")
            self._workers[name] = worker
        worker.thread.start()

    def workers_alive(self) -> Mapping[str, bool]:
        """Each worker by name: alive (running its target now) or not (down, given up,
        stopped)."""
        with self._lock:
            workers = list(self._workers.values())
        return {w.name: w.running and w.thread is not None and w.thread.is_alive()
                for w in workers}

    def worker_restarts(self) -> Mapping[str, int]:
        """Each worker by name: how often it was restarted since the process started."""
        with self._lock:
            return {w.name: w.restarts for w in self._workers.values()}

    def join(self, timeout: float) -> list[str]:
        """Wait up to `timeout` seconds in all for the workers' threads; the names of those
        still running."""
        deadline = self._clock() + timeout
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            if worker.thread is not None:
                worker.thread.join(max(deadline - self._clock(), 0))
        return [w.name for w in workers if w.thread is not None and w.thread.is_alive()]

    # --- one worker's loop ---------------------------------------------------------------

    def _supervise(self, worker: _Worker) -> None:
        while not self._stop.is_set():
            error = self._attempt(worker)
            if error is None or self._stop.is_set():
                return
            delay = self._failed(worker, error)
            if delay is None or self._stop.wait(delay):
                return
            worker.restarts += 1
            log.info("worker restarting", worker=worker.name, attempt=worker.restarts + 1)

    def _attempt(self, worker: _Worker) -> str | None:
        """Run the target once: None if it ended because a stop was asked, else the error."""
        worker.running = True
        try:
            worker.target()
        except (Exception, SystemExit) as exc:  # uvicorn exits when it cannot bind
            if self._stop.is_set():
                log.debug("worker ended with an error while stopping", worker=worker.name,
                          error=f"{type(exc).__name__}: {exc}")
                return None
            log.error("worker failed", worker=worker.name, attempt=worker.restarts + 1,
                      error=f"{type(exc).__name__}: {exc}", exc_info=True)
            return f"{type(exc).__name__}: {exc}"
        finally:
            worker.running = False
        if self._stop.is_set():
            return None
        log.error("worker failed", worker=worker.name, attempt=worker.restarts + 1,
                  error="returned while serve was running")
        return "it returned while serve was running"

    def _failed(self, worker: _Worker, error: str) -> float | None:
        """Count the failure; the back-off before the restart, or None when given up."""
        now = self._clock()
        worker.failures.append(now)
        while worker.failures and worker.failures[0] < now - self.policy.window_seconds:
            worker.failures.popleft()
        if len(worker.failures) <= self.policy.max_restarts:
            return self.policy.delay(len(worker.failures))
        failure = WorkerFailedError(worker.name, len(worker.failures),
                                    self.policy.window_seconds, error)
        log.error("worker given up: serve stops", worker=worker.name,
                  failures=len(worker.failures), error=error)
        with self._lock:
            first = self._failure is None
            if first:
                self._failure = failure
        if first:
            self._on_give_up()
        return None
