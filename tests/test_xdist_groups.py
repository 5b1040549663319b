"""`make test` relies on pytest-xdist's groups (`--dist loadgroup`): the scale tests, the
browser tests and the twenty-process store opening each run on one worker, one at a time, so
that PostgreSQL's connections and the machine's memory suffice. A dependency update once made
xdist ignore every group without a word (pytest 9.2, pytest-dev/pytest-xdist#1386); this test
fails instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GROUPED = '''
import os
import pytest

@pytest.mark.xdist_group("together")
@pytest.mark.parametrize("n", range(8))
def test_grouped(n):
    print("WORKER", os.environ["PYTEST_XDIST_WORKER"])
'''


def test_tests_of_one_group_run_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(GROUPED, "utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider",
         "-p", "no:locust", "-n", "2", "--dist", "loadgroup", "-v", "-s", "test_grouped.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    workers = {line.split()[0] for line in run.stdout.splitlines() if "PASSED" in line}
    assert len(workers) == 1 and len(
        [line for line in run.stdout.splitlines() if "PASSED" in line]) == 8, run.stdout
