"""The contract every access-log adapter keeps (and every chained one, more); one tiny
subclass per adapter runs it."""

from __future__ import annotations

import dataclasses
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from nervenbahn.audit.access_log import (
    AccessEntry,
    AccessLog,
    ChainedAccessLog,
)
from nervenbahn.audit.errors import AccessLogRetentionError
from nervenbahn.audit.hashing import ChainHead

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


def recorded(n: int, at: datetime, *, person: str = "p-1") -> AccessEntry:
    """The n-th read, recorded at `at`."""
    return dataclasses.replace(entry(n, person=person), at=at)


def expected_hash(previous: bytes, entry_id: int, item: AccessEntry) -> bytes:
    """An entry's link computed by hand from the documented layout: every field
    length-prefixed (ints 8 bytes big-endian), the time in UTC ISO 8601, the field names
    after their count, all after the previous hash, SHA-256."""
    def part(value: bytes | str | int) -> bytes:
        data = value.to_bytes(8, "big", signed=True) if isinstance(value, int) else (
            value.encode() if isinstance(value, str) else value)
        return len(data).to_bytes(4, "big") + data

    values: list[bytes | str | int] = [
        entry_id, item.at.astimezone(UTC).isoformat(), item.consumer, item.scope,
        item.case_id, item.person_id, len(item.fields), *item.fields, item.endpoint,
    ]
    return hashlib.sha256(previous + b"".join(part(v) for v in values)).digest()


GENESIS = hashlib.sha256(b"nervenbahn hash chain v1: access-log").digest()
YEAR_START = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)


