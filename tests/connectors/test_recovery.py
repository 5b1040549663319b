"""A sink's error policy and its recovery, on the real embedded broker (issue 20, point 4):
`on_error = "stop"` stops at the failing event and the next run handles it again;
`"dead-letter"` goes on and ends `degraded`; `replay` re-delivers dead letters once after a fix;
`reset` re-delivers from earliest, latest or a time, and `on_reset` keeps that idempotent."""

from __future__ import annotations

import io
import json
import sqlite3
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bus.consumer import Received, Rejected
from connectors.host import ConnectorConfigError, ConnectorHost, ConnectorSpec, load_config
from connectors.sdk import ConnectorOptions, ResetTarget, Sink
from domain.application.cases import CaseService
from nervenbahn.cli import EXIT_DEGRADED, EXIT_FAILED, EXIT_REFUSED, main
from nervenbahn.config import load_settings
from nervenbahn.container import Container, build_service, close_service, private_files
from tests.bus.pipeline import command
from tests.domain.case_desk import person_input

HERE = "tests.connectors.test_recovery"


class RowSink(Sink):
    """One row per event (no unique key: an effect taken twice shows as a second row); fails,
    like a bug, on the events of the case `options.fail`. Keeps state by default (the SDK's
    default): its policy is "stop" unless configured otherwise."""

    class Options(ConnectorOptions):
        fail: str | None = None
        """The case whose events the sink fails on (none: it fails on nothing)."""

    options: Options

    def setup(self, tx: sqlite3.Connection) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS rows (event_id TEXT, case_id TEXT)")

    def handle(self, received: Received, tx: sqlite3.Connection) -> None:
        case_id = str(received.event.originator_id)
        if case_id == self.options.fail:
            raise ValueError(f"case {case_id} cannot be written")
        tx.execute("INSERT INTO rows VALUES (?, ?)", (str(received.event_id), case_id))


class StatelessRowSink(RowSink):
    """The same, saying its rows stand alone (default policy "dead-letter")."""

    keeps_state = False


class RejectingRowSink(RowSink):
    """A stop-policy sink that rejects (its own word: "not for me") the events of the case
    `options.fail` instead of failing on them."""

    def handle(self, received: Received, tx: sqlite3.Connection) -> None:
        if str(received.event.originator_id) == self.options.fail:
            raise Rejected(f"case {received.event.originator_id} is not for this sink")
        super().handle(received, tx)


class IdempotentRowSink(StatelessRowSink):
    """The same, forgetting on a reset the rows it will write again."""

    def on_reset(self, to: ResetTarget, tx: sqlite3.Connection) -> None:
        tx.execute("DELETE FROM rows")  # every event from `to` on comes again; earlier rows too


def host_of(
    tmp_path: Path,
    service: CaseService,
    bus: Container,
    cls: str,
    options: dict[str, Any] | None = None,
    *,
    name: str = "probe",
    on_error: Any = None,
) -> ConnectorHost:
    spec = ConnectorSpec(name, "sink", f"{HERE}:{cls}", options or {}, base=tmp_path,
                         on_error=on_error)
    return ConnectorHost({name: spec}, service, tmp_path / "connectors", lambda: bus,
                         files=private_files())


def published_cases(service: CaseService, bus: Container, count: int) -> list[str]:
    """Open `count` cases and relay their events to the topic."""
    opened = [
        str(service.execute(command("open_case", municipality_bfs=2581, household_size=1,
                                    applicant=person_input(200 + n))).case_id)
        for n in range(count)
    ]
    bus.relay("case-events").run(threading.Event(), until_caught_up=True)
    return opened


