"""The web app's memo of derived figures: kept while the source's stamp holds, for a time for
a verification, computed once for many requests at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from nervenbahn.web.memo import Memo

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_a_value_is_kept_while_its_stamp_holds_and_computed_anew_when_it_moves() -> None:
    memo, calls = Memo(), []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert memo.get("q", 1, compute) == 1
    assert memo.get("q", 1, compute) == 1
    assert memo.get("q", 2, compute) == 2
    assert memo.get("q", None, compute) == 3  # a source without a stamp: never kept
    assert memo.get("q", None, compute) == 4


def test_a_verification_is_shown_for_its_time_and_run_anew_when_asked() -> None:
    memo, runs = Memo(), []
    verify = lambda: runs.append(1) or len(runs)  # noqa: E731
    assert memo.recent("c", NOW, timedelta(seconds=60), verify) == (1, NOW)
    later = NOW + timedelta(seconds=30)
    assert memo.recent("c", later, timedelta(seconds=60), verify) == (1, NOW)
    assert memo.recent("c", later, timedelta(seconds=60), verify, fresh=True) == (2, later)
    too_old = later + timedelta(seconds=61)
    assert memo.recent("c", too_old, timedelta(seconds=60), verify) == (3, too_old)


def test_many_requests_at_once_compute_a_value_once() -> None:
    memo, calls, gate = Memo(), [], threading.Event()

    def slow() -> str:
        calls.append(1)
        gate.wait(5)
        return "figures"

    threads = [threading.Thread(target=memo.get, args=("q", 7, slow)) for _ in range(8)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(5)
    assert calls == [1]
    assert memo.get("q", 7, slow) == "figures"


def test_it_keeps_at_most_its_number_of_keys() -> None:
    memo = Memo(max_entries=2)
    for key in "abc":
        memo.get(key, 1, lambda key=key: key)
    fresh = memo.get("a", 1, lambda: "again")
    assert fresh == "again"  # the oldest key went first
