"""The connector test harness: a pytest plugin for testing a connector anywhere, with plain pytest.

A connector package (the one `nervenbahn connector new` writes) loads it in its pyproject.toml::

    [tool.pytest.ini_options]
    addopts = "-p nervenbahn.testing"

and its tests take the fixture `connector_harness`: a `ConnectorHarness` in the test's own
folder, which holds

- **a store**: a SQLite event store of its own (`store.db`), with fresh keys — the master key
  handed in, the others made as `nervenbahn init` makes them, in the test's folder, never in
  `$HOME`; `harness.service` is the case service on it;
- **the host**: the real `ConnectorHost` (positions, errors, runs, sinks' consumer databases
  in `connectors/`), with the connectors added by `harness.add(name, Class, options)` or
  configured by `harness.configure(toml)` exactly as in a connectors file (installed
  connectors found by their entry points);
- **the bus**, started only when a test asks for it (a sink's run, `harness.publish`): the
  session's broker (`kafka_broker`: an embedded Tansu broker, or NERVENBAHN_TEST_KAFKA) with a
  topic prefix of the test's own, so tests never see each other's events;
- helpers to **feed** a connector (`write` an input file, `open_case`, `execute` a command,
  `publish` the store's events to the bus) and to **read its effects** (`run` returns the
  run's report, `status`, `errors`, the service's cases, the files under `harness.folder`).

Why in `nervenbahn` and not in `connectors`: the harness composes a store, its keys, the bus and
the host — the composition root's work (`nervenbahn.container`), which connectors may not import
(the import-linter contracts in pyproject.toml). A connector's *tests* may: they are an
entrypoint of their own. nervenbahn's own suite loads this plugin too (tests/conftest.py), for
the same broker fixtures.
"""

from __future__ import annotations

import base64
import itertools
import os
import secrets
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from stdnum import ean

from bus.broker import EmbeddedBroker, api_versions_answered
from bus.kafka_settings import KafkaSettings
from connectors._config import parse_config
from connectors._state import ErrorEntry
from connectors.host import ConnectorHost, ConnectorSpec, RunReport
from connectors.sdk import ConnectorStatus, Sink, Source
from domain.application.cases import CaseService
from domain.commands import parse_command
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import Container, build_service, close_service, private_files
from nervenbahn.keyfiles import create_keys

__all__ = [
    "ACTOR",
    "BROKER_DEADLINE_S",
    "TEST_KAFKA",
    "ConnectorHarness",
    "applicant",
    "broker_settings",
    "connector_harness",
    "kafka_broker",
    "kafka_settings",
]

ACTOR = {"user_id": "connector-test", "role": "administrator", "organisation": "so-canton"}
"""Who the harness's commands are executed as (may act in every social region)."""

TEST_KAFKA = os.environ.get("NERVENBAHN_TEST_KAFKA", "")
"""An external broker for the tests (host:port[,host:port]); unset: an embedded one."""

BROKER_DEADLINE_S = 30.0
"""How long a broker may take to answer when a test session starts."""

_serials = itertools.count(1)


def applicant(serial: int | None = None, **fields: str) -> dict[str, str]:
    """A valid applicant of Olten, distinct per `serial` (family name, AHVN13 with its check
    digit); `fields` override any of it."""
    number = next(_serials) if serial is None else serial
    digits = f"7561{number:08d}"
    person = {
        "given_name": "Anna",
        "family_name": f"Muster{number}",
        "ahvn13": digits + ean.calc_check_digit(digits),
        "birth_date": "1980-02-03",
        "street": "Hauptgasse 1",
        "postal_code": "4600",
        "town": "Olten",
    }
    return {**person, **fields}