def rows(tmp_path: Path, name: str = "probe") -> list[str]:
    """The case id of every row the sink wrote, sorted."""
    db = sqlite3.connect(tmp_path / "connectors" / f"{name}.db")
    try:
        return sorted(row[0] for row in db.execute("SELECT case_id FROM rows"))
    finally:
        db.close()


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "names"),
    [
        ('kind = "sink"\nclass = "m:C"\non_error = "skip"\n',
         "connectors.a.on_error: must be 'stop' or 'dead-letter', not 'skip'"),
        ('kind = "source"\nclass = "m:C"\non_error = "stop"\n',
         "connectors.a.on_error: only for sinks"),
    ],
)
def test_on_error_is_stop_or_dead_letter_and_only_for_sinks(
    tmp_path: Path, table: str, names: str
) -> None:
    path = tmp_path / "connectors.toml"
    path.write_text("[connectors.a]\n" + table)
    with pytest.raises(ConnectorConfigError, match=names):
        load_config(path)
    path.write_text('[connectors.a]\nkind = "sink"\nclass = "m:C"\non_error = "dead-letter"\n')
    assert load_config(path)["a"].on_error == "dead-letter"


def test_the_default_policy_follows_whether_the_sink_keeps_state(
    tmp_path: Path, connector_service: CaseService
) -> None:
    specs = {
        name: ConnectorSpec(name, "sink", f"{HERE}:{cls}", base=tmp_path, on_error=on_error)
        for name, cls, on_error in [("kept", "RowSink", None), ("alone", "StatelessRowSink", None),
                                    ("told", "RowSink", "dead-letter")]
    }
    host = ConnectorHost(specs, connector_service, tmp_path / "connectors", files=private_files())
    policies = {name: host.on_error(host.sink(name, "run")) for name in specs}
    assert policies == {"kept": "stop", "alone": "dead-letter", "told": "dead-letter"}
    host.close()


# --- on_error on the broker ---------------------------------------------------------------


def test_a_sink_that_keeps_state_stops_at_the_failing_event_and_the_next_run_retries_it(
    tmp_path: Path, connector_service: CaseService, connector_bus: Container
) -> None:
    cases = published_cases(connector_service, connector_bus, 4)
    host = host_of(tmp_path, connector_service, connector_bus, "RowSink", {"fail": cases[1]})
    failed = host.run("probe", until_idle=True)
    assert (failed.outcome, failed.on_error, failed.rejected) == ("failed", "stop", 0)
    assert failed.failed_at is not None and "CaseOpened" in failed.failed_at
    assert f"case {cases[1]} cannot be written" in (failed.stopped_by or "")
    assert cases[1] not in rows(tmp_path)
    status = host.status_of("probe")
    assert (status.outcome, status.dead_letters) == ("failed", 0)  # nothing dead-lettered
    assert status.lag is not None and status.lag >= 1  # the event waits on its partition
    assert "failed (on_error = stop): ValueError" in status.errors[0]
    assert status.last_run is not None and " failed: " in status.last_run
    host.close()

    fixed = host_of(tmp_path, connector_service, connector_bus, "RowSink")
    again = fixed.run("probe", until_idle=True)
    assert again.outcome == "ok" and again.handled >= 1
    assert rows(tmp_path) == sorted(cases)  # each once, the failed one included
    status = fixed.status_of("probe")
    assert (status.outcome, status.lag, status.dead_letters) == ("ok", 0, 0)
    fixed.close()


def test_a_dead_letter_sink_ends_degraded_and_a_replay_after_the_fix_delivers_once(
    tmp_path: Path, connector_service: CaseService, connector_bus: Container
) -> None:
    cases = published_cases(connector_service, connector_bus, 3)
    broken = host_of(tmp_path, connector_service, connector_bus, "RowSink", {"fail": cases[0]},
                     on_error="dead-letter")
    run = broken.run("probe", until_idle=True)
    assert (run.outcome, run.ok, run.rejected) == ("degraded", False, 1)
    assert rows(tmp_path) == sorted(cases[1:])
    status = broken.status_of("probe")
    assert (status.outcome, status.dead_letters, status.lag) == ("degraded", 1, 0)
    assert status.last_run is not None and " degraded: " in status.last_run
    before_fix = broken.replay("probe")  # not fixed yet: fails again, stays for the next
    assert (before_fix.replayed, len(before_fix.failed), before_fix.pending) == (0, 1, 1)
    assert f"case {cases[0]} cannot be written" in before_fix.failed[0]
    broken.close()

    fixed = host_of(tmp_path, connector_service, connector_bus, "RowSink",
                    on_error="dead-letter")
    replay = fixed.replay("probe")
    assert (replay.replayed, replay.already, replay.failed, replay.pending) == (1, 0, [], 0)
    assert rows(tmp_path) == sorted(cases)
    again = fixed.replay("probe")  # replayed ones are not replayed twice
    assert (again.replayed, again.already, again.pending) == (0, 0, 0)
    # A crash between the effect's commit and the replay's record: the effect store knows the
    # event, so the dead letter is found applied already, not written twice.
    state = sqlite3.connect(tmp_path / "connectors" / "state.db")
    state.execute("DELETE FROM replays")
    state.commit()
    state.close()
    recovered = fixed.replay("probe")
    assert (recovered.replayed, recovered.already, recovered.pending) == (0, 1, 0)
    assert rows(tmp_path) == sorted(cases)
    status = fixed.status_of("probe")
    assert (status.outcome, status.dead_letters) == ("ok", 0)
    assert fixed.run("probe", until_idle=True).outcome == "ok"
    assert rows(tmp_path) == sorted(cases)
    fixed.close()


