"""Which shapes of several `serve` on one store are refused (`nervenbahn.instances`): a consumer
group shared by read models that are not the same (each would hold half of the cases), and one
read model fed by two groups (each event applied twice). The right shapes pass; the group names
follow from where the read models lie and the instance's name."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bus.broker import free_port
from bus.kafka_settings import KafkaSettings
from bus.positions import InstanceRecord
from nervenbahn.config import ConfigError, load_settings
from nervenbahn.container import Container
from nervenbahn.instances import (
    InstanceConflictError,
    conflicts,
    group_suffix,
    read_model_location,
)
from nervenbahn.serve import Server

PG = "postgresql://nb@db.example:5432/social?schema=read_models"


def _record(name: str, models: str, suffix: str) -> InstanceRecord:
    return InstanceRecord(holder=f"h:{name}", instance=name, host=f"host-{name}", pid=7,
                          read_models=models, group_suffix=suffix)


def test_shared_read_models_in_one_group_and_local_ones_in_groups_of_their_own_pass() -> None:
    shared = [_record(n, "postgresql://local:5432/social?schema=rm", "") for n in "abc"]
    local = [_record(n, f"sqlite://host-{n}/srv/projections", f".{n}") for n in "abc"]
    assert conflicts(shared[0], shared[1:]) == []
    assert conflicts(local[0], local[1:]) == []
    assert conflicts(local[0], shared) == []  # an instance of its own beside a shared group


def test_local_read_models_in_a_shared_group_are_refused_naming_the_other_and_the_remedy() -> None:
    first = replace(_record("", "sqlite://host-a/srv/projections", ""), host="host-a")
    second = replace(first, holder="h:2", host="host-b",
                     read_models="sqlite://host-b/srv/projections")
    [why] = conflicts(second, [first])
    assert "instance (unnamed) (host host-a, process 7)" in why  # the other one, named
    assert "sqlite://host-b/srv/projections" in why and "half of the cases" in why
    assert "NERVENBAHN_INSTANCE" in why and "NERVENBAHN_PROJECTIONS_STORE" in why
    # a local instance in the group of shared read models is the same mistake
    shared = _record("web-1", "postgresql://local:5432/social?schema=rm", "")
    assert len(conflicts(first, [shared])) == 1


def test_one_read_model_fed_by_two_groups_is_refused() -> None:
    first = _record("a", "sqlite://host-a/srv/projections", ".a")
    second = _record("b", "sqlite://host-a/srv/projections", ".b")
    [why] = conflicts(second, [first])
    assert "applied twice" in why and "projection-<read model>.a" in why


def test_the_group_suffix_follows_the_read_models_and_the_name(tmp_path: Path) -> None:
    unnamed = load_settings({"NERVENBAHN_STORE": f"sqlite:///{tmp_path}/store.db"})
    named = load_settings({"NERVENBAHN_STORE": f"sqlite:///{tmp_path}/store.db",
                           "NERVENBAHN_INSTANCE": "web-2"})
    shared = load_settings({"NERVENBAHN_STORE": f"sqlite:///{tmp_path}/store.db",
                            "NERVENBAHN_INSTANCE": "web-2", "NERVENBAHN_PROJECTIONS_STORE": PG})
    assert (group_suffix(unnamed), group_suffix(named), group_suffix(shared)) == ("", ".web-2", "")
    assert read_model_location(named).endswith(f"{tmp_path.resolve()}/projections")
    assert read_model_location(shared) == (
        "postgresql://db.example:5432/social?schema=read_models")


@pytest.mark.parametrize("name", ["Web1", "web_1", "-web", "w" * 33, "web 1"])
def test_an_instance_name_kafka_or_prometheus_would_refuse_is_refused_naming_the_variable(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(ConfigError, match=r"NERVENBAHN_INSTANCE: .* lowercase letters"):
        load_settings({"NERVENBAHN_STORE": f"sqlite:///{tmp_path}/store.db",
                       "NERVENBAHN_INSTANCE": name})


def test_serve_on_a_sqlite_store_refuses_to_feed_an_announced_instance_s_read_models_again(
    tmp_path: Path,
) -> None:
    """On a SQLite store as on PostgreSQL: a second `serve` in the running one's folder under
    another name is refused before anything starts, and the running one stays announced."""
    store = {"NERVENBAHN_STORE": f"sqlite:///{tmp_path}/store.db"}
    kafka = KafkaSettings(bootstrap_servers=("127.0.0.1:9",))  # names only: nothing connects
    running = Container(load_settings({**store, "NERVENBAHN_INSTANCE": "node-1"}), kafka=kafka)
    announced = running.membership()
    announced.join()  # what the running serve's start did
    second = Container(load_settings({**store, "NERVENBAHN_INSTANCE": "node-2"}), kafka=kafka)
    server = Server(second, app=None, port=free_port())
    try:
        with pytest.raises(InstanceConflictError, match=r"applied twice") as refused:
            server.start()
        assert "instance node-1" in str(refused.value)
        assert server.workers_alive() == {}  # nothing started
        assert [i.instance for i in running.live_instances()] == ["node-1"]  # the second withdrew
    finally:
        server.stop()
        announced.leave()
        running.close()
        second.close()
    assert running.live_instances() == []
