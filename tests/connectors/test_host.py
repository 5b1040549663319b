"""The connector runtime: configuration, sources (positions, already applied, refusals, malformed
input) and sinks on the real broker (rejections dead-lettered, a crash mid-batch)."""

from __future__ import annotations

import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bus.consumer import Consumer, Received
from bus.effects_sqlite import SQLiteEffectStore
from connectors.host import (
    AlreadyRunningError,
    ConnectorConfigError,
    ConnectorHost,
    ConnectorSpec,
    RunReport,
    group_id,
    load_config,
)
from connectors.sdk import (
    ConnectorOptions,
    Sink,
    Source,
    SourceInputError,
    SourceItem,
    already_applied,
)
from domain.application.cases import CaseService
from domain.errors import InvalidCommandError, RuleViolationError
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import Container, private_files
from tests.bus.pipeline import command
from tests.bus.waiting import wait_until
from tests.conftest import TEST_KAFKA
from tests.domain.case_desk import person_input

NAMESPACE = uuid.UUID(int=6)
HERE = "tests.connectors.test_host"


# --- in-test connectors -------------------------------------------------------------------


class ListSource(Source):
    """Opens a case per record of `options.records` ({"ref", "bfs"}); "bad" in a ref makes the
    whole input malformed."""

    class Options(ConnectorOptions):
        records: list[dict[str, Any]]
        """The input records."""

    options: Options

    def read(self, after: str | None) -> Iterator[SourceItem]:
        records = list(self.options.records)
        if any("bad" in record["ref"] for record in records):
            raise SourceInputError("records: a reference marked bad")
        for index, record in enumerate(records):
            position = f"{index:04d}"
            if after is not None and position <= after:
                continue
            opened = command(
                "open_case",
                case_id=str(uuid.uuid5(NAMESPACE, record["ref"])),
                municipality_bfs=record["bfs"],
                household_size=1,
                applicant=person_input(index + 1),
            )
            yield SourceItem(position, (opened,), f"record {record['ref']}")

    def pending(self, after: str | None) -> int | None:
        return sum(1 for i in range(len(self.options.records)) if f"{i:04d}" > (after or ""))


class Crash(BaseException):
    """A process dying mid-batch (not an error a handler could catch)."""


class CountingSink(Sink):
    """One row per handled event (no unique key: a duplicate effect shows as a second row);
    rejects the events of the case `options.reject`; crashes once at the `options.crash_at`-th
    call of `handle` in this process. Its rows stand alone: it dead-letters what it rejects."""

    calls = 0
    keeps_state = False

    class Options(ConnectorOptions):
        crash_at: int | None = None
        reject: str | None = None

    options: Options

    def setup(self, tx: sqlite3.Connection) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS seen (event_id TEXT, case_id TEXT)")
        tx.execute("CREATE TABLE IF NOT EXISTS delivered (event_id TEXT)")

    def handle(self, received: Received, tx: sqlite3.Connection) -> None:
        CountingSink.calls += 1
        if CountingSink.calls == self.options.crash_at:
            raise Crash
        case_id = str(received.event.originator_id)
        if case_id == self.options.reject:
            raise ValueError(f"case {case_id} is refused by the target")
        tx.execute("INSERT INTO seen VALUES (?, ?)", (str(received.event_id), case_id))

    def deliver(self, tx: sqlite3.Connection) -> list[str]:
        rows = tx.execute(
            "SELECT event_id FROM seen WHERE event_id NOT IN (SELECT event_id FROM delivered)"
        ).fetchall()
        tx.executemany("INSERT INTO delivered VALUES (?)", rows)
        return [row[0] for row in rows]


def runtime_of(
    tmp_path: Path,
    service: CaseService,
    kind: str,
    cls: str,
    options: Mapping[str, Any],
    bus: Container | None = None,
) -> ConnectorHost:
    spec = ConnectorSpec(
        "probe", kind, f"{HERE}:{cls}", dict(options), base=tmp_path  # type: ignore[arg-type]
    )
    return ConnectorHost(
        {"probe": spec}, service, tmp_path / "connectors", None if bus is None else lambda: bus,
        files=private_files(),
    )


# --- configuration ------------------------------------------------------------------------


