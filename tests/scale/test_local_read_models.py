"""Three `serve` with read models of their own (SQLite in each instance's folder, each named
and in consumer groups of its own, so each reads every partition). Two run while cases are
recorded; the third joins late and reports not ready ("read-models" catching up) until it
holds what the others hold, then answers as they do. One is then SIGKILLed while two writers
record cases and its read models hold some but not all of them, and started again: once
settled every instance's read models equal a rebuild from the store, nothing lost, nothing
applied twice, every instance answers alike (issue 18, "Done when")."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bus.broker import EmbeddedBroker
from domain.commands import swiss_today
from tests.bus.waiting import wait_until
from tests.chaos.harness import READY_WITHIN_S, wait_for
from tests.scale.cluster import Cluster, Figures, cluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BEFORE = 40
"""Cases recorded before the third instance joins (three events each)."""
DURING = 30
"""Cases per writer while an instance is killed."""


def join_late(made: Cluster, index: int) -> list[tuple[int | None, tuple[str, ...]]]:
    """Start instance `index` and watch its GET /health/ready until 200: every answer
    (status, failing checks) in order, repeats folded."""
    late = made.serves[index]
    late.start()
    seen: list[tuple[int | None, tuple[str, ...]]] = []

    def ready() -> bool:
        assert late.process is not None and late.process.poll() is None, late.tail()
        status, failing = made.readiness(late)
        if not seen or seen[-1] != (status, tuple(failing)):
            seen.append((status, tuple(failing)))
        return status == 200

    wait_until(ready, within=READY_WITHIN_S, what=f"{late.name} ready")
    return seen


def test_local_read_models_catch_up_before_ready_and_survive_an_instance_killed_mid_batch(
    tmp_path: Path, private_broker: EmbeddedBroker, postgres_server_url: str,
    scale_figures: Callable[[Figures], Figures],
) -> None:
    row = Figures("local read models, late join, one killed mid-batch", instances=3)
    with cluster(tmp_path, private_broker, postgres_server_url, "local", started=2) as made:
        first, second, third = made.nodes
        assert wait_for(first.write(0, BEFORE), 120, "the first writer done") == 0
        wait_until(lambda: all(len(made.processed(n, "region")) == 3 * BEFORE
                               for n in (first, second)),
                   within=90, what="both running instances holding every case")
        joined = time.monotonic()
        seen = join_late(made, 2)
        joining = time.monotonic() - joined
        # Not ready while its consumers catch up, never ready before: the answers before the
        # 200 include a 503 naming "read-models", and only the last answer is a 200.
        assert any(status == 503 and "read-models" in failing for status, failing in seen), seen
        assert [status for status, _ in seen].count(200) == 1 and seen[-1][0] == 200, seen
        assert len(made.processed(third, "region")) == 3 * BEFORE
        assert all(made.answers_alike(swiss_today()).values())

        victim, total = made.serves[1], 3 * BEFORE + 6 * DURING
        writers = [first.write(1000, DURING), third.write(2000, DURING)]
        held, row.ready_after_s = made.kill_mid_batch(
            victim, writers, second, 3 * BEFORE + 2 * DURING, total)
        checks, alike = made.tally(row, swiss_today())
        row.note = (f"late join ready after {joining:.1f} s, readiness seen {seen}; killed with "
                    f"{held} of {total} events applied; {len(checks)} read models checked")
        scale_figures(row)
    assert row.events_in == total
    assert len(checks) == 9, checks  # three read models in each of three places
    assert (row.lost, row.applied_twice) == (0, 0), checks
    assert row.read_models_equal, checks
    assert row.answers_equal, alike
    assert row.ready_after_s < READY_WITHIN_S
