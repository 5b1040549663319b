"""The store's disk fills up while cases are recorded: the writer stops with the documented
exit code (74, `EXIT_NO_SPACE`) and one line, nothing is half-written (SQLite's integrity check,
the audit chain verifies), and `serve` on that store then publishes every recorded event and
builds read models equal to a rebuild.

The disk is a small tmpfs mounted in a user and mount namespace of its own, as in
tests/cli/test_disk_full.py; the store is copied out of it (SQLite's backup) before the
namespace ends, and `serve` runs on the copy."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from nervenbahn.cli import EXIT_NO_SPACE
from tests.chaos.harness import REPO, Figures, Installation, settle
from tests.cli.test_disk_full import _unshare

DRIVER = r'''
import json, os, sqlite3, subprocess, sys
from pathlib import Path

mount, copy = Path(sys.argv[1]), Path(sys.argv[2])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=768k,mode=700", "tmpfs", str(mount)],
               check=True)
store = mount / "store.db"
env = {**os.environ, "NERVENBAHN_STORE": f"sqlite:///{store}"}
done = subprocess.run([sys.executable, "-m", "tests.chaos.writer", "0", "100000"], env=env,
                      capture_output=True, text=True, check=False, timeout=300)
db = sqlite3.connect(store)
integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
with sqlite3.connect(copy) as target:
    db.backup(target)
db.close()
lines = [line for line in done.stderr.splitlines() if not line.startswith("{")]
print(json.dumps({"code": done.returncode, "lines": lines, "integrity": integrity}))
'''


@pytest.mark.chaos
def test_a_full_disk_stops_the_writer_with_74_and_leaves_nothing_half_written(
    installation: Installation, figures: Callable[[Figures], Figures], tmp_path: Path
) -> None:
    command = _unshare()
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run([*command, sys.executable, "-c", DRIVER, str(mount),
                           str(installation.store)], env=installation.env, cwd=REPO,
                          capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout)
    verify = subprocess.run([sys.executable, "-m", "nervenbahn", "audit", "verify"],
                            env=installation.env, cwd=installation.root, capture_output=True,
                            text=True, check=False, timeout=300)

    server = installation.serve()
    server.start()
    try:
        ready_after = server.wait_ready()
        row = settle(installation, "disk full during writes, then serve")
    finally:
        server.stop()
    row.ready_after_s = ready_after
    row.note = (f"writer exit {outcome['code']}: {' / '.join(outcome['lines'])[:120]}; "
                f"integrity {outcome['integrity']}; audit verify exit {verify.returncode}")
    row.passed = (outcome["code"] == EXIT_NO_SPACE and len(outcome["lines"]) == 1
                  and outcome["integrity"] == "ok" and verify.returncode == 0
                  and row.lost == 0 and bool(row.read_models_equal) and row.events_in > 0)
    figures(row)
    assert row.passed, row.note
