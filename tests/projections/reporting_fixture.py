"""A small canton for the reporting tests: seven cases in two social regions with known dates,
as legacy-import records, and the figures of 2026Q1 worked out by hand.

Olten (so-olten, BFS 2581) and Solothurn (so-solothurn, BFS 2601); every date is an effective
date, recorded the same day.

    A  Olten      opened 2025-11-10, assessed 11-20, granted 2025-12-01, goal 2025-12-15,
                  measure 2026-01-12 .. completed 2026-02-20, closed 2026-03-16 (employment)
    B  Olten      opened 2026-01-05, assessed 01-15, granted 2026-01-25, measure 2026-02-02 ..
                  broken off 2026-03-02, closed 2026-04-15 (employment)
    C  Olten      opened 2026-02-10, assessed 02-12, refused 2026-02-19, closed 2026-03-05 (other)
    D  Olten      opened 2025-10-01, assessed 10-08, granted 2025-10-20, goal 2025-11-03,
       → Solothurn handed over 2026-02-01, measure started 2026-02-16 (in Solothurn), open
    E  Solothurn  opened 2025-12-01, assessed 12-10, granted 2026-01-08, goal only 2026-04-10
    F  Solothurn  opened 2025-06-02, assessed 06-10, granted 2025-06-20, goal 2025-07-01,
                  closed 2026-01-20 (other_insurance), reopened 2026-03-02, assessed 03-09,
                  granted 2026-03-23
    G  Solothurn  opened 2026-03-10, → Olten handed over 2026-03-20, assessed 03-25
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid5

from kafka import KafkaConsumer, TopicPartition
from stdnum import ean

from bus.kafka_settings import KafkaSettings
from domain.case import SWISS_TIME
from tests.bus.waiting import wait_until

OLTEN, SOLOTHURN = 2581, 2601
ADMIN = {"user_id": "statistik-so", "role": "administrator", "organisation": "so-canton"}
CASES = {name: UUID(int=0xCA5E0000 + n) for n, name in enumerate("ABCDEFG", start=1)}
APPLICANT_NAME = ("Zora", "Quellmatt")
_NAMESPACE = UUID("8f0b6f54-9a0e-4d9e-9c55-6d1a3f7e2b10")


def ahvn13(serial: int) -> str:
    """A valid AHVN13, dotted."""
    digits = f"756{9_000_000 + serial:09d}"
    number = digits + ean.calc_check_digit(digits)
    return f"{number[:3]}.{number[3:7]}.{number[7:11]}.{number[11:]}"


# What 2026Q1 (1 January to 31 March 2026) must give, derived from the cases above:
#
# Olten
#   new cases       B (01-05), C (02-10)                                   = 2
#                   (G opened in Solothurn; A, D before the quarter)
#   closed          A employment 2025-11-10 → 2026-03-16 = 126 days
#                   C other      2026-02-10 → 2026-03-05 =  23 days         = 2
#                   (B closes in Q2)
#   median duration (23 + 126) / 2                                           = 74.5
#   decisions       B 01-05 → 01-25 = 20 days, C 02-10 → 02-19 = 9 days    = 2
#   median to decision (9 + 20) / 2                                          = 14.5
#   supported       A (goal 2025-12-15), B (no goal)                         = 2, with goal 1
#                   (D's last supported day, 03-31, falls after its handover to Solothurn)
#   measures        started A 01-12, B 02-02 = 2; completed A 02-20 = 1 (B's broken off)
# Solothurn
#   new cases       F reopened 03-02, G opened 03-10                         = 2
#   closed          F other_insurance 2025-06-02 → 2026-01-20 = 232 days   = 1
#   median duration                                                          = 232
#   decisions       E 2025-12-01 → 2026-01-08 = 38 days,
#                   F reopened 03-02 → granted 03-23 = 21 days              = 2
#   median to decision (21 + 38) / 2                                         = 29.5
#   supported       D (goal 2025-11-03), E (goal only in April: none by 03-31),
#                   F (two support periods in the quarter, counted once; goal 2025-07-01)
#                                                                            = 3, with goal 2
#   measures        started D 02-16 (after its handover) = 1; completed 0
# Canton
#   new 4, closed 3 (employment 1, other_insurance 1, other 1),
#   median duration of 23, 126, 232 = 126; decisions 4: 9, 20, 21, 38 → (20 + 21) / 2 = 20.5,
#   supported 5 with goal 3, measures started 3, completed 1.
ZERO_REASONS = {"employment": 0, "other_insurance": 0, "moved_away": 0, "death": 0, "other": 0}
EXPECTED_2026Q1: dict[str, dict[str, Any]] = {
    "so-olten": {
        "new_cases": 2, "closed_cases": 2,
        "closures_by_reason": {**ZERO_REASONS, "employment": 1, "other": 1},
        "median_duration_days": 74.5, "decisions": 2, "median_days_to_decision": 14.5,
        "supported_cases": 2, "with_goal_agreement": 1,
        "measures_started": 2, "measures_completed": 1,
    },
    "so-solothurn": {
        "new_cases": 2, "closed_cases": 1,
        "closures_by_reason": {**ZERO_REASONS, "other_insurance": 1},
        "median_duration_days": 232.0, "decisions": 2, "median_days_to_decision": 29.5,
        "supported_cases": 3, "with_goal_agreement": 2,
        "measures_started": 1, "measures_completed": 0,
    },
}
EXPECTED_CANTON_2026Q1: dict[str, Any] = {
    "new_cases": 4, "closed_cases": 3,
    "closures_by_reason": {**ZERO_REASONS, "employment": 1, "other_insurance": 1, "other": 1},
    "median_duration_days": 126.0, "decisions": 4, "median_days_to_decision": 20.5,
    "supported_cases": 5, "with_goal_agreement": 3,
    "measures_started": 3, "measures_completed": 1,
}
EMPTY_REGION: dict[str, Any] = {
    "new_cases": 0, "closed_cases": 0, "closures_by_reason": ZERO_REASONS,
    "median_duration_days": None, "decisions": 0, "median_days_to_decision": None,
    "supported_cases": 0, "with_goal_agreement": 0, "measures_started": 0,
    "measures_completed": 0,
}

_BUDGET = {"housing": "1200.00", "health_insurance": "350.00", "income": "0.00"}


class _History:
    """Import records, recorded on their effective day (10:00 plus a minute per record)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def add(self, case: str, day: str, command: str, **data: Any) -> None:
        moment = datetime.combine(date.fromisoformat(day), time(10), tzinfo=SWISS_TIME)
        moment += timedelta(minutes=len(self.records))
        payload = {
            "actor": ADMIN,
            "correlation_id": str(uuid5(_NAMESPACE, f"{case}/{len(self.records)}")),
            "case_id": str(CASES[case]),
            **data,
        }
        self.records.append(
            {"recorded_at": moment.isoformat(), "command": command, "data": payload}
        )

    def open(self, case: str, day: str, bfs: int) -> None:
        serial = ord(case)
        applicant = {
            "given_name": APPLICANT_NAME[0], "family_name": f"{APPLICANT_NAME[1]}{case}",
            "ahvn13": ahvn13(serial), "birth_date": "1981-07-14", "street": "Ringstrasse 9",
            "postal_code": "4600", "town": "Olten",
        }
        self.add(case, day, "open_case", municipality_bfs=bfs, household_size=1,
                 applicant=applicant, application_date=day)

    def assess(self, case: str, day: str) -> None:
        self.add(case, day, "complete_assessment", needs=["financial"],
                 employability="partially_employable", assessment_date=day)

    def grant(self, case: str, day: str, support_from: str) -> None:
        self.add(case, day, "grant_support", support_from=support_from, decision_date=day,
                 **_BUDGET)

    def goal(self, case: str, day: str) -> None:
        due = (date.fromisoformat(day) + timedelta(days=120)).isoformat()
        self.add(case, day, "agree_goal", goal_id=str(uuid5(_NAMESPACE, f"goal/{case}/{day}")),
                 category="employment", title="Bewerbungen schreiben (Quellmatt)",
                 due_date=due, agreed_on=day)

    def measure(self, case: str, day: str) -> str:
        measure_id = str(uuid5(_NAMESPACE, f"measure/{case}/{day}"))
        self.add(case, day, "start_measure", measure_id=measure_id, kind="job_coaching",
                 start_date=day)
        return measure_id

    def close(self, case: str, day: str, reason: str) -> None:
        self.add(case, day, "close_case", reason=reason, closing_date=day)


