"""Chain verification's ranges checked by a real forked process. Only a single-threaded process
forks (`verify_ranges._run`, as the CLI is); the test runner's workers run threads, so there
the ranges are checked one after the other and the fork is never exercised. Here the quick
path runs in a child Python of its own, single-threaded, whose second range is checked in a
forked process (its pid recorded), on an intact store and under each attack of
tests/audit/test_verify_ranges_attacks.py; its verdict must be the careful walk's, finding for
finding."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nervenbahn.audit import verify
from nervenbahn.audit.checkpoints import SigningKey
from nervenbahn.audit.database import open_audit_database
from nervenbahn.config import Settings
from tests.audit.test_tamper import build_store
from tests.audit.test_verify_paths import settings
from tests.audit.test_verify_ranges_attacks import ATTACKS, attacked, two_ranges

__all__ = ["settings", "two_ranges"]  # the fixtures

CHILD = r"""
import json, os, sys, threading
from nervenbahn.audit import verify, verify_ranges
from nervenbahn.audit.checkpoints import SigningKey
from nervenbahn.audit.database import open_audit_database
from nervenbahn.config import load_settings

verify_ranges.BLOCK, verify_ranges.PARALLEL_FROM, verify_ranges.PROCESSES = 4, 0, 2
pids = sys.argv[1]
apart = verify_ranges._check_apart

def recorded(*args):  # inherited by the forked process: it writes its own pid
    with open(pids, "a") as out:
        out.write(f"{os.getpid()}\n")
    return apart(*args)

verify_ranges._check_apart = recorded
settings = load_settings(json.loads(sys.stdin.read()))
public = SigningKey.from_seed(settings.signing_key.get_secret_value()).public
db = open_audit_database(settings.store)
try:
    threads = threading.active_count()
    answer = verify.verify_store(db, public).to_json()
finally:
    db.close()
print(json.dumps({"pid": os.getpid(), "threads": threads, "answer": answer}))
"""


def quick_in_a_child(settings: Settings, folder: Path) -> tuple[dict[str, object], list[int]]:
    """The quick path's verdict from a single-threaded child, and the pids that checked a
    range apart from it."""
    pids = folder / "range-pids"
    environ = {
        "NERVENBAHN_STORE": f"sqlite:///{settings.store.sqlite_path}",
        "NERVENBAHN_MASTER_KEY": settings.master_key.get_secret_value(),
        "NERVENBAHN_AUDIT_SIGNING_KEY": settings.signing_key.get_secret_value(),
    }
    done = subprocess.run([sys.executable, "-c", CHILD, str(pids)], input=json.dumps(environ),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    child = json.loads(done.stdout.splitlines()[-1])
    assert child["threads"] == 1, "the child must be single-threaded to fork"
    forked = [int(pid) for pid in pids.read_text().split()] if pids.exists() else []
    assert forked and child["pid"] not in forked, "no range was checked in a forked process"
    return child["answer"], forked


def careful(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The careful single walk's verdict, here."""
    public = SigningKey.from_seed(settings.signing_key.get_secret_value()).public
    db = open_audit_database(settings.store)
    try:
        with monkeypatch.context() as patched:
            patched.setattr(verify, "_verify_quickly", lambda *_: None)
            return verify.verify_store(db, public).to_json()
    finally:
        db.close()


def test_an_intact_store_verified_with_a_forked_range_holds(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    build_store(settings, cases_per_batch=4)

    quick, _ = quick_in_a_child(settings, tmp_path)

    assert quick["ok"] is True, quick
    assert quick == careful(settings, monkeypatch)


@pytest.mark.parametrize("attack", ATTACKS)
def test_an_attack_is_found_by_the_forked_range_as_the_single_walk_finds_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, attack: str
) -> None:
    attacked(settings, attack)

    quick, _ = quick_in_a_child(settings, tmp_path)

    assert quick["ok"] is False, quick
    assert quick == careful(settings, monkeypatch)
