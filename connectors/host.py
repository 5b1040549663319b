"""The connector host: configuration, running sources and sinks, positions, status, errors.

**Registering a connector.** Write a `Source` or `Sink` subclass (`connectors.sdk`) in a
package of its own (`nervenbahn connector new` writes one, with its `pyproject.toml`), install
it with pip, and add a table to the configuration file — ONE TOML file, path from
`NERVENBAHN_CONNECTORS`, default `connectors.toml` in the store folder (`.nervenbahn/`; the
composition root, `nervenbahn.container`, finds the file and builds the host)::

    [connectors.register]                     # the connector's name: [a-z][a-z0-9_]*
    kind = "source"                           # "source" or "sink"
    connector = "population_register"         # the installed connector (default: the name)
    description = "eCH-0020 deliveries of the cantonal register"   # optional
    [connectors.register.options]             # checked against Class.Options
    inbox = "inbox/register"                  # relative paths: use context.path(...)

The installed connector is found by its entry point (group `nervenbahn.connectors`, see
`connectors._discovery`); `class = "connectors.population_register:RegisterSource"` (module:Class)
instead names a class that is importable without being installed as a package. An unknown key,
a wrong kind, a connector that is not installed or a class that is not a subclass of the kind's
base class is one `ConnectorConfigError` naming the connector and the key; so is an option the
class's declared `Options` refuses (`connectors.options`). It stops only that connector
(`connectors._config`). `nervenbahn connectors list` shows what is configured, `check [NAME]`
builds each without running it, `describe NAME` shows what one takes, `run NAME
[--until-idle]` runs one, `nervenbahn connectors status [--json]` shows outcome, position, lag,
errors and the last run of each. `on_error = "stop" | "dead-letter"` (sinks only) sets a
sink's error policy (below).

**State.** Everything the host keeps lives in the connectors folder `<store folder>/connectors/`
(for a PostgreSQL store: `.nervenbahn/connectors/` in the working directory): `state.db` (SQLite:
source positions, errors, last runs), `<name>.db` (a sink's consumer database: its effects,
processed event ids and offsets, committed together) and `<name>/` (the connector's working
folder, `context.folder`).

**Sources.** A run reads `source.read(after=<stored position>)` and executes each item's
commands through the case service, then saves the item's position (so the same input twice
changes nothing). A command refused as already applied (`connectors.sdk.already_applied`: rule
`already-received`, or an `OpenCase` whose case id exists) counts as applied, so a crash
between executing and saving the position is harmless. Any other refusal of the domain is
recorded as an error of that item (position, reference, reason; `status` lists it), the item's
remaining commands are not executed, and the run **goes on** with the next item: the item is
not retried forever and not silently dropped — a caseworker corrects the case and the external
system sends it again. `SourceInputError` (a malformed input) stops the run: nothing of that
input was applied, the error is recorded, the position stays before it, and the next run stops
there again until the input is fixed or removed (later deliveries are not applied before an
earlier one). Any other exception (store down, a bug) stops the run without saving the
position of the item in hand: the next run retries it.

**Sinks.** A run opens the sink's consumer database, calls `sink.setup(tx)` and `sink.deliver(tx)`
(what a previous run left complete), then consumes its dataset's topic with the consumer framework
(`bus.consumer`, group `connector-<name>`): `sink.handle(received, tx)` per event inside the
batch's transaction, `sink.deliver(tx)` after each committed batch. An event the sink fails on
(any exception but `TransientError`) is recorded as an error and handled by the connector's
`on_error` (default by `Sink.keeps_state`): "dead-letter" parks it on
`<prefix>.dlq.connector-<name>.v1` and goes on, and the run ends `degraded`; "stop" rolls its
batch back and ends the run `failed` at that event, which the next run handles again.
`Rejected` is dead-lettered under either. `nervenbahn connectors replay NAME` hands the dead
letters to the sink again, each once (one the sink rejects again is kept out for good: the
replay acknowledges it); `nervenbahn connectors reset NAME --to ...` moves its
offsets (`Sink.on_reset` makes that idempotent); see `connectors._recovery` and
docs/connectors.md, "When a sink fails on an event". A crash mid-batch rolls the batch back;
the next run resumes at the last commit (exactly-once effect). A failing `deliver` stops the run
with the error recorded; the next run delivers again (`deliver` is idempotent).

`--until-idle` ends a run when nothing is left: a source at the end of its input, a sink
caught up with the end of its topic — decided only once the sink's consumer holds its partitions,
and its consumer leaves the group only as a full member (`bus.consumer`): a run that ended with
its join in flight used to wedge the group on the embedded broker, and every later run waited for
partitions in silence (issue 20). A sink whose join outlasts the broker's `join_wait_ms` (15 s
embedded, 60 s production) stops with that reason instead.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from bus.consumer import Consumer, Decoder, Received, Rejected, TransientError
from bus.effects import PartitionMark
from bus.effects_sqlite import SQLiteEffectStore
from bus.kafka_settings import KafkaSettings
from bus.topics import (
    dead_letter_topic,
    ensure_topics,
    list_topics,
    partition_end_offsets,
    read_topic,
)
from bus.watermark import Watermark, delivered_watermark
from connectors._config import (
    ConnectorConfig,
    ConnectorConfigError,
    ConnectorSpec,
    OnError,
    load_config,
    read_config,
)
from connectors._recovery import (
    NotReplayableError,
    ReplayReport,
    ResetReport,
    replayable,
    reset_marks,
)
from connectors._state import StateStore, now
from connectors.errors import ConnectorError
from connectors.sdk import (
    ConnectorContext,
    ConnectorStatus,
    ConsumerFactory,
    PrivateFiles,
    ResetTarget,
    Sink,
    Source,
    SourceInputError,
    SourceItem,
    already_applied,
)
from domain.application.ports import CaseAccess
from domain.errors import DomainError
from domain.personal_data import ErasedFile, ErasureSubject

__all__ = [
    "AlreadyRunningError",
    "ConnectorConfig",
    "ConnectorConfigError",
    "ConnectorError",
    "ConnectorHost",
    "ConnectorSpec",
    "DeliveryError",
    "ReplayReport",
    "ResetReport",
    "RunReport",
    "SinkFailedError",
    "group_id",
    "load_config",
    "read_config",
    "resets_idempotently",
]

log = structlog.get_logger("nervenbahn.connectors")


class AlreadyRunningError(ConnectorError):
    """Another process runs this connector right now."""


class DeliveryError(ConnectorError):
    """A sink could not write to its external system; the next run tries again."""


class SinkFailedError(ConnectorError):
    """A sink whose error policy is "stop" failed on an event; nothing after it was committed,
    the next run handles it again."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(reason)
        self.where = where
        self.reason = reason


