"""`nervenbahn serve`: the HTTP API, the relays, the projections' consumers and the claims
process, together.

Each runs in a thread of its own; every part comes from the container (`nervenbahn.container`),
the Server only supervises the threads (a Kafka consumer needs its own thread to join its group):
a worker that fails is restarted with back-off, one that keeps failing stops `serve`
(`nervenbahn.supervision`; `run_until_stopped` then raises `WorkerFailedError`). Every consumer
group, its dead-letter topic and every topic are checked before any thread starts
(`check_names`).
A projection whose read model (SQLite file, or tables in the PostgreSQL schema of
NERVENBAHN_PROJECTIONS_STORE) does not exist yet is first rebuilt from the event store; its
consumer then starts at the beginning of the topic and skips, by event id, what the rebuild
applied. Everything stops when `stop()` is called (SIGINT/SIGTERM from the CLI).

Several `serve` on one store announce themselves there (`nervenbahn.instances`): one started
in a shape that would split a read model between instances is refused before anything runs.

The Server is the app's `Supervision` (`nervenbahn.health`): `GET /health/ready` asks it which
worker threads are alive, how far each relay is behind the store and whether every read
model's consumer has caught up since it started, `GET /metrics` also how
often each worker was restarted and where each read model's consumer group stands.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog
import uvicorn

from bus.consumer import Consumer
from bus.kafka_errors import TopicError
from bus.relay import Relay
from bus.topics import dead_letter_topic, validate_group
from domain.errors import NervenbahnError
from nervenbahn.audit.access import access_log_to_sign
from nervenbahn.audit.checkpoints import SigningKey, write_checkpoint
from nervenbahn.claims_worker import ADVANCE_CLAIMS
from nervenbahn.config import Settings
from nervenbahn.container import FUND_DECISIONS_CONNECTOR, Container
from nervenbahn.datasets import (
    BENEFIT_APPLICATIONS,
    CASE_EVENTS,
    CASE_FACTS,
    PAYMENT_ORDERS,
    REIMBURSEMENT_CLAIMS,
)
from nervenbahn.health import probe_store
from nervenbahn.incident_monitor import MONITOR, IncidentMonitor, probe_brokers
from nervenbahn.incidents import open_incident_store
from nervenbahn.instances import ANNOUNCE_SECONDS, Membership
from nervenbahn.progress import GroupReport, group_reports
from nervenbahn.supervision import RestartPolicy, Supervisor, WorkerFailedError
from projections import PROJECTIONS, Projection

__all__ = ["InvalidNameError", "Server"]

log = structlog.get_logger("nervenbahn.serve")


class InvalidNameError(NervenbahnError):
    """`serve` refused to start: a consumer group or topic it would use has an invalid name."""


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
    benefits: bool = True
    """Also run the benefits relay (applications → the applications topic), the
    fund-decisions connector (the decisions topic → the benefits service), the claims process
    (`advance-claims`: decided advances → recorded claims, `nervenbahn.claims_worker`) and the
    claims relay (recorded claims → the claims topic, for the fund)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _supervisor: Supervisor | None = None
    _relays: dict[str, Relay | None] = field(default_factory=dict)
    _consumers: dict[str, Consumer] = field(default_factory=dict)
    _uvicorn: uvicorn.Server | None = None
    _membership: Membership | None = None

    @property
    def settings(self) -> Settings:
        """The container's settings."""
        return self.container.settings

    @property
    def url(self) -> str:
        """Where the API answers."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Check every name, build missing read models (before any worker competes for the
        CPU), then start the relays, the consumers and the API (which asks this Server about
        its workers), each supervised."""
        self.check_names()
        membership = self.container.membership()
        membership.join()  # a shape that splits a read model is refused here (and withdrawn)
        self._membership = membership
        projections = {name: self.container.projection(name) for name in self.projections}
        for name, projection in projections.items():
            events = self.container.ensure_read_model(projection)
            if events is not None:
                log.info("projection built from the store", projection=name, events=events)
        self._close_incidents_left_open()
        self._supervisor = Supervisor(
            RestartPolicy.from_settings(self.settings.serve), self._stop, self.stop_soon
        )
        for name, projection in projections.items():
            self._spawn(f"projection-{name}", self._consume, projection)
        self._spawn_relay("relay", CASE_EVENTS)
        self._spawn_relay("reporting-relay", CASE_FACTS)
        self._spawn("checkpointer", self._checkpointer)
        self._spawn("instance", self._announce)
        if self.payments:
            self._spawn_relay("payments-relay", PAYMENT_ORDERS)
        if self.benefits:
            self.container.register_fund_decision_schema()  # the fund's producer looks it up
            self._spawn_relay("benefits-relay", BENEFIT_APPLICATIONS)
            self._spawn(FUND_DECISIONS_CONNECTOR, self._record_fund_decisions)
            self._spawn(ADVANCE_CLAIMS, self._record_claims)
            self._spawn_relay("claims-relay", REIMBURSEMENT_CLAIMS)
        self.app.state.supervision = self
        self._spawn("api", self._serve_api)
        self._spawn(MONITOR, self._monitor_incidents)

    def check_names(self) -> None:
        """Refuse (`InvalidNameError`, naming it and why) a consumer group, a dead-letter
        topic or a topic of the bus that Kafka or our naming rules would refuse, before any
        thread starts: a bad name must stop `serve` at start, not at the first poison
        message."""
        kafka = self.container.kafka
        for name in self.projections:
            group = self.container.projection(name).group
            try:
                validate_group(group)
                dead_letter_topic(kafka, group)
            except TopicError as exc:
                raise InvalidNameError(
                    f"projection {name}: consumer group {group!r} or its dead-letter topic: "
                    f"{exc}"
                ) from exc
        try:
            self.container.topics  # noqa: B018 (builds and so checks every topic's name)
        except TopicError as exc:
            raise InvalidNameError(f"a topic of the bus: {exc}") from exc

    def wait_until_serving(self, within: float = 20.0) -> bool:
        """True once uvicorn accepts requests."""
        for _ in range(int(within / 0.05)):
            if self._uvicorn is not None and self._uvicorn.started:
                return True
            if self._stop.wait(0.05):  # stopped (or a worker given up) meanwhile
                return False
        return False

    @property
    def failure(self) -> WorkerFailedError | None:
        """The worker that failed too often and stopped `serve`, if one did."""
        return self._supervisor.failure if self._supervisor is not None else None

    def stop(self) -> None:
        """Stop everything and wait for the threads."""
        self.stop_soon()
        if self._supervisor is not None:
            still = self._supervisor.join(timeout=30)
            if still:
                log.warning("workers still running after 30 s", workers=still)
        if self._membership is not None:
            try:
                self._membership.leave()
            except Exception as exc:  # its announcement then runs out by itself
                log.warning("instance not withdrawn; its announcement runs out", error=str(exc))
            self._membership = None

    def stop_soon(self) -> None:
        """Ask everything to stop (safe from a signal handler); `stop()` then waits."""
        self._stop.set()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    def run_until_stopped(self) -> None:
        """Block until `stop()` is called from elsewhere (a signal handler), or until a worker
        has failed too often: then raise its `WorkerFailedError`."""
        self._stop.wait()
        if self.failure is not None:
            raise self.failure

    def workers_alive(self) -> Mapping[str, bool]:
        """Each worker (relays, consumers, checkpointer, API) by name: alive, or not (down
        between a failure and its restart, given up, stopped)."""
        return self._supervisor.workers_alive() if self._supervisor is not None else {}

    def worker_restarts(self) -> Mapping[str, int]:
        """Each worker by name: how often it was restarted since `serve` started."""
        return self._supervisor.worker_restarts() if self._supervisor is not None else {}

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

    def consumer_rewinds(self) -> Mapping[str, int]:
        """Each projection's consumer by name: partitions it rewound for a new relay epoch
        since it started (a handful after a broker came back empty; never growing for ever)."""
        return {name: consumer.rewinds for name, consumer in dict(self._consumers).items()}

    def relay_roles(self) -> Mapping[str, str]:
        """Each relay by name: `active` (this process holds its lease and publishes),
        `standby` (another instance does; this one takes over if that one stops) or `not
        started yet`. A standby is healthy: its lag is the active instance's."""
        return {
            name: "not started yet" if relay is None else relay.role
            for name, relay in dict(self._relays).items()
        }

    def read_models_caught_up(self) -> Mapping[str, bool]:
        """Each read model by name: whether its consumer has, since it started, read what its
        partitions held (False while it joins or catches up, and before it started)."""
        return {
            name: name in self._consumers and self._consumers[name].caught_up
            for name in self.projections
        }

    def consumer_groups(self) -> Sequence[GroupReport]:
        """Each projection's consumer group: lag and dead letters (asked of the broker),
        freshness (read from its read model), for `GET /metrics`."""
        projections = [self.container.projection(name) for name in self.projections]
        return group_reports(self.container, projections)

    # --- workers ---------------------------------------------------------------------------

    def _spawn(self, name: str, target: Callable[..., object], *args: Any) -> None:
        assert self._supervisor is not None
        self._supervisor.run(name, partial(target, *args))

    def _spawn_relay(self, name: str, dataset: str) -> None:
        self._relays[dataset] = None  # listed (as not started) before its thread runs
        self._spawn(name, self._relay, dataset)

    def _relay(self, dataset: str) -> None:
        self._relays[dataset] = None  # a restarted relay is "not started yet" until it opens
        with self.container.relay(dataset) as relay:
            self._relays[dataset] = relay
            relay.run(self._stop)

    def _announce(self) -> None:
        """Renew this instance's announcement on the store every `ANNOUNCE_SECONDS`."""
        assert self._membership is not None
        while not self._stop.wait(ANNOUNCE_SECONDS):
            self._membership.renew()

    def _close_incidents_left_open(self) -> None:
        """Incidents a `serve` that died left open end at its monitor's last heartbeat."""
        incidents = open_incident_store(self.settings.store)
        try:
            closed = incidents.close_left_open()
        finally:
            incidents.close_connection()
        if closed:
            log.warning("incidents left open by a serve that stopped closed", incidents=closed)

    def _monitor_incidents(self) -> None:
        store, kafka = self.settings.store, self.container.kafka
        monitor = IncidentMonitor(
            open_store=lambda: open_incident_store(store),
            supervision=self,
            max_lag=self.settings.api.ready_max_lag,
            probe_broker=lambda: probe_brokers(kafka.bootstrap_servers),
            probe_store=lambda: probe_store(store),
        )
        monitor.run(self._stop, self.settings.serve.incident_check_seconds)

    def _serve_api(self) -> None:
        """One run of uvicorn on a socket bound here (a port in use is an `OSError` naming
        it, not uvicorn's exit); a new uvicorn server for every restart."""
        with socket.create_server((self.host, self.port)) as sock:
            config = uvicorn.Config(
                self.app, host=self.host, port=self.port, log_level="warning", lifespan="on"
            )
            self._uvicorn = uvicorn.Server(config)
            if self._stop.is_set():
                return
            self._uvicorn.run(sockets=[sock])

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

    def _record_fund_decisions(self) -> None:
        """One run of the fund-decisions connector, on a bookkeeping store opened for this
        run (a restart gets a fresh connection)."""
        store = self.container.connector_store(FUND_DECISIONS_CONNECTOR)
        try:
            # Not among `_consumers` (the projections' rewinds): the fund writes no relay epoch.
            with self.container.fund_decisions_consumer(store) as consumer:
                consumer.run(self._stop, poll_ms=200)
        finally:
            store.close()

    def _record_claims(self) -> None:
        """One run of the claims worker, every NERVENBAHN_ADVANCE_CLAIMS_SECONDS until
        stopped; an error ends the run and the supervisor restarts it (a fresh worker)."""
        worker = self.container.claims_worker()
        worker.run(self._stop, self.settings.serve.advance_claims_seconds)

    def _consume(self, projection: Projection) -> None:
        """One run of the projection's consumer, on a store opened for this run (a restart
        gets a fresh connection)."""
        store = self.container.projection_store(projection)
        try:
            with self.container.projection_consumer(projection, store) as consumer:
                self._consumers[projection.name] = consumer
                consumer.run(self._stop, poll_ms=200)
        finally:
            store.close()
