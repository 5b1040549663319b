"""The contract every access-log adapter keeps; one tiny subclass per adapter runs it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from nervenbahn.api.access_log import AccessEntry, AccessLog

SWISS_SUMMER = timezone(timedelta(hours=2))


def entry(n: int, *, person: str = "p-1", case: str = "c-1") -> AccessEntry:
    """The n-th read of a test person's data."""
    return AccessEntry(
        at=datetime(2026, 10, 1, 10, n, tzinfo=SWISS_SUMMER),
        consumer=f"desk-{n}",
        scope="branch_office:akso-olten",
        case_id=case,
        person_id=person,
        fields=("given_name", "ahvn13"),
        endpoint="GET /v1/branch-offices/{office_id}/cases/{case_id}",
    )


class AccessLogContract(ABC):
    """Append, select by person and case, page with gt and limit, keep what was appended."""

    @abstractmethod
    def open_log(self, folder: Path) -> AccessLog:
        """A fresh, empty log of the adapter under test, in `folder`."""

    @pytest.fixture
    def log(self, tmp_path: Path) -> Iterator[AccessLog]:
        log = self.open_log(tmp_path)
        yield log
        log.close()

    def test_append_returns_increasing_ids_and_keeps_every_field(self, log: AccessLog) -> None:
        first, second = log.append(entry(1)), log.append(entry(2))

        logged = log.select()

        assert first < second
        assert [item.id for item in logged] == [first, second]
        assert logged[0].entry == entry(1)
        assert logged[0].entry.at.utcoffset() is not None

    def test_times_are_kept_as_the_same_instant_in_utc(self, log: AccessLog) -> None:
        log.append(entry(5))

        (logged,) = log.select()

        assert logged.entry.at == datetime(2026, 10, 1, 8, 5, tzinfo=UTC)

    def test_select_filters_by_person_and_by_case(self, log: AccessLog) -> None:
        log.append(entry(1, person="anna", case="c-a"))
        log.append(entry(2, person="ben", case="c-b"))
        log.append(entry(3, person="anna", case="c-b"))

        by_person = [item.entry.consumer for item in log.select(person_id="anna")]
        by_case = [item.entry.consumer for item in log.select(case_id="c-b")]
        both = [item.entry.consumer for item in log.select(person_id="anna", case_id="c-b")]

        assert (by_person, by_case, both) == (["desk-1", "desk-3"], ["desk-2", "desk-3"],
                                              ["desk-3"])

    def test_gt_and_limit_page_through_the_log_oldest_first(self, log: AccessLog) -> None:
        ids = [log.append(entry(n)) for n in range(7)]

        first = log.select(limit=3)
        rest = log.select(gt=first[-1].id, limit=10)

        assert [item.id for item in first + rest] == ids

    def test_an_empty_log_selects_nothing(self, log: AccessLog) -> None:
        assert log.select(person_id="nobody") == []