class ChainedAccessLogContract(AccessLogContract):
    """Chained: head, verify against expected heads, purge by retention with an anchor."""

    @abstractmethod
    def open_log(self, folder: Path) -> ChainedAccessLog:
        """A fresh, empty chained log of the adapter under test, in `folder`."""

    @pytest.fixture
    def chained(self, tmp_path: Path) -> Iterator[ChainedAccessLog]:
        log = self.open_log(tmp_path)
        yield log
        log.close()

    def test_an_empty_log_is_at_genesis_and_verifies(self, chained: ChainedAccessLog) -> None:
        result = chained.verify()

        assert chained.head() == ChainHead(0, GENESIS)
        assert (result.ok, result.records, result.head, result.chain) == (
            True, 0, ChainHead(0, GENESIS), "access-log")

    def test_each_entry_is_linked_to_the_one_before(self, chained: ChainedAccessLog) -> None:
        items = [entry(1), entry(2, person="p-2"), entry(3)]
        for item in items:
            chained.append(item)
        previous = GENESIS
        for position, item in enumerate(items, start=1):
            previous = expected_hash(previous, position, item)

        assert chained.head() == ChainHead(3, previous)
        assert chained.verify().ok
        assert chained.verify().records == 3

    @pytest.mark.parametrize(
        "change",
        [
            {"at": datetime(2026, 10, 1, 8, 1, 1, tzinfo=UTC)},
            {"consumer": "someone-else"},
            {"scope": "region:so-olten"},
            {"case_id": "c-2"},
            {"person_id": "p-2"},
            {"fields": ("given_name",)},
            {"fields": ("given_name", "ahvn13", "")},
            {"endpoint": "GET /v1/elsewhere"},
        ],
        ids=lambda change: "-".join(f"{k}={v}" for k, v in change.items()),
    )
    def test_the_hash_covers_every_field_of_the_entry(
        self, tmp_path: Path, change: dict[str, object]
    ) -> None:
        one, other = self.open_log(tmp_path / "one"), self.open_log(tmp_path / "other")
        one.append(entry(1))
        other.append(dataclasses.replace(entry(1), **change))  # type: ignore[arg-type]

        heads = one.head(), other.head()
        one.close()
        other.close()

        assert heads[0].position == heads[1].position == 1
        assert heads[0].hash != heads[1].hash

    def test_expected_heads_that_match_are_confirmed(self, chained: ChainedAccessLog) -> None:
        chained.append(entry(1))
        at_one = chained.head()
        chained.append(entry(2))
        at_two = chained.head()

        result = chained.verify([at_one, at_two])

        assert result.ok
        assert (result.checkpoints_checked, result.checkpoint) == (2, at_two.to_json())

    def test_an_expected_head_with_another_hash_is_a_break_there(
        self, chained: ChainedAccessLog
    ) -> None:
        for n in range(4):
            chained.append(entry(n))

        result = chained.verify([ChainHead(2, b"\x00" * 32)])

        assert result.first_break is not None
        assert result.first_break.position == 2
        assert "signed checkpoint" in result.first_break.reason

    def test_an_expected_head_beyond_the_end_is_a_truncation(
        self, chained: ChainedAccessLog
    ) -> None:
        chained.append(entry(1))

        result = chained.verify([ChainHead(3, b"\x01" * 32)])

        assert result.first_break is not None
        assert result.first_break.position == 2
        assert "truncated" in result.first_break.reason

    @pytest.mark.parametrize("days", [0, 30, 364])
    def test_a_retention_under_one_year_is_refused(
        self, chained: ChainedAccessLog, days: int
    ) -> None:
        chained.append(recorded(1, YEAR_START))

        with pytest.raises(AccessLogRetentionError, match=r"Art\. 4 para\. 5 DSV"):
            chained.purge(now=YEAR_START + timedelta(days=3650), retention_days=days)

        assert len(chained.select()) == 1

    def test_purge_removes_only_the_oldest_entries_past_retention(
        self, chained: ChainedAccessLog
    ) -> None:
        # 400, 380 and 370 days old, then 360 (kept), then 390 (older, but after a kept one)
        now = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
        ages = [400, 380, 370, 360, 390]
        for n, age in enumerate(ages, start=1):
            chained.append(recorded(n, now - timedelta(days=age)))
        head_before = chained.head()

        anchor = chained.purge(now=now, retention_days=365)

        assert anchor is not None
        assert (anchor.position, anchor.entries) == (3, 3)
        assert anchor.last_at == now - timedelta(days=370)
        assert [item.id for item in chained.select()] == [4, 5]
        assert chained.head() == head_before

    def test_after_a_purge_the_chain_verifies_from_the_anchor(
        self, chained: ChainedAccessLog
    ) -> None:
        now = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
        items = [recorded(n, now - timedelta(days=500 - n)) for n in range(1, 5)]
        heads = []
        for item in items:
            chained.append(item)
            heads.append(chained.head())

        anchor = chained.purge(now=now, retention_days=497)   # 1 and 2: 499, 498 days old
        chained.append(recorded(5, now))
        result = chained.verify(heads)

        previous = GENESIS
        for position, item in enumerate([*items, recorded(5, now)], start=1):
            previous = expected_hash(previous, position, item)
        assert anchor is not None and anchor.head == heads[1]
        assert result.ok, result.first_break
        assert result.before_anchor == (heads[0],)
        assert result.checkpoints_checked == 3                 # at the anchor, 3 and 4
        assert (result.records, result.head) == (3, ChainHead(5, previous))

    def test_purging_everything_keeps_the_chain_going(self, chained: ChainedAccessLog) -> None:
        now = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
        chained.append(recorded(1, now - timedelta(days=800)))
        chained.append(recorded(2, now - timedelta(days=700)))
        head = chained.head()

        anchor = chained.purge(now=now, retention_days=365)
        empty_head = chained.head()
        next_id = chained.append(recorded(3, now))

        assert anchor is not None and anchor.head == head == empty_head
        assert chained.anchor() == anchor
        assert next_id == 3
        assert chained.verify([head]).ok

    def test_nothing_old_enough_purges_nothing(self, chained: ChainedAccessLog) -> None:
        now = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
        chained.append(recorded(1, now - timedelta(days=364)))

        assert chained.purge(now=now, retention_days=365) is None
        assert chained.anchor() is None
        assert len(chained.select()) == 1
