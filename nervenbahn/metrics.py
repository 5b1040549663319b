"""The metrics of one process, for `GET /metrics` (Prometheus text format, prometheus-client).

Each `Metrics` has a registry of its own, not prometheus-client's global one: a test builds
many apps in one process, and each must count only its own. The container makes one per
process (`Container.metrics`); the API's context takes it, so the case service's commands
(timed by the container) and the API's requests land in the same answer.

Two kinds of figures:
- **observed** as they happen: the latency of every command of the case service (by command
  type and outcome) and of every API request (by route template, method and status class);
- **collected at scrape time** from the process's `Supervision` (`nervenbahn.serve.Server`):
  readiness, relay lag, each worker up and its restarts, each read model's consumer lag,
  freshness and dead letters. An app without a supervision exports readiness only.

No label names a person or a case: only command types, route templates (`/v1/branch-offices/
{office_id}/cases/{case_id}`, never the path asked), relays, workers, groups, read models.
The list with meanings is in docs/operations.md ("Metrics and alerts").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from domain.errors import DomainError

if TYPE_CHECKING:
    from domain.application.cases import CaseService
    from nervenbahn.health import Supervision

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of the text format (version 0.0.4)."""

_COMMAND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """One process's metrics: the histograms it observes and the collector it asks at
    scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._commands = Histogram(
            "nervenbahn_command_duration_seconds",
            "Time the case service took to execute a command, by command type and outcome "
            "(recorded; rejected: a rule of the case process said no; error: anything else).",
            ["command", "outcome"],
            registry=self.registry,
            buckets=_COMMAND_BUCKETS,
        )
        self._requests = Histogram(
            "nervenbahn_http_request_duration_seconds",
            "Time the API took to answer, by route template, method and status class (2xx…).",
            ["route", "method", "status"],
            registry=self.registry,
            buckets=_REQUEST_BUCKETS,
        )
        self._collector: _ProcessCollector | None = None

    def time_commands(self, service: CaseService) -> None:
        """Time every command the service executes (its `execute`, wrapped on this instance:
        the domain's application service stays free of metrics), with the outcomes its log
        names: recorded, rejected (a DomainError), error."""
        execute = service.execute

        def timed(command: Any, **options: Any) -> Any:
            started, outcome = perf_counter(), "error"
            try:
                result = execute(command, **options)
                outcome = "recorded"
                return result
            except DomainError:
                outcome = "rejected"
                raise
            finally:
                self._commands.labels(type(command).__name__, outcome).observe(
                    perf_counter() - started
                )

        service.execute = timed  # type: ignore[method-assign]

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Record one API answer (`route`: the route's template, never the path asked)."""
        self._requests.labels(route, method, f"{status // 100}xx").observe(seconds)

    def watch(
        self,
        supervision: Callable[[], Supervision | None],
        ready: Callable[[Supervision | None], bool],
    ) -> None:
        """Collect at every scrape: readiness (`ready`, given the supervision) and what the
        process's supervision (asked each time: `serve` attaches it after the app is built)
        tells about its relays, workers and consumer groups. Replaces an earlier watch."""
        if self._collector is not None:
            self.registry.unregister(self._collector)
        self._collector = _ProcessCollector(supervision, ready)
        self.registry.register(self._collector)

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)


class _ProcessCollector(Collector):
    """Figures read at scrape time from the process's supervision."""

    def __init__(
        self,
        supervision: Callable[[], Supervision | None],
        ready: Callable[[Supervision | None], bool],
    ) -> None:
        self._supervision = supervision
        self._ready = ready

    def describe(self) -> list[Metric]:
        """Nothing up front: the figures are only known at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Readiness, then (when supervised) relays, workers and consumer groups."""
        supervision = self._supervision()
        ready = GaugeMetricFamily(
            "nervenbahn_ready", "1 when GET /health/ready would answer 200, else 0."
        )
        ready.add_metric([], 1.0 if self._ready(supervision) else 0.0)
        yield ready
        if supervision is None:
            return
        yield from _relays_and_workers(supervision)
        yield from _groups(supervision)


def _relays_and_workers(supervision: Supervision) -> Iterator[Metric]:
    lag = GaugeMetricFamily(
        "nervenbahn_relay_lag_events",
        "Recorded events the relay has not published yet (absent while unknown).",
        labels=["relay"],
    )
    for relay, events in sorted(supervision.relay_lags().items()):
        if isinstance(events, int):
            lag.add_metric([relay], float(events))
    up = GaugeMetricFamily(
        "nervenbahn_worker_up", "1 while the worker's thread is alive, else 0.", labels=["worker"]
    )
    for worker, alive in sorted(supervision.workers_alive().items()):
        up.add_metric([worker], 1.0 if alive else 0.0)
    restarts = CounterMetricFamily(
        "nervenbahn_worker_restarts",
        "Times the worker was restarted after it failed.",
        labels=["worker"],
    )
    for worker, count in sorted(supervision.worker_restarts().items()):
        restarts.add_metric([worker], float(count))
    yield from (lag, up, restarts)


def _groups(supervision: Supervision) -> Iterator[Metric]:
    lag = GaugeMetricFamily(
        "nervenbahn_consumer_lag_messages",
        "Messages on the group's topic it has not processed (absent while the broker cannot "
        "be asked).",
        labels=["group"],
    )
    applied = GaugeMetricFamily(
        "nervenbahn_consumer_last_applied_timestamp_seconds",
        "When the group's read model last applied an event (unix time).",
        labels=["group"],
    )
    as_of = GaugeMetricFamily(
        "nervenbahn_read_model_as_of_timestamp_seconds",
        "Recorded time of the newest event the read model applied (unix time; the reporting "
        "read model knows it to the day).",
        labels=["read_model"],
    )
    dead = GaugeMetricFamily(
        "nervenbahn_dead_letter_messages",
        "Messages in the group's dead-letter topic (absent while the broker cannot be asked).",
        labels=["group"],
    )
    broker = GaugeMetricFamily(
        "nervenbahn_broker_up", "1 when the broker answered this scrape's questions, else 0."
    )
    reports = supervision.consumer_groups()
    for report in reports:
        if report.lag is not None:
            lag.add_metric([report.group], float(report.lag))
        if report.applied_at is not None:
            applied.add_metric([report.group], report.applied_at.timestamp())
        if report.as_of is not None:
            as_of.add_metric([report.read_model], report.as_of.timestamp())
        if report.dead_letters is not None:
            dead.add_metric([report.group], float(report.dead_letters))
    broker.add_metric([], 1.0 if all(r.broker == "ok" for r in reports) else 0.0)
    yield from (lag, applied, as_of, dead, broker)