class ConnectorHarness:
    """A store, a connector host and (on demand) the bus, in one folder of a test's own."""

    def __init__(
        self, folder: Path, kafka: Callable[[], KafkaSettings] | None = None
    ) -> None:
        self.folder = folder
        self.settings: Settings = load_settings(
            {
                "NERVENBAHN_STORE": f"sqlite:///{folder / 'store.db'}",
                "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
                "NERVENBAHN_KEY_DIR": str(folder / "keys"),
            }
        )
        create_keys(self.settings)
        self.service: CaseService = build_service(self.settings)
        self.specs: dict[str, ConnectorSpec] = {}
        self._kafka = kafka
        self._container: Container | None = None
        self._host: ConnectorHost | None = None

    # --- connectors -----------------------------------------------------------------------

    def add(
        self, name: str, cls: type[Source] | type[Sink], options: Mapping[str, Any] | None = None
    ) -> ConnectorSpec:
        """Configure the connector `name` of class `cls` with `options` (relative paths in them
        are relative to `folder`, as to a connectors file's folder)."""
        spec = ConnectorSpec(name, cls.kind, f"{cls.__module__}:{cls.__qualname__}",
                             dict(options or {}), base=self.folder)
        self._configured({name: spec})
        return spec

    def configure(self, toml: str) -> dict[str, ConnectorSpec]:
        """Configure connectors as a connectors file would (`[connectors.NAME]` tables; an
        installed connector is found by its entry point); the file is kept as
        `connectors.toml` in `folder`."""
        path = self.folder / "connectors.toml"
        path.write_text(toml, encoding="utf-8")
        config = parse_config(tomllib.loads(toml), base=self.folder, where=str(path))
        for name in sorted(config.broken):  # a test's configuration is right, or it says why
            raise config.broken[name]
        self._configured(config.specs)
        return config.specs

    @property
    def host(self) -> ConnectorHost:
        """The connector host of the configured connectors (state in `folder/connectors`)."""
        if self._host is None:
            bus = self.bus if self._kafka is not None else None
            self._host = ConnectorHost(self.specs, self.service, self.folder / "connectors",
                                       bus, files=private_files())
        return self._host

    def run(self, name: str, *, until_idle: bool = True) -> RunReport:
        """Run the connector `name` as `nervenbahn connectors run NAME --until-idle` does."""
        return self.host.run(name, until_idle=until_idle)

    def status(self, name: str) -> ConnectorStatus:
        """What `nervenbahn connectors status NAME` shows."""
        return self.host.status_of(name)

    def errors(self, name: str) -> list[ErrorEntry]:
        """Every error recorded for the connector, most recent first."""
        return self.host.state.errors(name)

    def forget_position(self, name: str) -> None:
        """Lose the source's saved position, as a crash between applying an item and saving
        its position would: the next run reads its input from the start again."""
        self.host.state.db.execute("DELETE FROM positions WHERE connector = ?", (name,))

    # --- feeding --------------------------------------------------------------------------

    def path(self, relative: str | Path) -> Path:
        """A path in the harness's folder."""
        return self.folder / relative

    def write(self, relative: str | Path, *lines: str) -> Path:
        """Write an input file (e.g. into a source's inbox), its folders made as needed."""
        path = self.path(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines), encoding="utf-8")
        return path

    def execute(self, command: str, **data: Any) -> Any:
        """Execute the command `command` (e.g. "open_case") with `data`, as `ACTOR`."""
        fields = {"actor": ACTOR, "correlation_id": str(uuid4()), **data}
        return self.service.execute(parse_command(command, fields))

    def open_case(self, **data: Any) -> uuid.UUID:
        """Open a case in Olten for a new applicant (`data` overrides); its id."""
        case_id = data.pop("case_id", None) or uuid4()
        fields = {"municipality_bfs": 2581, "household_size": 1, "applicant": applicant()}
        self.execute("open_case", case_id=str(case_id), **{**fields, **data})
        return uuid.UUID(str(case_id))

    def publish(self, dataset: str = "case-events") -> None:
        """Publish the store's events to the dataset's topic (the relay, until caught up)."""
        self.bus().relay(dataset).run(threading.Event(), until_caught_up=True)

    def bus(self) -> Container:
        """The store's container on the test's broker (started on first use)."""
        if self._container is None:
            if self._kafka is None:
                raise RuntimeError("this harness has no broker (ConnectorHarness(kafka=...))")
            self._container = Container(self.settings, kafka=self._kafka(),
                                        service=self.service)
        return self._container

    def close(self) -> None:
        """Close the host, the bus and the store."""
        if self._host is not None:
            self._host.close()
        if self._container is not None:
            self._container.close()
        close_service(self.service)

    def _configured(self, specs: dict[str, ConnectorSpec]) -> None:
        self.specs.update(specs)
        if self._host is not None:  # the next use builds it with every connector
            self._host.close()
            self._host = None


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def connector_harness(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ConnectorHarness]:
    """A `ConnectorHarness` in the test's folder; the broker is started (once per session)
    only if the test uses the bus."""
    harness = ConnectorHarness(tmp_path, lambda: request.getfixturevalue("kafka_settings"))
    yield harness
    harness.close()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address of the test broker, answering metadata requests.

    NERVENBAHN_TEST_KAFKA if set (waited for up to 30 s), else an embedded Tansu broker of this
    session's own (one per pytest-xdist worker). Never restart it: other tests use it."""
    if TEST_KAFKA:
        _wait_for_kafka(TEST_KAFKA, BROKER_DEADLINE_S)
        yield TEST_KAFKA
        return
    log_dir = tmp_path_factory.mktemp("broker")
    with EmbeddedBroker(log_dir, start_timeout=BROKER_DEADLINE_S) as broker:
        yield broker.bootstrap


@pytest.fixture
def kafka_settings(kafka_broker: str) -> KafkaSettings:
    """Settings on the test broker, embedded profile, with a topic prefix of this test's own."""
    return broker_settings(kafka_broker)


def broker_settings(kafka_broker: str) -> KafkaSettings:
    """Settings on the broker at `kafka_broker` (embedded profile) with a fresh topic prefix:
    what `kafka_settings` gives a test, for a fixture of a wider scope."""
    return KafkaSettings.model_validate(
        {
            "bootstrap_servers": tuple(kafka_broker.split(",")),
            "profile": "embedded",
            "topic_prefix": f"t{uuid4().hex[:10]}",
            "client_id_prefix": "nervenbahn-test",
        }
    )


def _wait_for_kafka(bootstrap: str, within: float) -> None:
    """Wait until every broker of `bootstrap` answers (ApiVersions), or fail the run."""
    deadline = time.monotonic() + within
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        while not api_versions_answered(host, int(port), timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f"NERVENBAHN_TEST_KAFKA: no Kafka broker answers at {server} "
                            f"within {within:g} s", pytrace=False)
            time.sleep(0.2)  # wait-ok: polling an external broker inside a deadline
