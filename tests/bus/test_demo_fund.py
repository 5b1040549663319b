"""The fund step of `nervenbahn demo`: the reference fund application, run against the demo's
`serve`, decides the forwarded applications not yet decided, and the demo says what went out
and came back."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from bus.kafka_settings import KafkaSettings
from bus.topics import ensure_topics, installation_topics
from nervenbahn.demo_fund import decide_through_the_fund
from nervenbahn.demo_session import DemoSession
from tests.bus.pipeline import pipeline
from tests.bus.test_fund_application import _forwarded, _received
from tests.bus.test_registry_served import serving_bus_readers


def test_the_demo_has_the_forwarded_applications_decided_over_the_bus(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        benefits = line.container.benefits
        forwarded = [_forwarded(benefits, n, kind, complete=True)
                     for n, kind in ((1, "el_ahv"), (2, "ipv"))]
        _received(benefits, 3, "el_iv")
        ensure_topics(line.container.kafka, installation_topics(line.container.kafka))
        with serving_bus_readers(line, tmp_path) as (server, key):
            started = time.perf_counter()
            said = decide_through_the_fund(DemoSession(line.container, Console()),
                                           server.url, key, user="vendor-app")
            seconds = time.perf_counter() - started
        stages = [benefits.application(app).stage for app in forwarded]

    assert all(stage in ("granted", "refused") for stage in stages)
    assert "SIMULATION" in said and "read 3 applications" in said
    assert "2 forwarded awaited a decision" in said and "2 of them recorded back" in said
    assert seconds < 60