def test_a_rejected_event_degrades_the_run_until_a_replay_acknowledges_it(
    tmp_path: Path, connector_service: CaseService, connector_bus: Container
) -> None:
    """`Rejected` is dead-lettered even under "stop" and the run ends degraded (someone must
    look); a replay that meets the same rejection keeps the event out for good and counts it
    done, so the sink is ok again (it used to stay degraded, and replay exit 5, for ever)."""
    cases = published_cases(connector_service, connector_bus, 3)
    host = host_of(tmp_path, connector_service, connector_bus, "RejectingRowSink",
                   {"fail": cases[0]})
    run = host.run("probe", until_idle=True)
    assert (run.on_error, run.outcome, run.rejected) == ("stop", "degraded", 1)
    assert host.status_of("probe").dead_letters == 1
    replay = host.replay("probe")
    assert (replay.replayed, replay.failed, replay.pending, replay.ok) == (0, [], 0, True)
    assert "rejected again by the sink" in replay.unreplayable[0]
    status = host.status_of("probe")
    assert (status.outcome, status.dead_letters) == ("ok", 0)
    assert host.replay("probe").unreplayable == []  # done with: not looked at again
    assert rows(tmp_path) == sorted(cases[1:])
    host.close()


# --- reset ----------------------------------------------------------------------------------


def test_reset_earliest_handles_every_event_again_and_on_reset_avoids_duplicate_rows(
    tmp_path: Path, connector_service: CaseService, connector_bus: Container
) -> None:
    cases = published_cases(connector_service, connector_bus, 3)
    plain = host_of(tmp_path, connector_service, connector_bus, "StatelessRowSink", name="plain")
    assert plain.run("plain", until_idle=True).handled == 3
    reset = plain.reset("plain", "earliest")
    assert (reset.after, reset.forgot_processed, reset.idempotent) == ("", True, False)
    assert reset.before != ""
    assert plain.run("plain", until_idle=True).handled == 3
    assert rows(tmp_path, "plain") == sorted(cases * 2)  # what the warning says: twice
    plain.close()

    hooked = host_of(tmp_path, connector_service, connector_bus, "IdempotentRowSink",
                     name="hooked")
    hooked.run("hooked", until_idle=True)
    assert hooked.reset("hooked", "earliest").idempotent
    assert hooked.run("hooked", until_idle=True).handled == 3
    assert rows(tmp_path, "hooked") == sorted(cases)  # once each
    assert hooked.status_of("hooked").lag == 0
    hooked.close()


def test_reset_latest_skips_and_a_time_finds_its_offsets(
    tmp_path: Path, connector_service: CaseService, connector_bus: Container
) -> None:
    cases = published_cases(connector_service, connector_bus, 2)
    host = host_of(tmp_path, connector_service, connector_bus, "IdempotentRowSink")
    latest = host.reset("probe", "latest")  # never read: skip what is there
    assert latest.forgot_processed is False
    assert host.run("probe", until_idle=True).handled == 0
    assert rows(tmp_path) == []
    future = host.reset("probe", datetime.now(UTC) + timedelta(days=1))
    assert future.after == latest.after  # nothing was published after it: the end
    past = host.reset("probe", datetime(2000, 1, 1, tzinfo=UTC))
    assert past.forgot_processed and set(past.after.replace("=", " ").split()[1::2]) == {"0"}
    assert host.run("probe", until_idle=True).handled == 2
    assert rows(tmp_path) == sorted(cases)
    host.close()