def resets_idempotently(sink: Sink) -> bool:
    """Whether the sink says how a reset avoids writing twice (it defines `Sink.on_reset`)."""
    return type(sink).on_reset is not Sink.on_reset


def group_id(name: str) -> str:
    """The consumer group (and dead-letter topic segment) of the sink `name`."""
    return "connector-" + name.replace("_", "-")


@dataclass
class RunReport:
    """What one run of a connector did."""

    name: str
    kind: str
    items: int = 0
    """Source: input items completed (position saved)."""
    applied: int = 0
    """Source: commands executed."""
    already: int = 0
    """Source: commands found applied already."""
    skipped: int = 0
    """Source: items that asked for nothing (with a reason)."""
    refused: int = 0
    """Source: items a command of which the domain refused (error recorded, run went on)."""
    handled: int = 0
    """Sink: messages processed."""
    rejected: int = 0
    """Sink: events the sink rejected (dead-lettered)."""
    delivered: list[str] = field(default_factory=list)
    """Sink: what `deliver` wrote."""
    on_error: OnError | None = None
    """Sink: the error policy of the run (configured, or the sink's default)."""
    failed_at: str | None = None
    """Sink, on_error = "stop": the event the run stopped at (type, id, topic/partition@offset);
    nothing after it was committed, the next run handles it again."""
    position: str | None = None
    stopped_by: str | None = None
    """The error that stopped the run, if one did."""

    @property
    def outcome(self) -> str:
        """"failed": stopped at an event the sink failed on (on_error = "stop"); "stopped": an
        error stopped the run (malformed input, delivery, no partitions); "degraded": the run
        went through but dead-lettered events (`connectors replay`); "ok" otherwise."""
        if self.failed_at is not None:
            return "failed"
        if self.stopped_by is not None:
            return "stopped"
        return "degraded" if self.rejected else "ok"

    @property
    def ok(self) -> bool:
        """True if the run went through and every event took effect (never when it
        dead-lettered one)."""
        return self.outcome == "ok"

    def summary(self) -> str:
        """One line: the figures of the run."""
        if self.kind == "source":
            text = (
                f"{self.items} items: {self.applied} commands applied, {self.already} already "
                f"applied, {self.skipped} skipped, {self.refused} refused"
            )
        else:
            text = (
                f"{self.handled} events handled, {self.rejected} dead-lettered, "
                f"{len(self.delivered)} delivered"
            )
        return text + (f"; stopped: {self.stopped_by}" if self.stopped_by else "")


