"""The fault suite's parts: an installation (a SQLite store, its keys, a broker of its own),
`nervenbahn serve` as a real process (SIGKILL needs one), a writer process, and the figures
every scenario reports (events in, messages out, lost, duplicated, read models equal to a
rebuild, seconds until ready again).

Nothing here sleeps on hope: every wait polls a condition with a deadline (`wait_until`).
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from kafka import KafkaConsumer, TopicPartition

from bus.broker import EmbeddedBroker, free_port
from bus.envelope import event_id
from domain.application.cases import CaseService
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import Container, build_service, close_service
from projections import PROJECTIONS
from projections.framework import rebuild
from tests.bus.waiting import wait_until
from tests.projections.test_poison import dump

REPO = Path(__file__).parents[2]

READY_WITHIN_S = 60.0
"""The bound on `serve` being ready again (GET /health/ready 200) after a start or a fault."""

SETTLE_WITHIN_S = 90.0
"""How long the bus and the read models get to catch up with the store after a fault."""


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Installation:
    """A SQLite store in `root` with its keys in the environment, on `broker`'s bus."""

    root: Path
    broker: EmbeddedBroker
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = {
            **os.environ,
            "NERVENBAHN_STORE": f"sqlite:///{self.root / 'store' / 'store.db'}",
            "NERVENBAHN_MASTER_KEY": _key(),
            "NERVENBAHN_REPORTING_KEY": _key(),
            "NERVENBAHN_AUDIT_SIGNING_KEY": _key(),
            "NERVENBAHN_KAFKA": self.broker.bootstrap,
            "NERVENBAHN_KAFKA_PROFILE": "embedded",
            # Tansu's own partition count: a topic it lost comes back with 4 (bus/broker.py)
            "NERVENBAHN_KAFKA_PARTITIONS": "4",
            "NERVENBAHN_TOPIC_PREFIX": f"chaos{uuid4().hex[:8]}",
            "NERVENBAHN_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        (self.root / "store").mkdir(parents=True, exist_ok=True, mode=0o700)

    @property
    def settings(self) -> Settings:
        """The settings every process of the installation reads."""
        return load_settings({k: v for k, v in self.env.items() if k.startswith("NERVENBAHN_")})

    @property
    def store(self) -> Path:
        """The SQLite store's file."""
        return self.root / "store" / "store.db"

    @contextmanager
    def container(self) -> Iterator[Container]:
        """A container of the installation's parts in this (the test's) process."""
        service = build_service(self.settings)
        container = Container(self.settings, service=service)
        try:
            yield container
        finally:
            container.close()
            close_service(service)

    def serve(self, name: str = "serve") -> Serve:
        """A `nervenbahn serve` of this installation (not started yet)."""
        return Serve(self, name)

    def write(self, first: int, count: int) -> subprocess.Popen[bytes]:
        """Start a writer process recording `count` supported cases (3 events each)."""
        log = (self.root / f"writer-{first}.log").open("wb")
        return subprocess.Popen([sys.executable, "-m", "tests.chaos.writer", str(first),
                                 str(count)], cwd=REPO, env=self.env, stdout=log, stderr=log)


@dataclass
class Serve:
    """`nervenbahn serve` as a process of its own, its log in the installation's folder."""

    installation: Installation
    name: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    starts: int = 0

    @property
    def log(self) -> Path:
        """Where its stdout and stderr go (all starts appended)."""
        return self.installation.root / f"{self.name}.log"

    def start(self) -> None:
        """Start the process (returns at once; `wait_ready` waits)."""
        self.starts += 1
        out = self.log.open("ab")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nervenbahn", "serve", "--port", str(self.port)],
            cwd=self.installation.root, env=self.installation.env, stdout=out, stderr=out)

    def ready(self) -> bool:
        """True if GET /health/ready answers 200; AssertionError if the process ended."""
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise AssertionError(f"{self.name} is not running (exit {code}):\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health/ready",
                                        timeout=5) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def wait_ready(self, within: float = READY_WITHIN_S) -> float:
        """Seconds from the last start until /health/ready answered 200 (at most `within`)."""
        wait_until(self.ready, within=within, what=f"{self.name} ready (GET /health/ready 200)")
        return time.monotonic() - self.started

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would, and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after 30 s); its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def tail(self, lines: int = 30) -> str:
        """The end of its log."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def serving(installation: Installation, name: str = "serve") -> Iterator[Serve]:
    """A started `serve` of the installation, stopped at the end of the block."""
    server = installation.serve(name)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_for(process: subprocess.Popen[bytes], within: float, what: str) -> int:
    """The exit code of `process`, which must end within `within` seconds."""
    return int(wait_until(lambda: process.poll() is not None and (process.returncode,),
                          within=within, what=what)[0])


# --- figures ---------------------------------------------------------------------------------


@dataclass
class Figures:
    """One scenario's row of the closing table."""

    scenario: str
    events_in: int = 0
    messages_out: int = 0
    lost: int = 0
    duplicated: int = 0
    read_models_equal: bool | None = None
    """None: not compared (the scenario is about something else)."""
    ready_after_s: float | None = None
    passed: bool = False
    note: str = ""

    def row(self) -> dict[str, Any]:
        """The row as JSON-able values."""
        return asdict(self)


