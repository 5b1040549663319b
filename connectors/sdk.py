"""The connector SDK: the contract a specialist application's connector implements.

A **source** reads an external system's input (files, an API) and turns each input record into
commands for the case core. It names each record's *position* in its input; the host keeps
the last position a connector completed, so that reading the same input twice changes nothing.
Because a crash can fall between executing a record's commands and saving its position, the
commands a source emits must themselves be idempotent (the domain refuses a second command with
the same external reference; the host counts that refusal as "already applied").

A **sink** consumes a bus topic through the consumer framework (`bus.consumer`): `handle` is
called once per event inside the consumer's database transaction (effects, event id and
offsets commit together; an event it fails on stops the run or is dead-lettered, by its
`on_error` and `keeps_state`: see `connectors.host`). What must
reach the external system (a file, an API call) is written by `deliver`, after the batch
committed; `deliver` must be idempotent (e.g. a file named by its content's identity, written
atomically), so exactly-once effect holds where the target allows it.

Connectors are configured in one file and run by `nervenbahn connectors run NAME`; the
host (`connectors.host`) is the SDK's other half. Before it calls `read` or `setup`, the host
binds a `ConnectorContext` to the connector (`connector.context`): the case service (with the
personal-data vault), the connector's own working folder, the folder of the configuration
file, against which relative paths in options are resolved (`context.path(...)`), the writer of
private files (`context.files`: folders 0700, files 0600, written atomically). A sink's
transaction is the consumer store's own connection (sqlite3 or psycopg): its statements carry
that backend's placeholder (`schemas.sql.placeholder`), no SQL is rewritten. Connectors import
nothing of the composition root (`nervenbahn`) nor of the read models (`projections`): what
they need of them comes through this context, which the composition root fills (import-linter
contracts in pyproject.toml).

**Options.** A connector declares the options it takes as a pydantic model, its class attribute
`Options` (a `ConnectorOptions` subclass; default `NoOptions`: none). The host checks
`[connectors.NAME.options]` against it when it builds the connector — an unknown option, a
missing one or a wrong type is refused, naming connector, option and reason — and the connector
gets the validated model as `self.options` (see `connectors.options`).

**Already applied.** A command a source emits a second time must be refused by the domain in a
way the host recognises (`already_applied`): a `RuleViolationError` whose rule is in
`ALREADY_APPLIED_RULES` (`already-received`: the case has received this external reference
already), or an `OpenCase` with a `case_id` that exists already (a source that opens cases
derives the case id from its input, e.g. `uuid5(namespace, reference)`). Any other refusal is
recorded as an error of the item and the source goes on with the next item (see
`connectors.host`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from bus.consumer import Consumer, Decoder, Handler, Received
from bus.effects import EffectStore
from bus.kafka_settings import KafkaSettings
from bus.topics import TopicSpec
from bus.watermark import SETTLE_MARGIN, Watermark
from connectors.errors import ConnectorError
from connectors.options import ConnectorOptions, NoOptions, validated_options
from domain.application.ports import CaseAccess
from domain.commands import Command
from domain.errors import DomainError, InvalidCommandError, RuleViolationError
from domain.personal_data import ErasedFile, ErasureSubject

__all__ = [
    "ALREADY_APPLIED_RULES",
    "ConnectorContext",
    "ConnectorOptions",
    "ConnectorStatus",
    "ConsumerFactory",
    "NoOptions",
    "PrivateFiles",
    "ResetTarget",
    "Sink",
    "Source",
    "SourceInputError",
    "SourceItem",
    "Watermark",
    "already_applied",
]

ALREADY_APPLIED_RULES = frozenset({"already-received"})
"""Rules whose refusal means "this command was applied before" (see the module docstring)."""


def already_applied(error: DomainError) -> bool:
    """True if the domain refused a command because it was applied already."""
    if isinstance(error, RuleViolationError):
        return error.rule in ALREADY_APPLIED_RULES
    if isinstance(error, InvalidCommandError) and error.command == "open_case":
        return any(
            field == "case_id" and reason.endswith("exists already")
            for field, reason in error.problems
        )
    return False


ResetTarget = Literal["earliest", "latest"] | datetime
"""Where `nervenbahn connectors reset` moves a sink: the start or the end of its topic, or the
first message the broker received at or after a time (`Sink.on_reset`)."""


@dataclass(frozen=True)
class PrivateFiles:
    """How files only their owner can read are made (the composition root's helpers, handed
    down: every file a connector keeps or writes holds personal data or leads to it)."""

    folder: Callable[[Path], Path]
    """Create a folder (and missing parents) of mode 0700; returns it."""
    file: Callable[[Path], Path]
    """Make sure a file of mode 0600 exists (created empty if missing); returns it."""
    write: Callable[[Path, bytes | str], Path]
    """Write a file of mode 0600 atomically (temporary file, fsync, rename); returns it."""


class ConsumerFactory(Protocol):
    """What the host needs of the bus to run a sink (the composition root provides it)."""

    @property
    def kafka(self) -> KafkaSettings:
        """The broker's settings."""

    def topic(self, name: str) -> TopicSpec:
        """The topic of the dataset `name`; an error naming the known ones if there is none."""

    def codec(self, name: str) -> Decoder:
        """The codec of the dataset `name` (a sink's dead letters are decoded with it)."""

    def consumer(
        self, name: str, group_id: str, handler: Handler, store: EffectStore, **options: Any
    ) -> Consumer:
        """A consumer of the topic of dataset `name` in group `group_id`, its effects in
        `store`."""


