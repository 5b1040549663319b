"""The supervisor of serve's workers (`nervenbahn.supervision`), with plain functions as
workers: restarts with back-off, giving up, and a stop that ends a back-off at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from nervenbahn.config import ConfigError, ServeSettings, load_settings
from nervenbahn.supervision import RestartPolicy, Supervisor, WorkerFailedError
from tests.bus.waiting import wait_until

FAST = RestartPolicy(backoff_seconds=0.01, backoff_max_seconds=0.05, max_restarts=3,
                     window_seconds=60)


def _failing(times: int, then: Callable[[], object]) -> tuple[Callable[[], object], list[int]]:
    """A worker that raises on its first `times` runs, then runs `then`; and its run count."""
    runs = [0]

    def worker() -> object:
        runs[0] += 1
        if runs[0] <= times:
            raise RuntimeError(f"run {runs[0]} failed")
        return then()

    return worker, runs


def test_a_worker_that_raises_is_restarted_and_runs_again() -> None:
    stop, gave_up = threading.Event(), threading.Event()
    supervisor = Supervisor(FAST, stop, gave_up.set)
    worker, runs = _failing(2, lambda: stop.wait())

    supervisor.run("projection-region", worker)

    wait_until(lambda: supervisor.workers_alive() == {"projection-region": True} and runs[0] == 3,
               within=10, what="the third run")
    assert supervisor.worker_restarts() == {"projection-region": 2}
    assert supervisor.failure is None and not gave_up.is_set()
    stop.set()
    assert supervisor.join(timeout=5) == []


def test_a_worker_that_returns_while_serving_counts_as_a_failure() -> None:
    stop, gave_up = threading.Event(), threading.Event()
    supervisor = Supervisor(FAST, stop, gave_up.set)

    supervisor.run("relay", lambda: None)

    wait_until(gave_up.is_set, within=10, what="given up")
    assert supervisor.failure is not None
    assert supervisor.failure.error == "it returned while serve was running"
    assert supervisor.worker_restarts() == {"relay": FAST.max_restarts}


def test_a_worker_failing_more_than_max_restarts_within_the_window_is_given_up() -> None:
    stop = threading.Event()
    gave_up: list[str] = []
    supervisor = Supervisor(FAST, stop, lambda: gave_up.append("stop serve"))
    worker, runs = _failing(100, lambda: None)

    supervisor.run("checkpointer", worker)

    wait_until(lambda: bool(gave_up), within=10, what="given up")
    assert supervisor.join(timeout=5) == []
    assert runs[0] == FAST.max_restarts + 1
    assert gave_up == ["stop serve"]
    failure = supervisor.failure
    assert isinstance(failure, WorkerFailedError)
    assert str(failure) == ("worker checkpointer failed 4 times within 60 s, serve stopped; "
                            "last error: RuntimeError: run 4 failed")
    assert supervisor.workers_alive() == {"checkpointer": False}


def test_failures_outside_the_window_do_not_count() -> None:
    now = [0.0]
    stop, gave_up = threading.Event(), threading.Event()
    policy = RestartPolicy(backoff_seconds=0.01, backoff_max_seconds=0.01, max_restarts=1,
                           window_seconds=10)
    supervisor = Supervisor(policy, stop, gave_up.set, clock=lambda: now[0])

    def worker() -> None:
        now[0] += 11  # each run fails 11 s after the one before: never two in one window
        if now[0] > 60:
            stop.wait()
            return
        raise RuntimeError("flaky")

    supervisor.run("relay", worker)

    wait_until(lambda: supervisor.worker_restarts() == {"relay": 5}, within=10, what="5 restarts")
    assert not gave_up.is_set()
    stop.set()
    assert supervisor.join(timeout=5) == []


def test_stop_during_a_back_off_returns_at_once() -> None:
    stop = threading.Event()
    slow = RestartPolicy(backoff_seconds=300, backoff_max_seconds=300, max_restarts=5,
                         window_seconds=600)
    supervisor = Supervisor(slow, stop, lambda: None)
    worker, runs = _failing(1, lambda: None)
    supervisor.run("relay", worker)
    wait_until(lambda: runs[0] == 1 and supervisor.workers_alive() == {"relay": False},
               within=10, what="the first failure")

    began = time.monotonic()
    stop.set()
    assert supervisor.join(timeout=5) == []

    assert time.monotonic() - began < 1.0
    assert runs[0] == 1
    assert supervisor.worker_restarts() == {"relay": 0}


def test_the_back_off_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(backoff_seconds=1, backoff_max_seconds=5, max_restarts=9,
                           window_seconds=60)

    assert [policy.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_an_error_while_stopping_is_not_a_failure() -> None:
    stop, gave_up = threading.Event(), threading.Event()
    supervisor = Supervisor(FAST, stop, gave_up.set)

    def worker() -> None:
        stop.wait()
        raise RuntimeError("connection closed under me")

    supervisor.run("relay", worker)
    stop.set()

    assert supervisor.join(timeout=5) == []
    assert supervisor.worker_restarts() == {"relay": 0} and supervisor.failure is None


@pytest.mark.parametrize(("variable", "value"), [
    ("NERVENBAHN_WORKER_BACKOFF_SECONDS", "0"),
    ("NERVENBAHN_WORKER_BACKOFF_MAX_SECONDS", "soon"),
    ("NERVENBAHN_WORKER_MAX_RESTARTS", "0"),
    ("NERVENBAHN_WORKER_RESTART_WINDOW_SECONDS", "-5"),
    ("NERVENBAHN_INCIDENT_CHECK_SECONDS", "inf"),
    ("NERVENBAHN_ADVANCE_CLAIMS_SECONDS", "0"),
    ("NERVENBAHN_ADVANCE_CLAIMS_SECONDS", "nan"),
])
def test_a_bad_supervision_setting_is_refused_naming_it(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        load_settings({variable: value})


def test_a_back_off_cap_below_the_back_off_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^NERVENBAHN_WORKER_BACKOFF_MAX_SECONDS: 1 is shorter"):
        load_settings({"NERVENBAHN_WORKER_BACKOFF_SECONDS": "2",
                       "NERVENBAHN_WORKER_BACKOFF_MAX_SECONDS": "1"})


def test_the_supervision_settings_are_read() -> None:
    serve = load_settings({"NERVENBAHN_WORKER_BACKOFF_SECONDS": "0.5",
                           "NERVENBAHN_WORKER_BACKOFF_MAX_SECONDS": "30",
                           "NERVENBAHN_WORKER_MAX_RESTARTS": "7",
                           "NERVENBAHN_WORKER_RESTART_WINDOW_SECONDS": "120",
                           "NERVENBAHN_INCIDENT_CHECK_SECONDS": "2",
                           "NERVENBAHN_ADVANCE_CLAIMS_SECONDS": "0.5"}).serve

    assert RestartPolicy.from_settings(serve) == RestartPolicy(0.5, 30, 7, 120)
    assert serve.incident_check_seconds == 2
    assert serve.advance_claims_seconds == 0.5
    assert load_settings({}).serve.advance_claims_seconds == 5


def test_the_claims_interval_is_validated_by_the_model_too() -> None:
    with pytest.raises(ValidationError, match="advance_claims_seconds"):
        ServeSettings(advance_claims_seconds=0)
