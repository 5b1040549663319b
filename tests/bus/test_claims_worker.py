"""The claims worker's looks (`nervenbahn.claims_worker`), on a real SQLite store without a
broker: it runs the claims process only when the benefits or payments store moved or a case
started an advance, only over the cases that advance, and again at the next look when a case
was `concurrent`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from uuid import UUID

from domain.application.claims import ClaimOutcome
from domain.errors import RuleViolationError
from nervenbahn.claims_worker import ClaimsWorker
from nervenbahn.container import Container
from tests.bus.advances import advance_on, grant, pay_this_month
from tests.bus.pipeline import open_supported_case, store_settings


class CountingClaims:
    """The claims process's stand-in: records which cases each run was given; the first
    `concurrent` runs answer that another writer moved the case."""

    def __init__(self, concurrent: int = 0) -> None:
        self.runs: list[list[UUID]] = []
        self._concurrent = concurrent

    def run(self, case_ids: Iterable[UUID] | None = None) -> list[ClaimOutcome]:
        assert case_ids is not None, "the worker never asks for every case"
        cases = list(case_ids)
        self.runs.append(cases)
        self._concurrent -= 1
        return [ClaimOutcome(case, case, (), concurrent=self._concurrent >= 0)
                for case in cases]


def test_the_worker_records_a_decided_claim_once_and_looks_again_only_when_something_moved(
    tmp_path: Path, master_key: str
) -> None:
    container = Container(store_settings(tmp_path, master_key))
    try:
        other = open_supported_case(container.service, 1)  # not advanced: never loaded
        advanced = open_supported_case(container.service, 0)
        pay_this_month(container, advanced, "CH5604835012345678009")
        application_id = advance_on(container, advanced)
        worker = container.claims_worker()
        first = worker.tick()
        idle = worker.tick()
        open_supported_case(container.service, 2)  # no advance: nothing moved for claims
        still_idle = worker.tick()
        grant(container.benefits, application_id, "1900.00")
        granted = worker.tick()
        after = worker.tick()
    finally:
        container.close()

    assert first == []  # forwarded, not decided: nothing to record
    assert idle is None and still_idle is None
    assert worker.advancing == [advanced] and other not in worker.advancing
    assert granted is not None
    assert [o.events for o in granted] == [
        ("AdvanceEnded", "ReimbursementRecorded", "BudgetChangeProposed")]
    assert after is None


def test_a_concurrent_case_is_looked_at_again_at_the_next_tick(
    tmp_path: Path, master_key: str
) -> None:
    container = Container(store_settings(tmp_path, master_key))
    try:
        advanced = open_supported_case(container.service, 0)
        advance_on(container, advanced)
        claims = CountingClaims(concurrent=1)
        worker = ClaimsWorker(claims, container.service,  # type: ignore[arg-type]
                              container.benefits, container.payments)
        postponed, retried, idle = worker.tick(), worker.tick(), worker.tick()
    finally:
        container.close()

    assert postponed is not None and [o.concurrent for o in postponed] == [True]
    assert retried is not None and [o.concurrent for o in retried] == [False]
    assert idle is None
    assert claims.runs == [[advanced], [advanced]]


class RefusingClaims(CountingClaims):
    """The claims process's stand-in whose first run of each case is refused by the domain
    (as a case whose history needs a correction first)."""

    def run(self, case_ids: Iterable[UUID] | None = None) -> list[ClaimOutcome]:
        outcomes = super().run(case_ids)
        if len(self.runs) == 1:
            raise RuleViolationError("advance-for-application", "application_id: refused")
        return outcomes


def test_a_refused_case_is_looked_at_again_once_the_case_store_moved(
    tmp_path: Path, master_key: str
) -> None:
    container = Container(store_settings(tmp_path, master_key))
    try:
        advanced = open_supported_case(container.service, 0)
        advance_on(container, advanced)
        claims = RefusingClaims()
        worker = ClaimsWorker(claims, container.service,  # type: ignore[arg-type]
                              container.benefits, container.payments)
        refused, nothing_moved = worker.tick(), worker.tick()
        open_supported_case(container.service, 1)  # the case store moves (any case)
        retried, idle = worker.tick(), worker.tick()
    finally:
        container.close()

    assert refused == [] and nothing_moved is None  # refused: not retried while nothing moved
    assert retried is not None and [o.case_id for o in retried] == [advanced]
    assert idle is None  # retried once, done with
    assert claims.runs == [[advanced], [advanced]]
