"""The synthetic canton's case histories are valid: a reopened case's support starts after its
closing (`budget-within-support`). With the first of the reapplication's month as the start,
a case closed on the 1st and reopened that month was refused on import (seed 100016, 4,010
households: `make scale` stopped at its 13th chunk)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime
from functools import cache
from typing import Any

from domain.application.cases import CaseService
from domain.personal_data import PersonalDataVault
from domain.reference import load_reference_data
from nervenbahn.synthetic import synthetic_history

from .domain.case_desk import MASTER_KEY, POPO_ENV
from .domain.fakes import FakeBenefits, FakeClock, InMemoryKeyStore

SEED, HOUSEHOLDS = 100_016, 4_010
REFERENCE = load_reference_data()


@cache
def _by_case() -> dict[str, list[dict[str, Any]]]:
    cases: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in synthetic_history(REFERENCE, HOUSEHOLDS, SEED):
        cases[record["data"].get("case_id", "")].append(record)
    return cases


def _clamped(records: list[dict[str, Any]]) -> bool:
    """Whether a grant after a reopening would have started on or before the closing."""
    closed: date | None = None
    for record in records:
        data = record["data"]
        if record["command"] == "close_case":
            closed = date.fromisoformat(data["closing_date"])
        if record["command"] == "reopen_case":
            month = date.fromisoformat(data["reopening_date"]).replace(day=1)
            if closed is not None and month <= closed:
                return True
    return False


def test_support_after_a_reopening_starts_after_the_closing() -> None:
    grants_after_reopening = 0
    for records in _by_case().values():
        closed: date | None = None
        for record in records:
            data = record["data"]
            if record["command"] == "close_case":
                closed = date.fromisoformat(data["closing_date"])
            elif record["command"] == "grant_support" and closed is not None:
                grants_after_reopening += 1
                assert date.fromisoformat(data["support_from"]) > closed, records
    assert grants_after_reopening > 0


def test_the_cases_that_met_the_rule_import_without_a_refusal() -> None:
    affected = [records for records in _by_case().values() if _clamped(records)]
    assert affected, "the seed no longer makes a case reopened in the month of its closing"
    service = CaseService(
        POPO_ENV,
        vault=PersonalDataVault(InMemoryKeyStore(), MASTER_KEY),
        reference=REFERENCE,
        clock=FakeClock(datetime.fromisoformat("2026-12-01T12:00:00+01:00")),
        benefits=FakeBenefits(),
    )
    lines = [json.dumps(record) for records in affected for record in records]
    report = service.import_records(sorted(lines, key=lambda line: json.loads(line)["recorded_at"]))
    assert report.cases == len(affected)