# --- the CLI ----------------------------------------------------------------------------------


def _configure(folder: Path, options: str = "", on_error: str = "") -> None:
    (folder / "connectors.toml").write_text(
        f'[connectors.probe]\nkind = "sink"\nclass = "{HERE}:RowSink"\n{on_error}'
        f"[connectors.probe.options]\n{options}"
    )


def test_the_cli_exits_by_outcome_replays_and_resets_only_when_confirmed(
    tmp_path: Path, master_key: str, kafka_broker: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in {
        "NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'store.db'}",
        "NERVENBAHN_MASTER_KEY": master_key,
        "NERVENBAHN_KAFKA": kafka_broker,
        "NERVENBAHN_KAFKA_PROFILE": "embedded",
        "NERVENBAHN_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}",
        "NERVENBAHN_CONNECTORS": str(tmp_path / "connectors.toml"),
        "NERVENBAHN_LOG_FORMAT": "console",
    }.items():
        monkeypatch.setenv(key, value)
    service = build_service(load_settings())
    failing = str(service.execute(command("open_case", municipality_bfs=2581, household_size=1,
                                          applicant=person_input(300))).case_id)
    close_service(service)
    assert main(["relay", "run", "--until-caught-up"]) == 0
    _configure(tmp_path, f'fail = "{failing}"\n')
    assert main(["connectors", "run", "probe", "--until-idle"]) == EXIT_FAILED == 6
    assert f"case {failing} cannot be written" in capsys.readouterr().out
    _configure(tmp_path, f'fail = "{failing}"\n', 'on_error = "dead-letter"\n')
    assert main(["connectors", "run", "probe", "--until-idle"]) == EXIT_DEGRADED == 5
    assert "connectors replay probe" in capsys.readouterr().out
    assert main(["--json", "connectors", "status", "probe"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert (status["outcome"], status["dead_letters"]) == ("degraded", 1)

    _configure(tmp_path, on_error='on_error = "dead-letter"\n')  # the fix
    assert main(["connectors", "replay", "probe"]) == 0
    assert "1 replayed" in capsys.readouterr().out
    assert main(["--json", "connectors", "status", "probe"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["outcome"] == "ok"

    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    assert main(["connectors", "reset", "probe", "--to", "earliest"]) == EXIT_REFUSED
    refused = capsys.readouterr().err
    assert "may be written a second time" in refused and "probe not reset" in refused
    assert main(["--json", "connectors", "status", "probe"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["lag"] == 0  # nothing moved
    assert main(["--json", "connectors", "reset", "probe", "--to", "earliest", "--yes"]) == 0
    done = capsys.readouterr()
    assert json.loads(done.out)["after"] == "" and "does NOT define on_reset" in done.err
    assert main(["connectors", "reset", "probe", "--to", "yesterday", "--yes"]) == EXIT_REFUSED
    assert "--to: 'yesterday' is neither" in capsys.readouterr().err


def test_a_reset_date_without_a_zone_is_a_swiss_day_whatever_the_servers_zone() -> None:
    """`--to 2026-03-02` is midnight in Zurich (the domain's days), not the server's midnight
    (often UTC: an hour later in winter, and the events of that hour not handled again)."""
    from zoneinfo import ZoneInfo

    from connectors._recovery import reset_target

    swiss = ZoneInfo("Europe/Zurich")
    assert reset_target("2026-03-02") == datetime(2026, 3, 2, tzinfo=swiss)
    assert reset_target("2026-07-01T08:00") == datetime(2026, 7, 1, 8, tzinfo=swiss)
    assert reset_target("2026-03-02T00:00:00+00:00") == datetime(2026, 3, 2, tzinfo=UTC)
    assert reset_target("earliest") == "earliest"
