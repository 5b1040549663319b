"""The fund step of `nervenbahn demo`: the reference fund application, run against the demo's
`serve`, decides the forwarded applications not yet decided, and the demo says what went out
and came back."""

from __future__ import annotations

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
                     for n, kind in ((1, "el_ahv"), (2, "ipv"), (4, "el_ahv"))]
        _received(benefits, 3, "el_iv")
        ensure_topics(line.container.kafka, installation_topics(line.container.kafka))
        with serving_bus_readers(line, tmp_path) as (server, key):
            said = decide_through_the_fund(DemoSession(line.container, Console()),
                                           server.url, key, user="vendor-app", capacity=2)
        applications = sorted((benefits.application(app) for app in forwarded),
                              key=lambda a: (a.received_on, str(a.id)))

    first, second, last = (app.stage for app in applications)
    assert first in ("granted", "refused") and second in ("granted", "refused")
    assert last == "forwarded"  # beyond the day's capacity: still waiting at the fund
    assert "SIMULATION" in said and "read 4 applications" in said
    assert "3 forwarded awaited a decision" in said and "capacity of 2" in said
    assert "2 of them recorded back" in said and "1 still wait" in said