@dataclass
class TopicContent:
    """What the case topic holds, by the event id its header names."""

    copies: dict[UUID, int]

    def delivered(self, recorded: set[UUID]) -> set[UUID]:
        """The recorded events the topic carries."""
        return recorded & self.copies.keys()

    def duplicates(self, recorded: set[UUID]) -> int:
        """Extra copies of recorded events."""
        return sum(self.copies[i] - 1 for i in self.delivered(recorded))


def recorded_ids(service: CaseService) -> set[UUID]:
    """The id (`bus.envelope.event_id`) of every event in the store."""
    notifications = service.notifications(gt=0, limit=10**9)
    return {event_id(n.originator_id, n.originator_version) for n in notifications}


def read_topic(container: Container, dataset: str = "case-events") -> TopicContent:
    """Every message of the dataset's topic up to its current end, counted by event id."""
    kafka = container.kafka
    topic = container.topic(dataset).name
    reader = KafkaConsumer(**kafka.consumer_kwargs(group_id=None))
    try:
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
        if not partitions:  # not (yet, or no longer) on the broker: it holds nothing
            return TopicContent({})
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        ends = reader.end_offsets(partitions)
        copies: dict[UUID, int] = {}

        def poll() -> None:
            for messages in reader.poll(300).values():
                for message in messages:
                    header = dict(message.headers).get("event_id", b"")
                    try:
                        key = UUID(header.decode())
                    except ValueError:
                        continue
                    copies[key] = copies.get(key, 0) + 1

        wait_until(lambda: all(reader.position(p) >= ends[p] for p in partitions), step=poll,
                   what=f"{topic} read to its end")
        return TopicContent(copies)
    finally:
        reader.close()


def read_models_as_rebuilt(container: Container, scratch: Path) -> dict[str, str]:
    """Each read model of `serve` that differs from a rebuild from the store, and how."""
    differ: dict[str, str] = {}
    for name in PROJECTIONS:
        projection = container.projection(name)
        served = container.read_model(name)
        assert isinstance(served, Path), "the fault suite runs the read models in SQLite"
        fresh = scratch / f"{name}.rebuilt-{uuid4().hex[:6]}.db"
        rebuild(projection, container.service, fresh)
        expected = dump(projection, fresh)
        got = dump(projection, served) if served.exists() else {}
        if got != expected:
            rows = {t: (len(got.get(t, [])), len(rows)) for t, rows in expected.items()}
            differ[name] = f"rows served/rebuilt per table {rows}"
    return differ


def settle(installation: Installation, scenario: str, *, planted_copies: int = 0,
           within: float = SETTLE_WITHIN_S) -> Figures:
    """Wait (up to `within`) until the topic carries every recorded event and every read model
    equals a rebuild, then count. `planted_copies`: copies of recorded events a scenario put on
    the topic itself (not the relay's duplicates)."""
    figures = Figures(scenario)
    scratch = installation.root / "rebuilt"
    scratch.mkdir(exist_ok=True)
    with installation.container() as container:
        recorded = recorded_ids(container.service)
        state: dict[str, Any] = {}

        def caught_up() -> bool:
            state["topic"] = read_topic(container)
            if state["topic"].delivered(recorded) != recorded:
                return False
            state["differ"] = read_models_as_rebuilt(container, scratch)
            return not state["differ"]

        try:
            wait_until(caught_up, within=within, what="bus and read models caught up")
        except AssertionError as exc:
            figures.note = str(exc).splitlines()[0][:200]
        topic: TopicContent = state.get("topic") or read_topic(container)
        delivered = topic.delivered(recorded)
        figures.events_in = len(recorded)
        figures.messages_out = len(delivered)
        figures.lost = len(recorded - delivered)
        figures.duplicated = max(0, topic.duplicates(recorded) - planted_copies)
        differ = state.get("differ")
        if differ is None:
            differ = read_models_as_rebuilt(container, scratch)
        figures.read_models_equal = not differ
        if differ:
            figures.note = (figures.note + " " + "; ".join(
                f"{k}: {v}" for k, v in differ.items()))[:300]
    return figures
