"""The README's subscription example runs as printed, against the real broker."""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

import pytest

from bus.kafka_settings import KafkaSettings
from tests.bus.pipeline import open_supported_case, pipeline
from tests.bus.waiting import wait_until

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    section = README.read_text().split("## Subscribing an application", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README lost its subscription example"
    return match.group(1)


def test_the_readme_subscription_example_takes_effect(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        case_id = open_supported_case(line.service)
        owed = line.service.get_case(case_id).budgets[-1].total
        with line.container.relay("case-events") as relay:
            relay.run(threading.Event(), until_caught_up=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("NERVENBAHN_MASTER_KEY", master_key)
    monkeypatch.setenv("NERVENBAHN_KAFKA", ",".join(kafka_settings.bootstrap_servers))
    monkeypatch.setenv("NERVENBAHN_KAFKA_PROFILE", kafka_settings.profile)
    monkeypatch.setenv("NERVENBAHN_TOPIC_PREFIX", kafka_settings.topic_prefix)
    namespace: dict[str, object] = {"__name__": "readme_example"}
    failures: list[BaseException] = []

    def run() -> None:
        try:
            exec(compile(readme_example(), "README.md", "exec"), namespace)
        except BaseException as exc:
            failures.append(exc)

    runner = threading.Thread(target=run, name="readme-example")
    runner.start()

    def monthly() -> list[tuple[str, str]]:
        if not (tmp_path / "payments.db").exists():
            return []
        with sqlite3.connect(tmp_path / "payments.db") as db:
            try:
                return db.execute("SELECT case_id, chf FROM monthly").fetchall()
            except sqlite3.OperationalError:
                return []

    try:
        rows = wait_until(lambda: monthly() or failures, within=60, what="the example's effect")
    finally:
        wait_until(lambda: "stop" in namespace or failures, within=30)
        if "stop" in namespace:
            namespace["stop"].set()  # type: ignore[attr-defined]
        runner.join(timeout=30)
    assert not failures, failures
    assert rows == [(str(case_id), str(owed))]
