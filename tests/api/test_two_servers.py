"""Two `serve` processes on one store (a "Done when" of issue 12): the relays of the first hold
their leases, the second's wait as hot standbys and publish nothing — every event reaches the
case-events topic once, in one epoch — its `/health/ready` stays 200, both answer from read
models equal to the store's truth, no consumer rewinds; when the first stops, the second takes
over and publishes what was recorded meanwhile, still once each.

Before the lease, two `serve` on one store published 46–76 % duplicates and stamped two
epochs into every partition, and a live consumer then rewound for ever."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bus.broker import EmbeddedBroker, free_port
from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, ensure_topics
from nervenbahn.api import build_api_context, create_app
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.api.settings import ApiSettings
from nervenbahn.container import Container, build_service, close_service
from nervenbahn.serve import Server
from tests.api.http import get_json
from tests.bus.pipeline import Pipeline, open_supported_case, pipeline, topic_contents
from tests.bus.waiting import wait_until

LEASE = {"NERVENBAHN_RELAY_LEASE_SECONDS": "3", "NERVENBAHN_RELAY_RENEW_SECONDS": "1"}
RELAYS = {"case-events", "case-facts"}


@contextmanager
def _server(line: Pipeline, api: ApiSettings, own_process: bool) -> Iterator[Server]:
    """`serve` on the pipeline's store: with a service and container of its own (as a
    second process has), or the pipeline's. Payments relay left out (no payment runs)."""
    with ExitStack() as stack:
        service, container = line.service, line.container
        if own_process:
            service = build_service(line.settings)
            stack.callback(close_service, service)
            container = Container(line.settings, kafka=line.container.kafka, service=service)
            stack.callback(container.close)
        context = build_api_context(line.settings, service, api)
        stack.callback(context.close)
        server = Server(container, create_app(context), port=free_port(), payments=False)
        server.start()
        stack.callback(server.stop)
        assert server.wait_until_serving()
        yield server


def _one_active(first: Server, second: Server, relay: str) -> bool:
    roles = {first.relay_roles().get(relay), second.relay_roles().get(relay)}
    return roles == {"active", "standby"}


def _roles(server: Server) -> set[str]:
    return {server.relay_roles().get(name, "missing") for name in RELAYS}


def _supported(server: Server, key: str) -> int:
    status, body = get_json(f"{server.url}/v1/regions/so-olten/caseload", key)
    return int(body["by_phase"].get("supported", 0)) if status == 200 else -1


def test_two_servers_on_one_store_publish_each_event_once_and_never_rewind_for_ever(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings,
    private_broker: EmbeddedBroker,
) -> None:
    # A broker of its own: two members leaving the projections' groups (named as `serve`
    # names them, the same in every test) would stall those groups for the next test.
    kafka_settings = kafka_settings.with_bootstrap(private_broker.bootstrap)
    with pipeline(tmp_path, master_key, kafka_settings, LEASE) as line:
        topic = line.container.topic("case-events").name
        for n in range(2):
            open_supported_case(line.service, n)
        ensure_topics(kafka_settings, catalogue(kafka_settings, reporting=True))
        api = ApiSettings(api_keys=tmp_path / "keys.json", access_log=tmp_path / "access.db")
        key = ApiKeyRegistry(api.api_keys).add("region", Scope("region", "so-olten"),
                                               now=datetime.now(UTC))
        # Both start fresh (no relay has ever run on the store), one right after the other.
        with _server(line, api, own_process=False) as first, \
                _server(line, api, own_process=True) as second:
            wait_until(lambda: all(_one_active(first, second, name) for name in RELAYS),
                       within=30, what="one active instance of each relay")
            for n in range(2, 5):  # recorded while both serve
                open_supported_case(line.service, n)
            for server in (first, second):
                wait_until(lambda s=server: _supported(s, key) == 5, within=90,
                           what="both answering from the read model")
            for server in (first, second):  # a standby is healthy (once its consumers joined)
                wait_until(lambda s=server: get_json(f"{s.url}/health/ready")[0] == 200,
                           within=60, what="ready")
            assert all(_one_active(first, second, name) for name in RELAYS)
            ids, epochs = topic_contents(kafka_settings, topic)
            assert len(ids) == 15 and set(ids.values()) == {1} and len(epochs) == 1

            first.stop()  # the first goes away: the second takes over
            wait_until(lambda: _roles(second) == {"active"}, within=30,
                       what="the second taking over")
            for n in range(5, 7):
                open_supported_case(line.service, n)
            wait_until(lambda: _supported(second, key) == 7, within=90,
                       what="the second publishing and applying what came since")
            wait_until(lambda: get_json(f"{second.url}/health/ready")[0] == 200, within=60,
                       what="the second ready alone")
            counted = [first.consumer_rewinds(), second.consumer_rewinds()]

        ids, more_epochs = topic_contents(kafka_settings, topic)
        assert len(ids) == 21 and set(ids.values()) == {1}  # no duplicate from the second
        assert more_epochs == epochs
        facts, _ = topic_contents(kafka_settings, line.container.topic("case-facts").name)
        assert facts and set(facts.values()) == {1}  # the reporting relay: no duplicate either
        for rewinds in counted:  # every projection's consumer, in both: never rewound
            assert rewinds == {"region": 0, "branch_office": 0, "reporting": 0}, counted
