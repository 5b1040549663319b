"""The reference fund application (examples/fund_application.py) as the bus tests run it: as
a module (its simulation, to compute what it must decide) and as the outside program it is
(a subprocess against `serve`), and the dead letters a connector wrote, read back."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from bus.kafka_settings import KafkaSettings
from tests.bus.waiting import wait_until

__all__ = [
    "EXAMPLE",
    "PAYMENTS",
    "dead_letters",
    "fund_example",
    "fund_payments_example",
    "read_topic",
    "run_fund",
    "run_fund_until_caught_up_then_terminate",
    "run_fund_until_it_paid_then_kill",
]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fund_application.py"
PAYMENTS = EXAMPLE.with_name("fund_payments.py")


def fund_example() -> ModuleType:
    """The example as a module (its simulation, to compute what it must decide); its
    payments module first, which it imports as its neighbour (`fund_payments`)."""
    fund_payments_example()
    return _load("fund_application", EXAMPLE)


def fund_payments_example() -> ModuleType:
    """The example's payments (`examples/fund_payments.py`) as a module."""
    return _load("fund_payments", PAYMENTS)


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses (and the example) look their module up
    spec.loader.exec_module(module)
    return module


def _command(url: str, key: str, *options: str) -> list[str]:
    return [sys.executable, str(EXAMPLE), "--asyncapi", f"{url}/asyncapi.json", "--user",
            "vendor-app", "--key", key, "--group", "akso-fund", "--session-timeout-ms", "6000",
            *options]


def run_fund(url: str, key: str, *options: str) -> list[dict[str, Any]]:
    """One run of the fund application against `serve` at `url` (as the bus_reader
    vendor-app with `key`, and `options`) to its end (six seconds without a new message): its
    JSON lines."""
    done = subprocess.run(_command(url, key, "--idle-seconds", "6", *options),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def run_fund_until_caught_up_then_terminate(
    url: str, key: str, applications: int, decided: int
) -> list[dict[str, Any]]:
    """A run without an end, stopped by SIGTERM once it has read every application, decided."""
    process = subprocess.Popen(_command(url, key), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    lines: list[dict[str, Any]] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break  # it ended on its own: the assertions below say why
            lines.append(json.loads(line))
            if lines[-1].get("caught_up") == applications and lines[-1]["decided"] == decided:
                process.send_signal(signal.SIGTERM)
                break
        rest, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, errors[-2000:]
    return lines + [json.loads(line) for line in rest.splitlines()]


def run_fund_until_it_paid_then_kill(url: str, key: str, *options: str) -> list[dict[str, Any]]:
    """A run without an end, killed (SIGKILL: no clean-up, no flush) as soon as it says it
    wrote its first payment file; its JSON lines up to that one."""
    process = subprocess.Popen(_command(url, key, *options), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    lines: list[dict[str, Any]] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("claim_paid" in x for x in lines):
            line = process.stdout.readline()
            if not line:
                break  # it ended on its own: the assertion below says why
            lines.append(json.loads(line))
        process.kill()
        _, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert any("claim_paid" in x for x in lines), errors[-2000:]
    assert process.returncode == -signal.SIGKILL
    return lines


def dead_letters(kafka: KafkaSettings, topic: str, expected: int) -> list[dict[str, str]]:
    """The headers of the first `expected` dead letters on `topic` (waits for them)."""
    found: list[dict[str, str]] = []
    read_topic(kafka, topic, lambda record: found.append(
        {k: v.decode() for k, v in record.headers or []}), until=lambda: len(found) >= expected)
    return found


def read_topic(kafka: KafkaSettings, topic: str, keep: Any, until: Any) -> None:
    """Read `topic` from its beginning, handing each record to `keep`, until `until()` holds
    (None: until the end offsets seen at the start)."""
    reader = KafkaConsumer(**kafka.consumer_kwargs(None, "benefits-test"))
    try:
        wait_until(lambda: bool(reader.partitions_for_topic(topic)), what=f"{topic} to exist")
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic)]
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)

        def step() -> None:
            for records in reader.poll(300).values():
                for record in records:
                    keep(record)

        if until is None:
            ends = reader.end_offsets(partitions)
            until = lambda: all(reader.position(tp) >= ends[tp] for tp in partitions)  # noqa: E731
        wait_until(until, step=step, within=60, what=f"the messages of {topic}")
    finally:
        reader.close()