@dataclass(frozen=True)
class ConnectorContext:
    """What the host gives a connector: the case service, its folders, its file writer."""

    service: CaseAccess
    """The case service (commands, current cases, `service.vault` for sealed personal data)."""
    folder: Path
    """The connector's own working folder (created; e.g. `<store folder>/connectors/NAME/`)."""
    base: Path
    """The folder of the configuration file: relative paths in options are relative to it."""
    files: PrivateFiles
    """Makes and writes the connector's files private to their owner."""
    partitions: int = 4
    """The partitions of the topics the bus creates (NERVENBAHN_KAFKA_PARTITIONS)."""

    def path(self, value: str | Path) -> Path:
        """An option's path, resolved against the configuration file's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base / path

    # --- sinks: what has been delivered (docs/connectors.md, "Is a day complete?") ----------

    progress: Callable[[], Watermark] | None = None
    """Sinks: reads the completeness watermark of the sink's topic for its group (bound by
    the host; None for a source). Use `watermark()` and `complete_until(day)`."""

    def watermark(self) -> Watermark:
        """Up to which recorded time every event of the sink's topic has been delivered to it
        (committed in its database), across all partitions (`bus.watermark`): a few broker
        reads, so ask in `deliver`, not per event. ConnectorError for a source."""
        if self.progress is None:
            raise ConnectorError("only a sink has a watermark (the host binds it for sinks)")
        return self.progress()

    def complete_until(self, day: date, margin: timedelta = SETTLE_MARGIN) -> bool:
        """Whether every event recorded on the Swiss day `day` or before has been delivered to
        the sink, in every partition (e.g. to write a day's file once, complete). Recorded
        time, not effective date: a retroactive change recorded today belongs to today."""
        return self.watermark().complete_until(day, margin)


class SourceInputError(ConnectorError):
    """Input a source cannot accept (malformed, invalid against its schema); nothing of the
    input it was found in is applied. The message names where (file, line, element) and why."""


@dataclass(frozen=True)
class SourceItem:
    """One input record: where it is in the input, and the commands it asks for."""

    position: str
    """Opaque and increasing in the source's own order (e.g. "delivery-0042/0003")."""
    commands: tuple[Command, ...]
    reference: str = ""
    """Human-readable origin (file and element), for logs and status."""
    skipped: str | None = None
    """Why the record asks for nothing (e.g. "no open case for this person"), if so."""


class Source(ABC):
    """A source connector: external input → commands."""

    kind: ClassVar[Literal["source"]] = "source"
    Options: ClassVar[type[ConnectorOptions]] = NoOptions
    """The options it takes (a subclass declares its own; see `connectors.options`)."""
    options: ConnectorOptions
    """The validated options (a subclass narrows the type: `options: Options`)."""
    context: ConnectorContext | None = None
    """Bound by the host (`bind`) before `read` is called."""

    def __init__(self, name: str, options: Mapping[str, Any] | ConnectorOptions) -> None:
        self.name = name
        self.options = validated_options(type(self).Options, name, options)

    def bind(self, context: ConnectorContext) -> None:
        """Give the connector its context (the host does this before `read`)."""
        self.context = context

    @abstractmethod
    def read(self, after: str | None) -> Iterator[SourceItem]:
        """The input records after position `after` (all if None), in order.

        Raise `SourceInputError` for malformed input *before* yielding anything of it.
        """

    def erase(self, subject: ErasureSubject, after: str | None) -> list[ErasedFile]:
        """Remove the person from the input this source keeps (`nervenbahn person erase`, before
        the person's key is destroyed); `after` is the last position completed. Each file it
        deleted or could not reach (e.g. input not processed yet) is listed. Default: none."""
        return []

    def pending(self, after: str | None) -> int | None:
        """How many input records follow `after`, if the source can tell cheaply (for the lag
        that `status` shows); None if it cannot."""
        return None


class Sink(ABC):
    """A sink connector: bus topic → external system."""

    kind: ClassVar[Literal["sink"]] = "sink"
    dataset: ClassVar[str] = "case-events"
    """The dataset it consumes ("case-events", "case-facts", "payment-orders", …)."""
    Options: ClassVar[type[ConnectorOptions]] = NoOptions
    """The options it takes (a subclass declares its own; see `connectors.options`)."""
    options: ConnectorOptions
    """The validated options (a subclass narrows the type: `options: Options`)."""
    keeps_state: ClassVar[bool] = True
    """Whether what `handle` records for one event depends on earlier events (a payment run
    summing its orders, a case's phase, a monthly count). It sets the default error policy
    (`on_error` in the configuration): a sink that keeps state stops at an event it fails on
    ("stop": skipping the event would make its state wrong for every later event), one that does
    not dead-letters the event and goes on ("dead-letter"). Set it to False only for a sink
    whose effect of each event stands alone (one line per event); a sink that says nothing is
    taken to keep state, since a stop is loud and loses nothing."""
    context: ConnectorContext | None = None
    """Bound by the host (`bind`) before `setup` is called."""

    def __init__(self, name: str, options: Mapping[str, Any] | ConnectorOptions) -> None:
        self.name = name
        self.options = validated_options(type(self).Options, name, options)

    def bind(self, context: ConnectorContext) -> None:
        """Give the connector its context (the host does this before `setup`)."""
        self.context = context

    def setup(self, tx: Any) -> None:  # noqa: B027 - optional hook
        """Create the sink's own tables in the consumer's database (idempotent)."""

    @abstractmethod
    def handle(self, received: Received, tx: Any) -> None:
        """Record the event's effect in the consumer's transaction `tx`; raise
        `bus.consumer.Rejected` for an event it can never accept (it is dead-lettered)."""

    def deliver(self, tx: Any) -> list[str]:
        """Write what is complete to the external system, idempotently; return what was
        written (e.g. file names). Called after each committed batch."""
        return []

    def erase(self, subject: ErasureSubject, tx: Any) -> list[ErasedFile]:
        """Remove the person from what the sink wrote (`nervenbahn person erase`): rewrite or
        delete files, in the consumer's transaction `tx`; each file touched or not reached is
        listed. Default: the sink writes no personal data."""
        return []

    def on_reset(self, to: ResetTarget, tx: Any) -> None:  # noqa: B027 - optional hook
        """`nervenbahn connectors reset NAME --to ...` moves the sink's offsets to `to`
        ("earliest", "latest" or an aware datetime), in the consumer's transaction `tx`, and the
        events from there on are handled again. Make that idempotent here: forget (delete, mark
        to be written again) what the sink recorded for the events it will receive again, so that
        `handle` does not record them twice and `deliver` does not write twice what the target
        has already. Default: nothing — the events are handled again as new, and whatever the
        sink records per event without a unique key (and the target, if `deliver` does not ask
        it what it has) gets them twice."""

    def problems(self, tx: Any) -> list[str]:
        """What the sink holds back and why (e.g. "run 2026-03-1 held: control sum differs"),
        for `status`; each a line naming what and why."""
        return []


@dataclass
class ConnectorStatus:
    """What `nervenbahn connectors status` shows for one connector."""

    name: str
    kind: str
    position: str | None = None
    lag: int | None = None
    errors: list[str] = field(default_factory=list)
    """The most recent errors first (each: where and why)."""
    error_count: int = 0
    """All errors recorded for the connector (`errors` may show fewer)."""
    last_run: str | None = None
    """When the last run ended (ISO time) and how: "2026-03-02T10:00:00+00:00 ok"."""
    lag_note: str = ""
    """Why the lag is unknown, if it is."""
    outcome: str | None = None
    """How the connector stands: the last run's outcome ("ok", "degraded", "failed",
    "stopped", "crashed"; None: never ran), but "degraded" while a sink has dead letters not
    replayed (`nervenbahn connectors replay NAME`), whatever its last run did."""
    dead_letters: int | None = None
    """A sink's dead letters not replayed yet (None: a source, or the broker is away)."""
