"""The connector SDK: the contract a specialist application's connector implements.

A **source** reads an external system's input (files, an API) and turns each input record into
commands for the case core. It names each record's *position* in its input; the runtime keeps
the last position a connector completed, so that reading the same input twice changes nothing.
Because a crash can fall between executing a record's commands and saving its position, the
commands a source emits must themselves be idempotent (the domain refuses a second command with
the same external reference; the runtime counts that refusal as "already applied").

A **sink** consumes a bus topic through the consumer framework (`bus.consumer`): `handle` is
called once per event inside the consumer's database transaction (effects, event id and
offsets commit together; a failing event is dead-lettered, consumption goes on). What must
reach the external system (a file, an API call) is written by `deliver`, after the batch
committed; `deliver` must be idempotent (e.g. a file named by its content's identity, written
atomically), so exactly-once effect holds where the target allows it.

Connectors are configured in one file and run by `nervenbahn connectors run NAME`; the runtime
(`connectors.runtime`) is the SDK's other half.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from bus.consumer import Received
from domain.commands import Command

__all__ = ["ConnectorStatus", "Sink", "Source", "SourceInputError", "SourceItem"]


class SourceInputError(Exception):
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

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        self.name = name
        self.options = dict(options)

    @abstractmethod
    def read(self, after: str | None) -> Iterator[SourceItem]:
        """The input records after position `after` (all if None), in order.

        Raise `SourceInputError` for malformed input *before* yielding anything of it.
        """


class Sink(ABC):
    """A sink connector: bus topic → external system."""

    kind: ClassVar[Literal["sink"]] = "sink"
    feed: ClassVar[str] = "case-events"
    """The dataset of the topic it consumes ("case-events", "case-facts", …)."""

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        self.name = name
        self.options = dict(options)

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


@dataclass
class ConnectorStatus:
    """What `nervenbahn connectors status` shows for one connector."""

    name: str
    kind: str
    position: str | None = None
    lag: int | None = None
    errors: list[str] = field(default_factory=list)