def test_the_configuration_file_names_each_connector(tmp_path: Path) -> None:
    path = tmp_path / "connectors.toml"
    path.write_text(
        '[connectors.intake]\nkind = "source"\nclass = "tests.connectors.test_host:ListSource"'
        '\n[connectors.intake.options]\nrecords = []\n'
        '[connectors.outbox]\nkind = "sink"\nclass = "tests.connectors.test_host:CountingSink"'
        "\n"
    )
    specs = load_config(path)
    assert {(s.name, s.kind) for s in specs.values()} == {("intake", "source"), ("outbox", "sink")}
    assert specs["intake"].options == {"records": []}
    assert specs["intake"].base == tmp_path.resolve()
    assert load_config(tmp_path / "absent.toml") == {}


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('[connectors.a]\nkind = "pipe"\nclass = "m:C"\n', "connectors.a.kind"),
        ('[connectors.a]\nkind = "sink"\nclass = "no colon"\n', "connectors.a.class"),
        ('[connectors.a]\nkind = "sink"\nclass = "m:C"\ncolour = 1\n', "connectors.a.colour"),
        ('[connectors.a]\nkind = "sink"\nclass = "m:C"\noptions = 3\n', "connectors.a.options"),
        ('[connectors.Bad-Name]\nkind = "sink"\nclass = "m:C"\n', "connectors.Bad-Name"),
        ("[connector.a]\n", "'connector'"),
        ("[connectors.a\n", "not valid TOML"),
    ],
)
def test_an_invalid_configuration_names_the_connector_and_key(
    tmp_path: Path, text: str, names: str
) -> None:
    path = tmp_path / "connectors.toml"
    path.write_text(text)
    with pytest.raises(ConnectorConfigError) as caught:
        load_config(path)
    assert names in str(caught.value)


def test_a_class_of_the_wrong_kind_is_refused_naming_it(tmp_path: Path) -> None:
    spec = ConnectorSpec("probe", "sink", f"{HERE}:ListSource", {}, base=tmp_path)
    with pytest.raises(ConnectorConfigError, match=r"connectors\.probe\.class: .*not a Sink"):
        spec.load()
    missing = ConnectorSpec("probe", "sink", "tests.connectors.nowhere:X", {}, base=tmp_path)
    with pytest.raises(ConnectorConfigError, match="cannot import"):
        missing.load()


def test_the_file_comes_from_the_environment_or_beside_the_store(tmp_path: Path) -> None:
    from nervenbahn.container import connectors_file

    env = {"NERVENBAHN_STORE": f"sqlite:///{tmp_path / 's.db'}", "NERVENBAHN_MASTER_KEY": ""}
    env["NERVENBAHN_MASTER_KEY"] = "A" * 43 + "="
    assert connectors_file(load_settings(env)) == tmp_path / "connectors.toml"
    env["NERVENBAHN_CONNECTORS"] = str(tmp_path / "elsewhere.toml")
    assert connectors_file(load_settings(env)) == tmp_path / "elsewhere.toml"


# --- sources ------------------------------------------------------------------------------


def test_already_applied_is_recognised_by_rule_or_existing_case() -> None:
    assert already_applied(RuleViolationError("already-received", "seen"))
    assert not already_applied(RuleViolationError("actor-responsible", "not yours"))
    exists = InvalidCommandError("open_case", [("case_id", "a case 1 exists already")])
    assert already_applied(exists)
    assert not already_applied(InvalidCommandError("open_case", [("household_size", "bad")]))


def test_a_refused_item_is_recorded_and_the_source_goes_on(
    tmp_path: Path, connector_service: CaseService
) -> None:
    records = [{"ref": "A", "bfs": 2581}, {"ref": "B", "bfs": 9999}, {"ref": "C", "bfs": 2581}]
    runtime = runtime_of(tmp_path, connector_service, "source", "ListSource", {"records": records})
    report = runtime.run("probe", until_idle=True)
    assert (report.items, report.applied, report.refused) == (3, 2, 1)
    expected = {uuid.uuid5(NAMESPACE, ref) for ref in ("A", "C")}
    assert set(connector_service.case_ids()) == expected
    status = runtime.status_of("probe")
    assert (status.position, status.lag, status.error_count) == ("0002", 0, 1)
    assert "record B" in status.errors[0]
    assert status.last_run is not None and " ok: 3 items" in status.last_run
    runtime.close()


