"""Relays across three `serve` instances on one store (issue 18, part 2): exactly one instance
holds each relay's lease and publishes, the others stand by; SIGKILL of the instance holding
the case-events lease in the middle of a batch hands the relay over within the bound the lease
gives, loses nothing and applies nothing twice.

The bound: the killed instance renewed its lease at most `RENEW_S` before it died, so the lease
runs out at the latest `LEASE_S` after the kill; a standby tries every min(renew, 1 s) and holds
it within `LEASE_S` + 1 s (`bus.relay`); its first batch is saved (published and acknowledged)
one batch later. The test states that as `LEASE_S + RENEW_S + 1 s` for publishing again.

Duplicates: the killed instance had sent part of a batch that it never saved as its position;
the new holder starts from the saved position, but reads the topic's tail first and sends none
of those messages again (`bus.relay`): the topic holds every recorded event exactly once.
"""

from __future__ import annotations

import time
from pathlib import Path
from uuid import UUID

import pytest

from bus.broker import EmbeddedBroker
from bus.envelope import event_id
from bus.topics import topic_message_counts
from domain.application.cases import CaseService
from nervenbahn.container import Container
from tests.bus.waiting import wait_until
from tests.chaos.harness import TopicContent, read_topic, recorded_ids, wait_for
from tests.scale.cluster import Cluster, Serve
from tests.scale.settling import (
    RELAYS,
    LeaseRow,
    leases,
    processed_per_group,
    relay_position,
)

# A fault scenario of about a minute: run by `make chaos`, not by `make test` (CI has 20
# minutes); the shapes' tests of tests/scale, which CI runs, kill an instance mid-batch too.
pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.chaos]

LEASE_S = 5.0
RENEW_S = 1.0
BATCH = 500
"""`serve`'s relay batch (`Container.relay`)."""
BACKLOG_CASES = 250
"""Recorded before the instances start (3 events each): the first holder publishes them in
batches of `BATCH`, so a kill while it is behind lands in a batch."""
LIVE_CASES = 40
"""Recorded by a second writer while the active instance is killed."""


def test_killing_the_active_relay_hands_over_within_the_lease_and_loses_nothing(
    tmp_path: Path, private_broker: EmbeddedBroker, postgres_server_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NERVENBAHN_RELAY_LEASE_SECONDS", str(LEASE_S))
    monkeypatch.setenv("NERVENBAHN_RELAY_RENEW_SECONDS", str(RENEW_S))
    made = Cluster(tmp_path, private_broker, postgres_server_url, "shared")
    figures: dict[str, object] = {}
    try:
        assert wait_for(made.nodes[0].write(0, BACKLOG_CASES), 120, "the backlog written") == 0
        with made.nodes[0].container() as container:
            service = container.service
            for serve in made.serves:
                serve.start()
            live = made.nodes[1].write(BACKLOG_CASES, LIVE_CASES)

            # The case-events relay is active somewhere and part of a batch it has not saved
            # yet is on the topic: it is in the middle of a batch.
            topic_name = container.topic("case-events").name

            def in_a_batch() -> LeaseRow | None:
                lease = leases(made).get("case-events")
                _, published = relay_position(made, "case-events")
                on_topic = topic_message_counts(container.kafka, [topic_name])[topic_name] or 0
                return lease if lease and lease.valid and on_topic > published else None

            held = wait_until(in_a_batch, within=90, what="the relay in the middle of a batch")
            victim = _pids(made)[held.pid]

            victim.kill()
            killed_at = time.monotonic()
            saved, _ = relay_position(made, "case-events")  # nobody moves it now
            unsaved = _ids_after(service, saved, BATCH)
            sent_unsaved = len(read_topic(container).delivered(set(unsaved)))
            dead = leases(made)["case-events"]
            if dead.holder == held.holder:  # read before the new holder published anything
                figures["unsaved batch: messages on the topic at the kill"] = sent_unsaved

            new = wait_until(lambda: _new_holder(made, held.holder), within=30,
                             what="another instance holding the case-events lease")
            lease_after = time.monotonic() - killed_at
            wait_until(lambda: relay_position(made, "case-events")[0] > saved, within=30,
                       what="the new holder publishing again")
            publishing_after = time.monotonic() - killed_at
            assert new.pid in _pids(made) and new.pid != held.pid
            assert new.token == held.token + 1
            assert new.acquired_at >= dead.expires_at  # not before the dead one's lease ran out

            assert wait_for(live, 120, "the live writer done") == 0
            for serve in made.running():
                serve.wait_ready(90)
            # Exactly one active instance per relay: each lease held by a running instance.
            wait_until(lambda: _all_held(made), within=30, what="every relay held")
            recorded = recorded_ids(service)
            topic = wait_until(lambda: _all_on_topic(container, recorded), within=90,
                               what="every recorded event on the topic")
            groups = wait_until(lambda: _all_processed(made, len(recorded)), within=90,
                                what="every event processed by each read model's group")
            differ = [check for check in made.check_read_models(made.nodes[0]) if not check.ok]
            duplicated = {i for i, n in topic.copies.items() if n > 1 and i in recorded}

        figures.update({
            "events recorded": len(recorded),
            "lease acquired by another instance after kill (s)": round(lease_after, 2),
            "publishing again after kill (s)": round(publishing_after, 2),
            "lost": len(recorded - topic.delivered(recorded)),
            "duplicates on topic": topic.duplicates(recorded),
            "duplicates within the killed instance's unsaved batch": len(duplicated & set(unsaved)),
            "processed_events per group (rows, distinct)": groups,
        })
        print(f"relay handover figures: {figures}")
        assert lease_after <= LEASE_S + 1.0 + 0.5
        assert publishing_after <= LEASE_S + RENEW_S + 1.0
        assert figures["lost"] == 0
        assert differ == []
        assert all(rows == distinct for rows, distinct in groups.values())
        # The killed instance left messages of its unsaved batch on the topic, and the new
        # holder sent none of them again: no duplicate from the one that took over.
        assert figures["unsaved batch: messages on the topic at the kill"] > 0
        assert duplicated == set() and figures["duplicates on topic"] == 0
    finally:
        made.stop()
        made.drop()


def _ids_after(service: CaseService, position: int, limit: int) -> list[UUID]:
    """The event ids of the `limit` notifications after `position`: the batch the relay was
    publishing when its position was `position`."""
    notifications = service.notifications(gt=position, limit=limit)
    return [event_id(n.originator_id, n.originator_version) for n in notifications]


def _pids(made: Cluster) -> dict[int, Serve]:
    return {s.process.pid: s for s in made.running() if s.process is not None}


def _all_held(made: Cluster) -> dict[str, LeaseRow] | None:
    """Every relay's lease, if each is held (unexpired) by a running instance."""
    held, pids = leases(made), _pids(made)
    every = set(held) == set(RELAYS) and all(r.valid and r.pid in pids for r in held.values())
    return held if every else None


def _new_holder(made: Cluster, old: str) -> LeaseRow | None:
    lease = leases(made).get("case-events")
    return lease if lease and lease.valid and lease.holder != old else None


def _all_on_topic(container: Container, recorded: set[UUID]) -> TopicContent | None:
    topic = read_topic(container)
    return topic if topic.delivered(recorded) == recorded else None


def _all_processed(made: Cluster, events: int) -> dict[str, tuple[int, int]] | None:
    groups = processed_per_group(made)
    return groups if groups and all(n >= events for n, _ in groups.values()) else None
