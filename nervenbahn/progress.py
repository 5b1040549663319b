"""Where each relay and each read model's consumer group stands: for `GET /metrics` (asked at
scrape time through the `Supervision` of `serve`) and for `nervenbahn status` (no `serve`
needed).

Everything is read, nothing written: the relays' positions and the store's head
(`Container.relay_status`), each read model's offsets and progress through a read-only
connection to it (`projections.storage.open_read_model`), the topics' end offsets and the
dead-letter topics' sizes from the broker. A broker that cannot be reached, or none
configured, leaves the lags and dead-letter counts unknown with the reason, never an error:
an operator wants the rest of the answer. The broker gets `BROKER_WAIT_MS` to answer (not the
profile's request timeout, 30 s in production): measured under `serve` on the embedded broker,
a scrape took 0.12–0.14 s with the broker up and 10.0 s with it down before this bound, the
whole of Prometheus's default scrape timeout, so a scrape failed exactly when it mattered.

Nothing here names a person or a case: relays, groups, read models, counts and times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bus.consumer import group_lag
from bus.effects import read_offsets
from bus.errors import BusError
from bus.kafka_settings import KafkaSettings
from bus.topics import dead_letter_topic, topic_end_offsets, topic_message_counts
from domain.errors import NervenbahnError
from nervenbahn.container import Container
from nervenbahn.datasets import (
    BENEFIT_APPLICATIONS,
    CASE_EVENTS,
    CASE_FACTS,
    PAYMENT_ORDERS,
    dataset,
)
from projections import Projection
from projections.errors import ReadModelUnreadableError
from projections.storage import open_read_model, read_progress

__all__ = [
    "BROKER_WAIT_MS",
    "RELAYED",
    "GroupReport",
    "RelayReport",
    "group_reports",
    "relay_reports",
]

BROKER_WAIT_MS = 3000
"""How long the broker may take to answer the questions of one report (connect, end offsets)."""
RELAYED = (CASE_EVENTS, CASE_FACTS, PAYMENT_ORDERS, BENEFIT_APPLICATIONS)
"""The datasets a relay fills, as `serve` runs them."""


@dataclass(frozen=True)
class RelayReport:
    """One relay: its position in the store's notification log, the head, the lag."""

    relay: str
    dataset: str
    position: int | None
    head: int | None
    problem: str | None = None
    """Why position and head are unknown (None when they are known)."""

    @property
    def lag(self) -> int | None:
        """Recorded events not yet published (None if unknown)."""
        if self.position is None or self.head is None:
            return None
        return max(self.head - self.position, 0)


@dataclass(frozen=True)
class GroupReport:
    """One read model's consumer group: how far behind its topic, how many messages it
    dead-lettered, and how fresh its read model is."""

    group: str
    read_model: str
    built: bool
    lag: int | None
    dead_letters: int | None
    broker: str
    """"ok", or why the lag and dead letters are unknown."""
    as_of: datetime | None
    """The recorded time of the newest event its read model applied."""
    applied_at: datetime | None
    """When its read model last applied an event."""


def relay_reports(container: Container, datasets: Sequence[str] = RELAYED) -> list[RelayReport]:
    """Each relay's position, head and lag, read from the store (no broker needed)."""
    reports = []
    for name in datasets:
        relay_name = dataset(name).relay or name
        try:
            status = container.relay_status(name)
        except NervenbahnError as exc:
            reports.append(RelayReport(relay_name, name, None, None, str(exc)))
            continue
        reports.append(RelayReport(relay_name, name, status.position, status.head))
    return reports


def group_reports(container: Container, projections: Sequence[Projection]) -> list[GroupReport]:
    """Each projection's consumer group: lag and dead letters from the broker (if it can be
    reached), offsets and freshness from its read model (read-only)."""
    local = {projection.name: _read_model_state(container, projection)
             for projection in projections}
    broker, kafka = _broker(container)
    lags: dict[str, int] = {}
    dead: dict[str, int | None] = {}
    if kafka is not None:
        try:
            lags, dead = _from_broker(container, kafka, projections, local)
        except BusError as exc:
            broker = f"broker unreachable: {exc}"
    return [
        GroupReport(
            group=projection.group,
            read_model=projection.name,
            built=local[projection.name][0],
            lag=lags.get(projection.group),
            dead_letters=dead.get(projection.group),
            broker=broker,
            as_of=local[projection.name][2],
            applied_at=local[projection.name][3],
        )
        for projection in projections
    ]


_State = tuple[bool, dict[tuple[str, int], int], datetime | None, datetime | None]
"""built, offsets, as_of, applied_at"""


def _read_model_state(container: Container, projection: Projection) -> _State:
    try:
        # Timed: `/metrics` asks this on a server thread (and `status`); a read model locked
        # (a migration, a rebuild's swap) must not hold that thread without limit.
        with open_read_model(container.read_model(projection.name), projection.tables[0],
                             timed=True) as db:
            offsets = read_offsets(db, projection.group)
            progress = read_progress(db, projection.name)
    except ReadModelUnreadableError:
        return (False, {}, None, None)
    if progress is None:
        return (True, offsets, None, None)
    return (True, offsets, progress.as_of, progress.applied_at)


def _broker(container: Container) -> tuple[str, KafkaSettings | None]:
    """The broker's settings with `BROKER_WAIT_MS` as its timeouts, or why there is none."""
    try:
        kafka = container.kafka
    except NervenbahnError as exc:
        return f"no broker: {exc}", None
    bounded = {"request_timeout_ms": BROKER_WAIT_MS, "bootstrap_timeout_ms": BROKER_WAIT_MS}
    return "ok", KafkaSettings.model_validate(kafka.model_dump() | bounded)


def _from_broker(
    container: Container,
    kafka: KafkaSettings,
    projections: Sequence[Projection],
    local: dict[str, _State],
) -> tuple[dict[str, int], dict[str, int | None]]:
    topics = {projection.group: container.topic(projection.dataset).name
              for projection in projections}
    ends = topic_end_offsets(kafka, sorted(set(topics.values())))
    lags = {
        projection.group: group_lag(
            local[projection.name][1],
            {tp: end for tp, end in ends.items() if tp.topic == topics[projection.group]},
        )
        for projection in projections
    }
    letters = {group: dead_letter_topic(kafka, group) for group in topics}
    counts = topic_message_counts(kafka, list(letters.values()))
    return lags, {group: counts.get(topic) or 0 for group, topic in letters.items()}