def test_the_same_input_twice_changes_nothing_even_without_the_position(
    tmp_path: Path, connector_service: CaseService
) -> None:
    records = [{"ref": "A", "bfs": 2581}, {"ref": "B", "bfs": 2581}]
    runtime = runtime_of(tmp_path, connector_service, "source", "ListSource", {"records": records})
    runtime.run("probe", until_idle=True)
    assert runtime.run("probe", until_idle=True).items == 0
    # A crash between executing and saving the position: the position is behind.
    runtime.state.save_position("probe", "0000")
    replay = runtime.run("probe", until_idle=True)
    assert (replay.items, replay.applied, replay.already) == (1, 0, 1)
    assert len(list(connector_service.case_ids())) == 2
    assert runtime.status_of("probe").error_count == 0
    runtime.close()


def test_malformed_input_stops_the_run_with_nothing_applied(
    tmp_path: Path, connector_service: CaseService
) -> None:
    records = [{"ref": "A", "bfs": 2581}, {"ref": "bad", "bfs": 2581}]
    runtime = runtime_of(tmp_path, connector_service, "source", "ListSource", {"records": records})
    first = runtime.run("probe", until_idle=True)
    second = runtime.run("probe", until_idle=True)
    assert not first.ok and "a reference marked bad" in (second.stopped_by or "")
    assert list(connector_service.case_ids()) == []
    status = runtime.status_of("probe")
    assert status.position is None and status.error_count == 1
    assert status.errors[0].endswith("(×2)")  # the same error again only counts up
    assert status.last_run is not None and " stopped: " in status.last_run
    runtime.close()


def test_a_connector_runs_once_at_a_time(tmp_path: Path, connector_service: CaseService) -> None:
    runtime = runtime_of(tmp_path, connector_service, "source", "ListSource", {"records": []})
    with runtime._exclusive("probe"), pytest.raises(AlreadyRunningError, match="probe"):
        runtime.run("probe", until_idle=True)
    runtime.close()


# --- sinks on the real broker -------------------------------------------------------------


def _open_cases(service: CaseService, count: int) -> list[uuid.UUID]:
    return [
        service.execute(
            command(
                "open_case",
                municipality_bfs=2581,
                household_size=1,
                applicant=person_input(100 + n),
            )
        ).case_id
        for n in range(count)
    ]


def test_a_sink_crashing_mid_batch_resumes_without_loss_or_duplicate(
    tmp_path: Path, connector_service: CaseService, connector_bus: Container
) -> None:
    cases = _open_cases(connector_service, 6)
    connector_bus.relay("case-events").run(threading.Event(), until_caught_up=True)
    CountingSink.calls = 0
    options = {"crash_at": 3, "reject": str(cases[0])}
    runtime = runtime_of(
        tmp_path, connector_service, "sink", "CountingSink", options, connector_bus
    )
    with pytest.raises(Crash):
        runtime.run("probe", until_idle=True)
    resumed = runtime.run("probe", until_idle=True)
    assert resumed.stopped_by is None and resumed.outcome in ("ok", "degraded")
    db = sqlite3.connect(tmp_path / "connectors" / "probe.db")
    rows = db.execute("SELECT case_id FROM seen").fetchall()
    delivered = db.execute("SELECT count(*), count(DISTINCT event_id) FROM delivered").fetchone()
    db.close()
    assert sorted(row[0] for row in rows) == sorted(str(c) for c in cases[1:])  # once each
    assert delivered == (5, 5)
    status = runtime.status_of("probe")
    assert status.lag == 0
    assert status.error_count == 1 and f"case {cases[0]} is refused" in status.errors[-1]
    # The dead-letter topic is at-least-once: the crash rolled back the batch that had already
    # parked the rejected event, so it is parked again on resume (same dlq_original header).
    assert status.outcome == "degraded"  # until the dead letter is replayed
    assert status.errors[0] in (
        f"{count} dead letters not replayed (nervenbahn connectors replay probe)"
        for count in (1, 2)
    )
    runtime.close()


def test_a_sink_on_an_unknown_dataset_is_a_configuration_error(
    tmp_path: Path, connector_service: CaseService, connector_bus: Container
) -> None:
    class Elsewhere(CountingSink):
        dataset = "no-such-dataset"

    globals()["Elsewhere"] = Elsewhere
    runtime = runtime_of(tmp_path, connector_service, "sink", "Elsewhere", {}, connector_bus)
    with pytest.raises(Exception, match="no-such-dataset"):
        runtime.run("probe", until_idle=True)
    runtime.close()