def records() -> list[dict[str, Any]]:
    """The import records of cases A to G, each case's in order."""
    h = _History()
    h.open("A", "2025-11-10", OLTEN)
    h.assess("A", "2025-11-20")
    h.grant("A", "2025-12-01", "2025-11-01")
    h.goal("A", "2025-12-15")
    measure = h.measure("A", "2026-01-12")
    h.add("A", "2026-02-20", "complete_measure", measure_id=measure, end_date="2026-02-20")
    h.close("A", "2026-03-16", "employment")

    h.open("B", "2026-01-05", OLTEN)
    h.assess("B", "2026-01-15")
    h.grant("B", "2026-01-25", "2026-01-01")
    measure = h.measure("B", "2026-02-02")
    h.add("B", "2026-03-02", "break_off_measure", measure_id=measure, reason="no_show",
          end_date="2026-03-02")
    h.close("B", "2026-04-15", "employment")

    h.open("C", "2026-02-10", OLTEN)
    h.assess("C", "2026-02-12")
    h.add("C", "2026-02-19", "refuse_support", reasons=["income_sufficient"],
          decision_date="2026-02-19")
    h.close("C", "2026-03-05", "other")

    h.open("D", "2025-10-01", OLTEN)
    h.assess("D", "2025-10-08")
    h.grant("D", "2025-10-20", "2025-10-01")
    h.goal("D", "2025-11-03")
    h.add("D", "2026-02-01", "hand_over_case", to_municipality_bfs=SOLOTHURN,
          effective_date="2026-02-01")
    h.measure("D", "2026-02-16")

    h.open("E", "2025-12-01", SOLOTHURN)
    h.assess("E", "2025-12-10")
    h.grant("E", "2026-01-08", "2025-12-01")
    h.goal("E", "2026-04-10")

    h.open("F", "2025-06-02", SOLOTHURN)
    h.assess("F", "2025-06-10")
    h.grant("F", "2025-06-20", "2025-06-01")
    h.goal("F", "2025-07-01")
    h.close("F", "2026-01-20", "other_insurance")
    h.add("F", "2026-03-02", "reopen_case", reason="reapplication", reopening_date="2026-03-02")
    h.assess("F", "2026-03-09")
    h.grant("F", "2026-03-23", "2026-03-01")

    h.open("G", "2026-03-10", SOLOTHURN)
    h.add("G", "2026-03-20", "hand_over_case", to_municipality_bfs=OLTEN,
          effective_date="2026-03-20")
    h.assess("G", "2026-03-25")
    return h.records


def lines() -> list[str]:
    """The records as JSON Lines, for `CaseService.import_records` or `nervenbahn import`."""
    return [json.dumps(record) for record in records()]


EVENTS = len(records())
"""One event per record."""


def read_all(kafka: KafkaSettings, topic: str, expected: int) -> list[Any]:
    """Every message of `topic`, read outside any group."""
    reader = KafkaConsumer(**kafka.consumer_kwargs(None, "raw-reader"))
    try:
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        messages: list[Any] = []
        wait_until(lambda: len(messages) >= expected,
                   step=lambda: messages.extend(
                       m for batch in reader.poll(timeout_ms=300).values() for m in batch),
                   what=f"{expected} messages read")
        return messages
    finally:
        reader.close()
