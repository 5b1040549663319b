"""`nervenbahn broker` and `nervenbahn topics create|list`, on an app wired as the root CLI wires
them (the same root options and Session)."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer
from kafka import KafkaProducer
from typer.testing import CliRunner

from bus.broker import free_port, metadata_answered
from bus.kafka_settings import KafkaSettings
from bus.topics import (
    catalogue,
    ensure_topics,
    installation_topics,
    list_topics,
    topic_message_counts,
)
from nervenbahn.cli import main
from nervenbahn.cli.bus import broker, topics_app
from nervenbahn.cli.session import Session

app = typer.Typer(pretty_exceptions_enable=False)
app.command("broker")(broker)
app.add_typer(topics_app, name="topics")


@app.callback()
def _root(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    ctx.obj = Session(as_json=as_json)


RUN_APP = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parents[2])!r})
from tests.bus.test_bus_cli import app
app(prog_name="nervenbahn")
"""


def _first_line(process: subprocess.Popen[str], within: float) -> str:
    """The first line the process prints, waited for with a deadline."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], within)
    if not ready:
        raise AssertionError(f"no output within {within} s")
    return process.stdout.readline().strip()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_broker_runs_until_interrupted_then_stops_cleanly(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_APP, "broker", "--log-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = _first_line(process, within=30)
        assert line.startswith("NERVENBAHN_KAFKA=127.0.0.1:")
        port = int(line.rpartition(":")[2])
        assert metadata_answered("127.0.0.1", port)

        process.send_signal(stop_signal)
        _, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)

    assert process.returncode == 0, err
    assert "embedded broker stopped" in err
    assert not metadata_answered("127.0.0.1", port, timeout=0.5)
    assert list(tmp_path.glob("tansu-*.log"))


def test_broker_on_a_taken_port_fails_with_exit_3(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["broker", "--port", str(port), "--log-dir",
                                          str(tmp_path)])

    assert result.exit_code == 3
    assert "is taken by another process" in result.output


def _env(settings: KafkaSettings) -> dict[str, str | None]:
    return {
        "NERVENBAHN_KAFKA": ",".join(settings.bootstrap_servers),
        "NERVENBAHN_TOPIC_PREFIX": settings.topic_prefix,
        "NERVENBAHN_KAFKA_PROFILE": "embedded",
        "NERVENBAHN_KAFKA_PARTITIONS": None,
    }


def test_topics_create_creates_every_topic_of_the_installation_then_finds_it(
    kafka_settings: KafkaSettings,
) -> None:
    runner = CliRunner()
    prefix = kafka_settings.topic_prefix
    every = [f"{prefix}.casework.case-events.v1", f"{prefix}.reporting.case-facts.v1",
             f"{prefix}.audit.checkpoints.v1", f"{prefix}.payments.payment-orders.v1",
             f"{prefix}.benefits.applications.v1", f"{prefix}.benefits.decisions.v1",
             f"{prefix}.benefits.claims.v1",
             f"{prefix}.dlq.reporting.v1"]

    first = runner.invoke(app, ["topics", "create", "--partitions", "2",
                                "--dead-letter-group", "reporting"], env=_env(kafka_settings))
    again = runner.invoke(app, ["--json", "topics", "create", "--dead-letter-group",
                                "reporting"], env=_env(kafka_settings))

    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == [f"created {name}" for name in every]
    assert again.exit_code == 0, again.output
    # --partitions 2 made them; NERVENBAHN_KAFKA_PARTITIONS (4) now asks for more: said, not done
    differ = {spec.name: {"partitions": 2, "asked": 4}
              for spec in installation_topics(kafka_settings, ["reporting"])
              if spec.partitions == 4}
    assert json.loads(again.output) == {"created": [], "existing": every,
                                        "partitions_differ": differ}
    assert f"{prefix}.casework.case-events.v1" in differ
    assert set(list_topics(kafka_settings)) == set(every)


def test_topics_create_warns_that_an_existing_topic_keeps_its_partition_count(
    kafka_settings: KafkaSettings,
) -> None:
    (spec,) = catalogue(kafka_settings)
    ensure_topics(kafka_settings, [spec])  # with the fixture's count (4)

    result = CliRunner().invoke(app, ["topics", "create", "--partitions", "8"],
                                env=_env(kafka_settings))

    assert result.exit_code == 0, result.output
    assert f"exists  {spec.name}" in result.stdout
    assert (f"warning: {spec.name} has 4 partitions, not 8: the count of an existing topic is "
            "left as it is") in result.stderr
    assert list_topics(kafka_settings)[spec.name] == 4


def test_topics_list_shows_partitions_and_messages(kafka_settings: KafkaSettings) -> None:
    (spec,) = catalogue(kafka_settings)
    ensure_topics(kafka_settings, [spec])
    producer = KafkaProducer(**kafka_settings.producer_kwargs("cli"))
    for n in range(5):
        producer.send(spec.name, key=str(n).encode(), value=b"x")
    producer.close(timeout=30)
    assert topic_message_counts(kafka_settings, [spec.name]) == {spec.name: 5}

    plain = CliRunner().invoke(app, ["topics", "list"], env=_env(kafka_settings))
    as_json = CliRunner().invoke(app, ["--json", "topics", "list"], env=_env(kafka_settings))

    assert plain.exit_code == 0, plain.output
    assert f"{spec.name}  4 partitions  5 messages" in plain.output
    assert {"name": spec.name, "partitions": 4, "messages": 5} in json.loads(as_json.output)


def test_topics_list_marks_catalogue_topics_not_yet_created(
    kafka_settings: KafkaSettings,
) -> None:
    result = CliRunner().invoke(app, ["--json", "topics", "list"], env=_env(kafka_settings))

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {"name": spec.name, "partitions": None, "messages": None}
        for spec in sorted(installation_topics(kafka_settings), key=lambda spec: spec.name)
    ]


@pytest.mark.parametrize("command", [["topics", "create"], ["topics", "list"]])
def test_topics_without_a_broker_configured_exit_3(command: list[str]) -> None:
    result = CliRunner().invoke(app, command, env={"NERVENBAHN_KAFKA": None})

    assert result.exit_code == 3
    assert "NERVENBAHN_KAFKA is not set" in result.output
    assert "nervenbahn broker" in result.output


def test_topics_on_an_unreachable_broker_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = KafkaSettings(bootstrap_servers=[f"127.0.0.1:{free_port()}"], profile="embedded",
                            bootstrap_timeout_ms=300)
    monkeypatch.setattr("nervenbahn.cli.bus.load_kafka_settings", lambda: nowhere)

    result = CliRunner().invoke(app, ["topics", "list"])

    assert result.exit_code == 3
    assert "error: list topics: the Kafka broker did not answer in time" in result.output


def test_relay_run_with_no_broker_reachable_is_one_line_and_exit_3(
    tmp_path: Path, master_key: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("NERVENBAHN_MASTER_KEY", master_key)
    monkeypatch.setenv("NERVENBAHN_KAFKA", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("NERVENBAHN_KAFKA_PROFILE", "embedded")
    monkeypatch.setenv("NERVENBAHN_LOG_FORMAT", "json")

    code = main(["relay", "run", "--until-caught-up"])

    err = capsys.readouterr().err
    assert code == 3
    message = [line for line in err.splitlines() if line.startswith("error:")]
    assert message == [message[0]] and "the Kafka broker did not answer in time" in message[0]
    assert "Traceback" not in err and "unexpected" not in err
