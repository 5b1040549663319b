"""`serve` in a shape that would split or double a read model is refused at start, as a real
process beside a running one on the same store (issue 18, "Done when"):

- read models of its own (SQLite, another folder) and no name: it would share the running
  instance's consumer groups, and each would hold about half of the cases;
- the running instance's read models (same folder) under another name: it would feed them
  through groups of its own, and every event would be applied twice.

`nervenbahn serve` reports the `InstanceConflictError` as every `NervenbahnError`: one line
`error: …` on stderr, exit code 1, no traceback. The running instance stays ready, keeps its
announcement and still consumes every partition (cases recorded after the refusal reach it).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus.broker import EmbeddedBroker, free_port
from tests.bus.waiting import wait_until
from tests.chaos.harness import wait_for
from tests.scale.cluster import Cluster, cluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REFUSED_WITHIN_S = 60.0
"""The bound on a refused `serve` having exited (it checks before any worker starts)."""


def start_refused(made: Cluster, folder: str, instance: str | None) -> tuple[int, str, float]:
    """Run a second instance in `folder` under `instance` until it exits (at most
    `REFUSED_WITHIN_S`): its exit code, its stderr and the seconds it ran."""
    made.add_node(folder=folder, instance=instance)
    node = made.nodes[-1]
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "nervenbahn", "serve", "--port", str(free_port())],
        cwd=node.root, env=node.env, capture_output=True, timeout=REFUSED_WITHIN_S, check=False)
    return done.returncode, done.stderr.decode(errors="replace"), time.monotonic() - began


WRONG_SHAPES = (
    # (folder, instance name, what the refusal says)
    ("instance-2", None, ("half of the cases", "NERVENBAHN_INSTANCE",
                          "through the same consumer groups")),
    ("instance-1", "node-2", ("applied twice", "NERVENBAHN_INSTANCE",
                              "projection-<read model>.node-2")),
)
"""Read models of its own without a name; the running one's read models under another name."""


def test_serve_in_a_wrong_shape_is_refused_at_start_and_the_running_one_is_unaffected(
    tmp_path: Path, private_broker: EmbeddedBroker, postgres_server_url: str,
) -> None:
    with cluster(tmp_path, private_broker, postgres_server_url, "local", size=1,
                 named=False) as made:
        running = made.serves[0]
        assert running.process is not None
        for folder, instance, says in WRONG_SHAPES:
            code, stderr, took = start_refused(made, folder, instance)
            lines = stderr.strip().splitlines()
            assert code == 1, stderr
            assert len(lines) == 1, stderr  # one line, no traceback, no log records
            assert lines[-1].startswith("error: serve refused to start: "), stderr
            assert "instance (unnamed) (host " in lines[-1], stderr
            assert f"process {running.process.pid})" in lines[-1], stderr
            assert all(phrase in lines[-1] for phrase in says), stderr
            assert took < REFUSED_WITHIN_S
            # The running instance: ready, and still the only one announced.
            assert running.ready()
            assert made.live_instances() == [running.process.pid]
        # ... and still fed every case.
        assert wait_for(made.nodes[0].write(0, 3), 120, "the writer done") == 0
        wait_until(lambda: made.get(running, "/v1/regions/so-olten/caseload")["by_phase"]
                   .get("supported") == 3, within=60, what="three supported cases served")
        assert len(made.processed(made.nodes[0], "region")) == 9
