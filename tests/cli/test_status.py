"""`nervenbahn status`: relays and read models for an operator, without a running `serve`: with
no broker configured (lags of the groups unknown, said so), and with the broker reachable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bus.kafka_settings import KafkaSettings
from bus.positions import InstanceRecord
from bus.positions_sqlite import SQLitePositionStore
from tests.cli.conftest import Cli
from tests.cli.test_cli import CASE, open_assess_grant


def _by(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in rows}


def test_status_without_a_broker_shows_the_relays_lag_and_says_the_groups_are_unknown(
    cli: Cli,
) -> None:
    assert cli("init").code == 0
    open_assess_grant(cli)
    assert cli("projections", "rebuild", "region").code == 0

    shown = cli("status", "--json")

    assert shown.code == 0, shown.err
    status: Any = shown.json()
    relays = _by(status["relays"], "dataset")
    assert relays["case-events"]["position"] == 0
    assert relays["case-events"]["lag"] == relays["case-events"]["head"] == 3
    models = _by(status["read_models"], "read_model")
    assert models["region"]["built"] is True and models["branch_office"]["built"] is False
    assert models["region"]["lag"] is None and models["region"]["dead_letters"] is None
    assert models["region"]["broker"].startswith("no broker: NERVENBAHN_KAFKA")
    as_of = datetime.fromisoformat(models["region"]["as_of"])
    assert datetime.now(UTC).timestamp() - as_of.timestamp() < 300
    assert models["branch_office"]["as_of"] is None
    assert CASE not in shown.out
    assert status["instances"] == []

    table = cli("status")
    assert table.code == 0
    assert "consumer lag and dead letters unknown: no broker" in table.out
    assert "instances: none running" in table.out


def test_status_lists_the_serve_instances_announced_live_on_the_store(
    cli: Cli, tmp_path: Path
) -> None:
    assert cli("init").code == 0
    positions = SQLitePositionStore(tmp_path / "store.db")
    for name in ("node-1", "node-2"):
        positions.announce(InstanceRecord(f"vm:1:{name}", name, "vm", 1, "sqlite://vm/x",
                                          f".{name}"), 30)
    positions.announce(InstanceRecord("vm:1:gone", "gone", "vm", 1, "sqlite://vm/y", ".gone"), 0)
    positions.close()

    shown = cli("status", "--json")

    assert shown.code == 0, shown.err
    instances: Any = shown.json()["instances"]
    assert [i["instance"] for i in instances] == ["node-1", "node-2"]  # not the one run out
    assert instances[0]["groups"] == "projection-<read model>.node-1"
    assert "node-2" in cli("status").out


def test_status_with_the_broker_counts_what_the_group_has_not_consumed(
    cli: Cli, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NERVENBAHN_KAFKA", ",".join(kafka_settings.bootstrap_servers))
    monkeypatch.setenv("NERVENBAHN_TOPIC_PREFIX", kafka_settings.topic_prefix)
    assert cli("init").code == 0
    open_assess_grant(cli)
    assert cli("relay", "run", "--until-caught-up").code == 0
    assert cli("projections", "rebuild", "region").code == 0  # read by rebuild, not by the bus

    shown = cli("status", "--json")

    assert shown.code == 0, shown.err
    status: Any = shown.json()
    assert _by(status["relays"], "dataset")["case-events"]["lag"] == 0
    region = _by(status["read_models"], "read_model")["region"]
    assert region["broker"] == "ok"
    assert region["lag"] == 3 and region["dead_letters"] == 0
    assert region["group"] == "projection-region"