class ConnectorHost:
    """Runs the configured connectors and reports on them.

    Built by the composition root (`nervenbahn.container.Container.connector_host`), which
    hands in what connectors may not import: the case service, the private-file writer, the
    bus (`bus`: a factory of consumers, opened on first use by a sink).
    """

    def __init__(
        self,
        specs: dict[str, ConnectorSpec],
        service: CaseAccess,
        folder: Path,
        bus: Callable[[], ConsumerFactory] | None = None,
        *,
        files: PrivateFiles,
        partitions: int = ConnectorContext.partitions,
        broken: dict[str, ConnectorConfigError] | None = None,
    ) -> None:
        self.specs = specs
        self.config = ConnectorConfig(specs, dict(broken or {}))
        """The connectors, and the error of each whose configuration is wrong (each stops
        only itself)."""
        self.partitions = partitions
        self.service = service
        self.folder = folder
        self.files = files
        self._bus_factory = bus
        self._bus: ConsumerFactory | None = None
        self.state = StateStore(files.file(folder / "state.db"))
        self._running: dict[str, SQLiteEffectStore] = {}
        """The consumer database of each sink running in this process (for its watermark)."""

    @classmethod
    def from_file(
        cls,
        path: Path,
        service: CaseAccess,
        folder: Path,
        bus: Callable[[], ConsumerFactory] | None = None,
        *,
        files: PrivateFiles,
        partitions: int = ConnectorContext.partitions,
    ) -> ConnectorHost:
        """The host of the configuration file `path`, keeping its state in `folder`."""
        config = read_config(path)
        return cls(config.specs, service, folder, bus, files=files, partitions=partitions,
                   broken=config.broken)

    def close(self) -> None:
        """Close the state database."""
        self.state.close()

    # --- running ----------------------------------------------------------------------------

    def spec(self, name: str) -> ConnectorSpec:
        """The configured connector `name`; its ConnectorConfigError if its configuration is
        wrong, or one naming the known ones."""
        return self.config.spec(name)

    def names(self) -> list[str]:
        """Every configured connector, also those whose configuration is wrong."""
        return self.config.names()

    def connector(self, name: str) -> Source | Sink:
        """The connector `name`, built and bound to its context."""
        spec = self.spec(name)
        connector = spec.load()
        folder = self.files.folder(self.folder / name)
        progress = self._progress(name, connector.dataset) if isinstance(connector, Sink) else None
        connector.bind(ConnectorContext(self.service, folder, spec.base, self.files,
                                       self.partitions, progress=progress))
        return connector

    def run(
        self,
        name: str,
        stop: threading.Event | None = None,
        *,
        until_idle: bool = False,
        poll_seconds: float = 1.0,
    ) -> RunReport:
        """Run the connector until `stop` is set (or, with `until_idle`, nothing is left)."""
        stop = stop or threading.Event()
        connector = self.connector(name)
        report = RunReport(name, connector.kind)
        started = now()
        outcome = "crashed"
        with self._exclusive(name):
            try:
                if isinstance(connector, Source):
                    self._run_source(connector, report, stop, until_idle, poll_seconds)
                else:
                    self._run_sink(connector, report, stop, until_idle, poll_seconds)
                outcome = report.outcome
            finally:
                self.state.record_run(name, started, outcome, report.summary())
        log.info("connector run ended", connector=name, outcome=outcome, summary=report.summary())
        return report

    @contextmanager
    def _exclusive(self, name: str) -> Iterator[None]:
        """One run of a connector at a time (a lock file in the connectors folder)."""
        self.files.folder(self.folder)
        fd = os.open(self.folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AlreadyRunningError(
                    f"connector {name} is running in another process"
                ) from None
            yield
        finally:
            os.close(fd)

    # --- sources ----------------------------------------------------------------------------

    def _run_source(
        self,
        source: Source,
        report: RunReport,
        stop: threading.Event,
        until_idle: bool,
        poll_seconds: float,
    ) -> None:
        while not stop.is_set():
            after = self.state.position(source.name)
            report.position = after
            try:
                for item in source.read(after):
                    self._apply(source.name, item, report)
                    self.state.save_position(source.name, item.position)
                    report.items += 1
                    report.position = item.position
                    if stop.is_set():
                        return
            except SourceInputError as exc:
                self.state.record_error(source.name, after or "(start)", "input", str(exc))
                log.error("input refused", connector=source.name, error=str(exc))
                report.stopped_by = str(exc)
                return
            if until_idle:
                return
            stop.wait(poll_seconds)

    def _apply(self, name: str, item: SourceItem, report: RunReport) -> None:
        """Execute an item's commands; a refusal is recorded and ends the item."""
        if item.skipped is not None:
            report.skipped += 1
            log.info("item skipped", connector=name, position=item.position, reason=item.skipped)
            return
        for command in item.commands:
            try:
                self.service.execute(command)
            except DomainError as exc:
                if already_applied(exc):
                    report.already += 1
                    continue
                report.refused += 1
                self.state.record_error(name, item.position, item.reference, str(exc))
                log.warning(
                    "command refused; item recorded as error",
                    connector=name,
                    position=item.position,
                    reference=item.reference,
                    error=str(exc),
                )
                return
            report.applied += 1

    # --- sinks ------------------------------------------------------------------------------

    def bus(self) -> ConsumerFactory:
        """The bus (opened on first use); ConnectorError if none is configured."""
        if self._bus is None:
            if self._bus_factory is None:
                raise ConnectorError("sinks need the bus; no broker is configured")
            self._bus = self._bus_factory()
        return self._bus

    def _run_sink(
        self,
        sink: Sink,
        report: RunReport,
        stop: threading.Event,
        until_idle: bool,
        poll_seconds: float,
    ) -> None:
        bus = self.bus()
        topic = bus.topic(sink.dataset)  # a dataset the bus does not know: refused first
        report.on_error = self.on_error(sink)
        group = group_id(sink.name)
        store = SQLiteEffectStore(self.files.file(self.folder / f"{sink.name}.db"))
        self._running[sink.name] = store
        try:
            with store.transaction() as tx:
                sink.setup(tx)
            report.delivered += self._deliver(sink, store)
            ensure_topics(bus.kafka, [topic])
            handler = self._recording(sink, report, report.on_error)
            with bus.consumer(sink.dataset, group, handler, store,
                              stop_on=(SinkFailedError,)) as consumer:
                while not stop.is_set():
                    handled = consumer.poll_once(int(poll_seconds * 1000))
                    report.handled += handled
                    if handled:
                        report.delivered += self._deliver(sink, store)
                    elif until_idle and self._idle(consumer, bus.kafka, topic.name, store, report):
                        break
        except DeliveryError as exc:
            report.stopped_by = str(exc)
        except SinkFailedError as failed:
            report.failed_at, report.stopped_by = failed.where, failed.reason
        finally:
            del self._running[sink.name]
            report.position = _offsets_text(store.offsets(group))
            store.close()

    # --- what a sink has received (issue 20, point 5) -----------------------------------------

    def watermark(self, name: str) -> Watermark:
        """The completeness watermark of the sink `name`: every event of its topic recorded
        before `until` has been delivered to it (`bus.watermark`)."""
        connector = self.connector(name)
        if not isinstance(connector, Sink) or connector.context is None:
            raise ConnectorError(f"connector {name} is not a sink: it has no watermark")
        return connector.context.watermark()

    def _progress(self, name: str, dataset: str) -> Callable[[], Watermark]:
        """What a sink's `context.watermark()` calls: its marks (from its database, the one
        of its run if it runs here) against its topic on the broker."""

        def read() -> Watermark:
            bus = self.bus()
            return delivered_watermark(bus.kafka, bus.topic(dataset).name, self._marks(name))

        return read

    def _marks(self, name: str) -> dict[tuple[str, int], PartitionMark]:
        running = self._running.get(name)
        if running is not None:
            return running.offsets(group_id(name))
        path = self.folder / f"{name}.db"
        if not path.exists():
            return {}
        store = SQLiteEffectStore(path)
        try:
            return store.offsets(group_id(name))
        finally:
            store.close()

    def on_error(self, sink: Sink) -> OnError:
        """The sink's error policy: `on_error` of its configuration, else "stop" for a sink
        that keeps state (`Sink.keeps_state`) and "dead-letter" for one that does not."""
        configured = self.spec(sink.name).on_error
        if configured is not None:
            return configured
        return "stop" if sink.keeps_state else "dead-letter"

    def _idle(self, consumer: Consumer, kafka: KafkaSettings, topic: str,
              store: SQLiteEffectStore, report: RunReport) -> bool:
        """Whether a run until idle may end: only once the consumer holds its partitions (the
        assignment is where it seeks to the stored offsets and checks them against the topic),
        and then when nothing is left. A run that left before its join completed used to leave
        its group half-joined (issue 20). A join that outlasts `join_wait_ms` stops the run with
        the reason, instead of waiting for partitions in silence."""
        if consumer.joined:
            return sink_lag(kafka, topic, store, consumer.group_id) == 0
        waited = consumer.joining_for()
        if waited * 1000 <= kafka.join_wait_ms:
            return False
        report.stopped_by = (
            f"group {consumer.group_id}: no partitions assigned within {waited:.0f} s "
            f"(join_wait_ms {kafka.join_wait_ms}); another member holds the group or the broker "
            "keeps one that left half-joined. Is another run of it going? If not, run again "
            f"after the group's session timeout ({kafka.session_timeout_ms / 1000:g} s; a "
            "member that used another NERVENBAHN_KAFKA_PROFILE may hold it longer); the "
            "embedded broker forgets a wedged group when it is restarted (docs/bus.md)"
        )
        return True

    def _recording(
        self, sink: Sink, report: RunReport, on_error: OnError
    ) -> Callable[[Received, Any], None]:
        """The sink's handler under its error policy. An event it fails on is recorded as an
        error, then dead-lettered by the consumer ("dead-letter", and always for `Rejected`:
        the sink's own word that skipping the event leaves it right), or stops the run with
        nothing after it committed ("stop")."""

        def handle(received: Received, tx: Any) -> None:
            try:
                sink.handle(received, tx)
            except TransientError:
                raise
            except Exception as exc:
                where = f"{received.topic}/{received.partition}@{received.offset}"
                event = f"{received.event_type} {received.event_id} at {where}"
                reason = f"{type(exc).__name__}: {exc}"
                if on_error == "stop" and not isinstance(exc, Rejected):
                    self.state.record_error(sink.name, where, event,
                                            f"failed (on_error = stop): {reason}")
                    raise SinkFailedError(event, (
                        f"{event} failed (on_error = stop): {reason}; nothing after it was "
                        "committed: fix the sink and run again (the event is handled again)"
                    )) from exc
                report.rejected += 1
                self.state.record_error(sink.name, where, event, f"dead-lettered: {reason}")
                raise

        return handle

    def _deliver(self, sink: Sink, store: SQLiteEffectStore) -> list[str]:
        """What `sink.deliver` wrote; DeliveryError (recorded) if it failed."""
        try:
            with store.transaction() as tx:
                written = sink.deliver(tx)
        except Exception as exc:
            self.state.record_error(sink.name, "deliver", "deliver", f"{type(exc).__name__}: {exc}")
            raise DeliveryError(f"{sink.name}: delivery failed: {exc}") from exc
        if written:
            log.info("delivered", connector=sink.name, written=written)
        return written

    # --- recovery ---------------------------------------------------------------------------

    def sink(self, name: str, doing: str) -> Sink:
        """The configured sink `name`; ConnectorError if it is a source (`doing`: what for)."""
        connector = self.connector(name)
        if not isinstance(connector, Sink):
            raise ConnectorError(
                f"connectors.{name}: {doing} is for sinks; {name} is a source (its position "
                "is its input: move or fix the input instead)"
            )
        return connector

    def replay(self, name: str) -> ReplayReport:
        """Hand the sink's dead letters to it again (after a fix), in the order they were
        parked, each once: one whose event took effect already is skipped by its event id,
        and each done with is recorded so that it is not replayed twice. One the sink fails on
        again stays for the next replay; the others go on."""
        sink = self.sink(name, "replay")
        report = ReplayReport(name)
        with self._exclusive(name):
            bus = self.bus()
            codec = bus.codec(sink.dataset)
            parked = self._dead_letters(bus.kafka, name)
            store = SQLiteEffectStore(self.files.file(self.folder / f"{name}.db"))
            try:
                with store.transaction() as tx:
                    sink.setup(tx)
                done = self.state.replayed(name)
                for record in parked:
                    if (record.topic, record.partition, record.offset) not in done:
                        self._replay_one(sink, store, codec, record, report)
                report.delivered += self._deliver(sink, store)
            finally:
                store.close()
        report.pending = self._pending(name, parked)
        log.info("dead letters replayed", connector=name, summary=report.summary())
        return report

    def _pending(self, name: str, parked: list[Any]) -> int:
        """The dead letters of `parked` not replayed yet, by their own key (never a difference
        of totals: letters the topic no longer keeps, or parked twice, would hide new ones)."""
        done = self.state.replayed(name)
        return sum((r.topic, r.partition, r.offset) not in done for r in parked)

    def _dead_letters(self, kafka: KafkaSettings, name: str) -> list[Any]:
        topic = dead_letter_topic(kafka, group_id(name))
        return read_topic(kafka, topic) if topic in list_topics(kafka) else []

    def _replay_one(self, sink: Sink, store: SQLiteEffectStore, codec: Decoder, record: Any,
                    report: ReplayReport) -> None:
        """One dead letter: handled in its own transaction with its event id (exactly once)."""
        parked = (record.topic, record.partition, record.offset)
        at = f"{record.topic}/{record.partition}@{record.offset}"
        try:
            received = replayable(record, codec)
        except NotReplayableError as exc:
            report.unreplayable.append(f"{at}: {exc}")
            self.state.record_replayed(sink.name, parked, "", f"not replayable: {exc}")
            return
        group = group_id(sink.name)
        try:
            with store.transaction() as tx:
                already = store.seen(tx, group, received.event_id)
                if not already:
                    sink.handle(received, tx)
                    store.mark(tx, group, received.event_id)
        except Rejected as exc:  # the sink's own word again: this event stays out, for good
            event = f"{received.event_type} {received.event_id} (dead letter {at})"
            report.unreplayable.append(f"{event}: rejected again by the sink: {exc}")
            self.state.record_replayed(sink.name, parked, str(received.event_id),
                                       f"rejected again by the sink: {exc}")
            return
        except Exception as exc:
            event = f"{received.event_type} {received.event_id} (dead letter {at})"
            report.failed.append(f"{event}: {type(exc).__name__}: {exc}")
            self.state.record_error(sink.name, at, event,
                                    f"replay failed: {type(exc).__name__}: {exc}")
            return
        if already:
            report.already += 1
        else:
            report.replayed += 1
        outcome = "already applied" if already else "replayed"
        self.state.record_replayed(sink.name, parked, str(received.event_id), outcome)

    def reset(self, name: str, to: ResetTarget) -> ResetReport:
        """Move the sink's offsets to `to` ("earliest", "latest", or the first message at or
        after a time), forgetting the events it processed unless to "latest", and let the sink
        make that idempotent (`Sink.on_reset`), all in one transaction of its database. What it
        wrote before is written again unless its `on_reset` (or its `deliver`) prevents it."""
        sink = self.sink(name, "reset")
        with self._exclusive(name):
            bus = self.bus()
            topic = bus.topic(sink.dataset).name
            marks = reset_marks(bus.kafka, topic, list_topics(bus.kafka).get(topic, 0), to)
            group = group_id(name)
            store = SQLiteEffectStore(self.files.file(self.folder / f"{name}.db"))
            try:
                before = _offsets_text(store.offsets(group))
                with store.transaction() as tx:
                    sink.setup(tx)
                    store.rewind(tx, group, marks, forget_processed=to != "latest")
                    sink.on_reset(to, tx)
                after = _offsets_text(store.offsets(group))
            finally:
                store.close()
        shown = to if isinstance(to, str) else to.isoformat()
        report = ResetReport(name, shown, before, after, forgot_processed=to != "latest",
                             idempotent=resets_idempotently(sink))
        log.warning("sink reset", connector=name, to=shown, before=before, after=after,
                    idempotent=report.idempotent)
        return report

    # --- erasure ----------------------------------------------------------------------------

    def erase_person(self, subject: ErasureSubject) -> list[ErasedFile]:
        """Let every configured connector remove the person from the files it read or wrote
        (`Source.erase`, `Sink.erase`); a connector that cannot (running elsewhere, failing)
        is listed as not reached."""
        found: list[ErasedFile] = []
        for name in self.names():  # a broken connector is listed as not reached
            try:
                with self._exclusive(name):
                    found += self._erase(self.connector(name), subject)
            except Exception as exc:  # every connector gets its turn; the failure is reported
                found.append(ErasedFile(f"connector {name}", "not reached",
                                        f"{type(exc).__name__}: {exc}"))
        return found

    def _erase(self, connector: Source | Sink, subject: ErasureSubject) -> list[ErasedFile]:
        if isinstance(connector, Source):
            return connector.erase(subject, self.state.position(connector.name))
        path = self.folder / f"{connector.name}.db"
        if not path.exists():
            return []
        store = SQLiteEffectStore(path)
        try:
            with store.transaction() as tx:
                connector.setup(tx)
                return connector.erase(subject, tx)
        finally:
            store.close()

    # --- status -----------------------------------------------------------------------------

    def status(self, *, errors: int = 3) -> list[ConnectorStatus]:
        """Position, lag, errors and last run of every configured connector."""
        return [self.status_of(name, errors=errors) for name in self.names()]

    def status_of(self, name: str, *, errors: int = 3) -> ConnectorStatus:
        """Position, lag, errors (the `errors` most recent) and last run of one connector;
        one whose configuration is wrong shows that error first."""
        broken = name in self.config.broken
        kind = "?" if broken else self.spec(name).kind  # not configured at all: refused
        status = ConnectorStatus(name=name, kind=kind)
        status.errors = [entry.line() for entry in self.state.errors(name, errors)]
        status.error_count = self.state.error_count(name)
        run = self.state.last_run(name)
        if run is not None:
            status.last_run = f"{run.finished_at} {run.outcome}: {run.summary}"
            status.outcome = run.outcome
        try:
            connector = self.connector(name)
        except ConnectorConfigError as exc:
            status.lag_note = "the connector's configuration is wrong (see its errors)"
            status.errors.insert(0, f"configuration: {exc}")
            return status
        if isinstance(connector, Source):
            self._source_status(connector, status)
        else:
            self._sink_status(connector, status)
            status.outcome = _standing(status.outcome, status.dead_letters)
        return status

    def _source_status(self, source: Source, status: ConnectorStatus) -> None:
        status.position = self.state.position(source.name)
        try:
            status.lag = source.pending(status.position)
        except SourceInputError as exc:
            status.lag_note = f"input cannot be read: {exc}"
            return
        if status.lag is None:
            status.lag_note = "the source cannot tell how much input is unread"

    def _sink_status(self, sink: Sink, status: ConnectorStatus) -> None:
        path = self.folder / f"{sink.name}.db"
        group = group_id(sink.name)
        marks: dict[tuple[str, int], PartitionMark] = {}
        if path.exists():
            store = SQLiteEffectStore(path)
            try:
                marks = store.offsets(group)
                with store.transaction() as tx:
                    sink.setup(tx)
                    status.errors = [*sink.problems(tx), *status.errors]
            finally:
                store.close()
        status.position = _offsets_text(marks) if marks else None
        try:
            bus = self.bus()
            topic = bus.topic(sink.dataset).name
            status.lag = _lag(bus.kafka, topic, marks)
            parked = self._dead_letters(bus.kafka, sink.name)
        except Exception as exc:  # status must show the rest when the broker is away
            status.lag_note = f"broker not reachable: {exc}"
            return
        status.dead_letters = self._pending(sink.name, parked)
        if status.dead_letters:
            status.errors.insert(0, f"{status.dead_letters} dead letters not replayed "
                                    f"(nervenbahn connectors replay {sink.name})")


def _standing(last: str | None, dead_letters: int | None) -> str | None:
    """How a sink stands: a run that failed or stopped says so; otherwise "degraded" while dead
    letters wait for a replay, and a degraded run whose dead letters were all replayed is
    "ok" again (unknown: the broker is away, the last run's outcome)."""
    if dead_letters is None or last in ("failed", "stopped", "crashed"):
        return last
    if dead_letters:
        return "degraded"
    return "ok" if last == "degraded" else last


def sink_lag(kafka: KafkaSettings, topic: str, store: SQLiteEffectStore, group: str) -> int:
    """Messages of `topic` the sink's group has not processed yet."""
    return _lag(kafka, topic, store.offsets(group))


def _lag(kafka: KafkaSettings, topic: str, marks: dict[tuple[str, int], PartitionMark]) -> int:
    from kafka import TopicPartition

    partitions = list_topics(kafka).get(topic, 0)
    ends = partition_end_offsets(kafka, [TopicPartition(topic, p) for p in range(partitions)])
    return sum(
        max(end - marks.get((tp.topic, tp.partition), PartitionMark(0)).next_offset, 0)
        for tp, end in ends.items()
    )


def _offsets_text(marks: dict[tuple[str, int], PartitionMark]) -> str:
    """Next offset per partition: "p0=12 p1=3"."""
    return " ".join(f"p{part}={mark.next_offset}" for (_, part), mark in sorted(marks.items()))
