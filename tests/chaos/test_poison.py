"""Poison of every kind on the case topic while `serve` runs: every read model stays equal to a
rebuild from the store, GET /health/ready stays 200, and each projection's dead-letter topic
holds the poison (issue 12, "Done when": a garbage message and a genuine message with a forged
`event_id` leave every read model correct and /health/ready at 200)."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from bus.topics import dead_letter_topic
from tests.chaos.harness import Figures, Installation, settle, wait_for
from tests.projections.test_poison import producer, read_all


def poison(genuine: list[Any]) -> list[tuple[str, bytes, bytes, list[Any]]]:
    """(kind, key, value, headers) of each kind of poison, made from genuine messages of two
    different cases; the last one (a wrong key) carries a genuine event as it was."""
    first = genuine[0]
    other = next(m for m in genuine if m.key != first.key)
    headers = [(k, v) for k, v in first.headers if k != "event_id"]
    payload = first.value[5:]
    other_id = dict(other.headers)["event_id"]
    return [
        ("garbage bytes", first.key, b"this is no message at all", headers),
        ("wrong magic byte", first.key, b"\x07" + first.value[1:], first.headers),
        ("unknown schema id", first.key, b"\x00" + struct.pack(">I", 999_999) + payload,
         first.headers),
        ("truncated Avro", first.key, first.value[: len(first.value) // 2], first.headers),
        ("forged event_id", first.key, first.value, [*headers, ("event_id", other_id)]),
        ("re-sent with a new event_id", first.key, first.value,
         [*headers, ("event_id", str(uuid.uuid4()).encode())]),
        ("wrong key", other.key, first.value, first.headers),
    ]


@pytest.mark.parametrize(
    "cases", [pytest.param(4, id="short"), pytest.param(40, marks=pytest.mark.chaos, id="full")]
)
def test_poison_of_every_kind_leaves_read_models_correct_and_serve_ready(
    installation: Installation, figures: Callable[[Figures], Figures], cases: int
) -> None:
    server = installation.serve()
    server.start()
    ready_after = server.wait_ready()
    try:
        assert wait_for(installation.write(0, cases), 120, "the first writes") == 0
        settle(installation, "before the poison")
        with installation.container() as container:
            kafka = container.kafka
            topic = container.topic("case-events").name
            genuine = read_all(kafka, topic, 3 * cases)
            planted = poison(genuine)
            with producer(kafka) as send:
                for _, key, value, headers in planted:
                    send(topic, key, value, headers)
            groups = [container.projection(name).group for name in ("region", "branch_office")]
        assert wait_for(installation.write(cases, cases), 120, "the writes after") == 0

        ids = {dict(m.headers)["event_id"] for m in genuine}
        row = settle(installation, f"poison x{len(planted)} kinds ({2 * cases} cases)",
                     planted_copies=sum(dict(h).get("event_id") in ids for *_, h in planted))
        assert server.ready(), "GET /health/ready is not 200 after the poison"
        dead = {group: read_all(kafka, dead_letter_topic(kafka, group), len(planted) - 1)
                for group in groups}
    finally:
        server.stop()
    row.ready_after_s = ready_after
    row.passed = row.lost == 0 and row.duplicated == 0 and row.read_models_equal
    figures(row)
    assert row.passed, row
    for group, messages in dead.items():
        reasons = {dict(m.headers)["dlq_reason"] for m in messages}
        assert reasons >= {b"undecodable", b"mismatched-event-id"}, (group, reasons)
