"""`case_as_of` from snapshots on a real SQLite store equals a full replay, for every version
of a case with more than 300 events (some recorded at the same instant), and a cached
snapshot never shows an erased person's data."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.application.cases import CaseService
from domain.case import SWISS_TIME, Case
from domain.errors import ImportRejectedError
from nervenbahn.container import build_service, close_service
from tests.bus.pipeline import store_settings
from tests.domain.case_desk import person_input

EVENTS = 340
ACTOR = {"user_id": "legacy", "role": "caseworker", "organisation": "so-solothurn"}


def long_history(case_id: UUID, events: int, end: datetime) -> list[dict[str, Any]]:
    """Import records of one case: opened, assessed, granted, then budget changes, goals,
    reviews and measures; every fourth record shares the previous one's recorded time."""
    times = [end - timedelta(hours=events)]
    for n in range(1, events):
        times.append(times[-1] if n % 4 == 0 else times[-1] + timedelta(hours=1))
    days = [t.astimezone(SWISS_TIME).date() for t in times]
    records: list[tuple[str, dict[str, Any]]] = [
        ("open_case", {"case_id": str(case_id), "municipality_bfs": 2601, "household_size": 1,
                       "applicant": person_input(7), "application_date": days[0].isoformat()}),
        ("complete_assessment", {"needs": ["financial"], "employability": "employable"}),
        ("grant_support", {"support_from": days[0].replace(day=1).isoformat(),
                           "housing": "1200", "health_insurance": "350", "income": "0"}),
    ]
    measure: str | None = None
    for n in range(3, events):
        step, day = n % 5, days[n]
        if step == 0:
            records.append(("change_budget", {
                "effective_date": day.isoformat(), "reason": "income_change",
                "housing": "1200", "health_insurance": "350", "income": str(n)}))
        elif step == 1:
            records.append(("agree_goal", {
                "category": "employment", "title": f"Goal {n}",
                "due_date": (day + timedelta(days=60)).isoformat()}))
        elif step == 2:
            records.append(("complete_review", {"outcome": "continue"}))
        elif step == 3:
            measure = str(uuid4())
            records.append(("start_measure", {"measure_id": measure, "kind": "job_coaching"}))
        else:
            records.append(("complete_measure", {"measure_id": measure}))
    lines = []
    for at, (name, data) in zip(times, records, strict=True):
        payload = {**data, "actor": ACTOR, "correlation_id": str(uuid4())}
        if name != "open_case":
            payload["case_id"] = str(case_id)
        lines.append({"recorded_at": at.isoformat(), "command": name, "data": payload})
    return lines


@pytest.fixture(scope="module")
def long_case(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CaseService, UUID]]:
    """A SQLite store holding one case of EVENTS events, imported in one go."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    service = build_service(store_settings(tmp_path_factory.mktemp("long"), key))
    case_id = uuid4()
    end = datetime.now(UTC) - timedelta(days=1)
    service.import_records(json.dumps(r) for r in long_history(case_id, EVENTS, end))
    yield service, case_id
    close_service(service)


def replay(events: list[Any]) -> Case:
    case = None
    for event in events:
        case = event.mutate(case)
    assert isinstance(case, Case)
    return case


def test_the_case_has_snapshots_to_start_from(long_case: tuple[CaseService, UUID]) -> None:
    service, case_id = long_case
    assert service.snapshots is not None
    versions = [s.originator_version for s in service.snapshots.get(case_id)]
    assert versions == [100, 200, 300]


def test_case_as_of_equals_a_full_replay_for_every_version(
    long_case: tuple[CaseService, UUID],
) -> None:
    service, case_id = long_case
    events = list(service.events.get(case_id))
    assert len(events) == EVENTS
    times: list[datetime] = [getattr(e, "timestamp") for e in events]  # noqa: B009
    assert times == sorted(times)  # what the binary search relies on
    for index, at in enumerate(times):
        # Known at the event's recorded time: it and every event recorded at the same instant.
        known = max(i for i, t in enumerate(times) if t == at) + 1
        assert service.version_as_of(case_id, at) == known
        assert vars(service.case_as_of(case_id, at)) == vars(replay(events[:known])), index
        # Just before it: only the events recorded earlier.
        earlier = sum(1 for t in times if t < at)
        assert service.version_as_of(case_id, at - timedelta(microseconds=1)) == earlier


def test_an_import_cannot_go_back_in_time_within_a_case(
    long_case: tuple[CaseService, UUID],
) -> None:
    """Monotone recorded times per case hold for imports too: continuing a case before its
    last recorded event is refused, so the binary search stays correct."""
    service, case_id = long_case
    last = service.get_case(case_id).modified_on
    record = {
        "recorded_at": (last - timedelta(hours=1)).isoformat(), "command": "complete_review",
        "data": {"case_id": str(case_id), "outcome": "continue", "actor": ACTOR,
                 "correlation_id": str(uuid4())},
    }
    with pytest.raises(ImportRejectedError, match="recorded_at"):
        service.import_records([json.dumps(record)])


def test_a_cached_snapshot_does_not_show_an_erased_person(tmp_path: Path) -> None:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    service = build_service(store_settings(tmp_path, key))
    try:
        case_id = uuid4()
        end = datetime.now(UTC) - timedelta(days=1)
        service.import_records(json.dumps(r) for r in long_history(case_id, 120, end))
        at = service.get_case(case_id).modified_on
        before = service.case_as_of(case_id, at)  # from the snapshot at 100, now cached
        assert before.applicant.to_plain()["given_name"] == "Person7"
        service.erase_person(before.applicant.person_id)
        after = service.case_as_of(case_id, at)
        assert after.applicant.is_erased
        assert after.version == before.version == 120
    finally:
        close_service(service)