def _run_within(runtime: ConnectorHost, within: float) -> RunReport:
    """A run until idle that must end within `within` seconds (stopped and failed if not)."""
    stop = threading.Event()
    reports: list[RunReport] = []
    worker = threading.Thread(
        target=lambda: reports.append(runtime.run("probe", stop, until_idle=True)), daemon=True
    )
    worker.start()
    try:
        wait_until(lambda: not worker.is_alive(), within=within, what="the run to end")
    finally:
        stop.set()
        worker.join(timeout=30)
    return reports[0]


def test_a_sink_takes_new_events_after_an_idle_run(
    tmp_path: Path, connector_service: CaseService, connector_bus: Container
) -> None:
    # A cron-run sink: it caught up, then ran with nothing new (and left before it was ever
    # assigned partitions); the event that comes next must reach the run after, promptly. It
    # used to wait for partitions silently for ever (issue 20, point 1).
    relay = connector_bus.relay("case-events")
    _open_cases(connector_service, 1)
    relay.run(threading.Event(), until_caught_up=True)
    CountingSink.calls = 0
    runtime = runtime_of(tmp_path, connector_service, "sink", "CountingSink", {}, connector_bus)
    first = _run_within(runtime, 30)
    assert first.ok and first.handled >= 1
    idle = _run_within(runtime, 30)
    assert idle.ok and idle.handled == 0
    _open_cases(connector_service, 1)
    relay.run(threading.Event(), until_caught_up=True)
    after = _run_within(runtime, 30)
    assert after.ok and after.handled >= 1
    db = sqlite3.connect(tmp_path / "connectors" / "probe.db")
    cases = db.execute("SELECT count(DISTINCT case_id) FROM seen").fetchone()[0]
    db.close()
    assert cases == 2
    assert runtime.status_of("probe").lag == 0
    runtime.close()


def test_a_source_takes_new_input_after_an_idle_run(
    tmp_path: Path, connector_service: CaseService
) -> None:
    # Sources hold no consumer group (they read their input after a stored position), so an
    # idle run leaves nothing behind; the same cron sequence as for sinks, for the record.
    records = [{"ref": "A", "bfs": 2581}]
    runtime = runtime_of(tmp_path, connector_service, "source", "ListSource", {"records": records})
    assert runtime.run("probe", until_idle=True).items == 1
    assert runtime.run("probe", until_idle=True).items == 0
    records.append({"ref": "B", "bfs": 2581})
    after = runtime.run("probe", until_idle=True)
    assert (after.items, after.applied) == (1, 1)
    assert set(connector_service.case_ids()) == {uuid.uuid5(NAMESPACE, r) for r in ("A", "B")}
    runtime.close()


def _ignore(received: Received, tx: Any) -> None:
    """A handler that does nothing."""


@pytest.mark.skipif(bool(TEST_KAFKA), reason="the wedge is a quirk of the embedded broker")
def test_a_sink_run_until_idle_that_gets_no_partitions_stops_with_the_reason(
    tmp_path: Path,
    connector_settings: Settings,
    connector_service: CaseService,
    connector_bus: Container,
) -> None:
    # The group wedged on purpose, as a version without the fix left it: a member that closes
    # mid-join without letting the join complete (join_wait_ms 0). A run must say so, not wait.
    kafka = connector_bus.kafka
    topic = [connector_bus.topic("case-events").name]
    codec = connector_bus.codec("case-events")
    store = SQLiteEffectStore(tmp_path / "wedge.db")
    with Consumer(kafka, group_id("probe"), topic, codec, _ignore, store) as member:
        wait_until(lambda: member.joined, step=lambda: member.poll_once(200), what="joined")
    hasty = kafka.model_copy(update={"join_wait_ms": 0})
    with Consumer(hasty, group_id("probe"), topic, codec, _ignore, store) as member:
        member.poll_once(200)  # and leaves with its join in flight
    store.close()
    patient = Container(connector_settings, kafka=kafka.model_copy(update={"join_wait_ms": 3000}),
                        service=connector_service)
    runtime = runtime_of(tmp_path, connector_service, "sink", "CountingSink", {}, patient)
    report = _run_within(runtime, 30)
    assert not report.ok
    assert re.search(r"no partitions assigned within \d+ s \(join_wait_ms 3000\)",
                     report.stopped_by or "")
    last_run = runtime.status_of("probe").last_run or ""
    assert " stopped: " in last_run and "connector-probe" in last_run
    runtime.close()
    patient.close()
