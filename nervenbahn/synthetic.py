"""A deterministic synthetic canton: households and their case histories as legacy records.

Every record is a command with its original recorded time, in the JSON Lines import format
(see docs/import.md). The persons are invented; their AHV numbers are valid but random.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from stdnum import ean

from domain.case import SWISS_TIME
from domain.reference import ReferenceData

__all__ = [
    "FAMILY", "GIVEN", "PERIOD_END", "PERIOD_START", "STREETS", "synthetic_history",
    "synthetic_person",
]

PERIOD_START = date(2024, 10, 1)
PERIOD_END = date(2026, 9, 30)

GIVEN = [
    "Anna",
    "Luca",
    "Mia",
    "Noah",
    "Lea",
    "Elias",
    "Lena",
    "Leon",
    "Sara",
    "Levin",
    "Laura",
    "Nico",
    "Elena",
    "Jonas",
    "Nina",
    "David",
    "Alina",
    "Samuel",
    "Emma",
    "Liam",
    "Fatima",
    "Mehmet",
    "Ana",
    "Luan",
    "Aylin",
    "Marco",
    "Giulia",
    "Tiago",
    "Zoe",
    "Arian",
]
FAMILY = [
    "Müller",
    "Meier",
    "Schmid",
    "Keller",
    "Weber",
    "Huber",
    "Schneider",
    "Meyer",
    "Steiner",
    "Fischer",
    "Gerber",
    "Brunner",
    "Baumann",
    "Frei",
    "Zimmermann",
    "Moser",
    "Widmer",
    "Wyss",
    "Graf",
    "Roth",
    "Kaufmann",
    "Studer",
    "Hofer",
    "Bühler",
    "Rossi",
    "Ferreira",
    "Krasniqi",
    "Yilmaz",
    "Berisha",
    "Da Silva",
]
STREETS = [
    "Hauptstrasse",
    "Bahnhofstrasse",
    "Dorfstrasse",
    "Kirchweg",
    "Gartenstrasse",
    "Schulstrasse",
    "Bergstrasse",
    "Aareweg",
    "Juraweg",
    "Lindenstrasse",
]
CLOSURE_REASONS = (
    ["employment"] * 35
    + ["other_insurance"] * 20
    + ["moved_away"] * 15
    + ["death"] * 5
    + ["other"] * 25
)


@dataclass
class _Story:
    """The records of one household's case, built in time order."""

    rng: random.Random
    case_id: str
    region: str
    records: list[dict[str, Any]] = field(default_factory=list)
    last: datetime | None = None

    def emit(self, day: date, command: str, data: dict[str, Any], delay_days: int = 0) -> bool:
        """Append a record recorded on `day` (+ delay); False if that lies after the period."""
        moment = datetime.combine(
            day + timedelta(days=delay_days),
            time(self.rng.randint(7, 17), self.rng.randint(0, 59)),
            tzinfo=SWISS_TIME,
        )
        if self.last is not None and moment <= self.last:
            moment = self.last + timedelta(minutes=1)
        if moment.date() > PERIOD_END:
            return False
        self.last = moment
        payload = {"actor": self.actor(), "correlation_id": str(self.uuid()), **data}
        if command != "open_case":
            payload["case_id"] = self.case_id
        self.records.append(
            {"recorded_at": moment.isoformat(), "command": command, "data": payload}
        )
        return True

    def actor(self) -> dict[str, str]:
        short = self.region.removeprefix("so-")
        return {
            "user_id": f"cw-{short}-{self.rng.randint(1, 4):02d}",
            "role": "caseworker",
            "organisation": self.region,
        }

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)


def synthetic_history(
    reference: ReferenceData, households: int, seed: int
) -> Iterator[dict[str, Any]]:
    """All records of `households` synthetic cases, ordered by recorded time."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not cryptography
    municipalities = sorted(reference.municipalities)
    records: list[dict[str, Any]] = []
    for _ in range(households):
        records.extend(_household(rng, reference, rng.choice(municipalities)))
    records.sort(key=lambda record: record["recorded_at"])
    yield from records


def _household(rng: random.Random, reference: ReferenceData, bfs: int) -> list[dict[str, Any]]:
    region = reference.municipality(bfs).region_id
    story = _Story(rng, "", region)
    story.case_id = str(story.uuid())
    size = rng.choices([1, 2, 3, 4, 5, 6], weights=[45, 20, 14, 12, 6, 3])[0]
    applied = PERIOD_START + timedelta(days=rng.randint(0, (PERIOD_END - PERIOD_START).days - 5))
    town = reference.municipality(bfs).name
    members = [synthetic_person(rng, town) for _ in range(1 if size == 1 else rng.randint(1, 2))]
    story.emit(
        applied,
        "open_case",
        {
            "case_id": story.case_id,
            "municipality_bfs": bfs,
            "household_size": size,
            "household_structure": _structure(story.case_id, size),
            "applicant": members[0],
            "other_members": members[1:],
            "application_date": applied.isoformat(),
        },
    )
    day = applied
    earliest: date | None = None  # support of a reopened case starts after its closing
    while True:
        granted = _assess_and_decide(story, day, size, applied, earliest)
        if granted is None:
            break
        closed = _casework(story, reference, granted, size)
        if closed is None or rng.random() > 0.12:
            break
        day = closed + timedelta(days=rng.randint(30, 120))
        applied, earliest = day, closed + timedelta(days=1)
        if not story.emit(
            day, "reopen_case", {"reason": "reapplication", "reopening_date": day.isoformat()}
        ):
            break
    return story.records


def _structure(case_id: str, size: int) -> str:
    """A plausible household structure (BFS case type) for a household of `size` persons.

    Drawn from a generator of its own, seeded by the case id, so that the demo's main random
    stream (and every synthetic history made before CaseOpened v2) stays as it was.
    """
    if size == 1:
        return "one_person"
    rng = random.Random(case_id)  # noqa: S311 - synthetic data, not cryptography
    if size == 2:
        return rng.choices(["single_parent", "couple_without_children", "other"], [6, 3, 1])[0]
    return rng.choices(["couple_with_children", "single_parent", "other"], [6, 3, 1])[0]


def _assess_and_decide(
    story: _Story, day: date, size: int, applied: date, earliest: date | None = None
) -> date | None:
    """Assessment and decision; the day support starts, or None if the story ends here.

    Support starts on the first of the month of the application, but not before `earliest`
    (the day after a reopened case's closing: `budget-within-support`)."""
    rng = story.rng
    if rng.random() < 0.04:
        return None  # still in intake
    day += timedelta(days=rng.randint(3, 20))
    needs = rng.sample(
        ["financial", "housing", "health", "employment", "childcare", "debt"], rng.randint(1, 3)
    )
    employability = rng.choice(["employable", "partially_employable", "not_employable"])
    if (
        not story.emit(
            day,
            "complete_assessment",
            {"needs": needs, "employability": employability, "assessment_date": day.isoformat()},
        )
        or rng.random() < 0.04
    ):
        return None  # assessed, awaiting the decision
    day += timedelta(days=rng.randint(2, 15))
    if rng.random() < 0.12:
        reasons = rng.sample(["income_sufficient", "assets_above_limit", "documents_missing"], 1)
        story.emit(day, "refuse_support", {"reasons": reasons, "decision_date": day.isoformat()})
        if rng.random() < 0.6:
            close_day = day + timedelta(days=rng.randint(5, 30))
            story.emit(
                close_day, "close_case", {"reason": "other", "closing_date": close_day.isoformat()}
            )
        return None
    if not story.emit(
        day,
        "grant_support",
        {
            "support_from": max(applied.replace(day=1), earliest or applied.replace(day=1))
            .isoformat(),
            **_budget_inputs(rng, size),
            "decision_date": day.isoformat(),
        },
    ):
        return None
    return day


def _casework(story: _Story, reference: ReferenceData, granted: date, size: int) -> date | None:
    """Goals, measures, budget changes, reviews, a handover and perhaps the closure."""
    rng = story.rng
    actions: list[tuple[date, str, dict[str, Any], int]] = []
    if rng.random() < 0.85:
        for _ in range(rng.randint(1, 3)):
            agreed = granted + timedelta(days=rng.randint(7, 30))
            due = agreed + timedelta(days=rng.randint(60, 240))
            goal_id = str(story.uuid())
            category = rng.choice(
                ["employment", "education", "health", "housing", "finances", "social"]
            )
            actions.append(
                (
                    agreed,
                    "agree_goal",
                    {
                        "goal_id": goal_id,
                        "category": category,
                        "title": f"{category} goal",
                        "due_date": due.isoformat(),
                        "agreed_on": agreed.isoformat(),
                    },
                    0,
                )
            )
            outcome = rng.choices(["achieved", "missed", None], weights=[55, 30, 15])[0]
            if outcome:
                actions.append(
                    (
                        due,
                        "record_goal_outcome",
                        {"goal_id": goal_id, "outcome": outcome, "outcome_date": due.isoformat()},
                        0,
                    )
                )
    if rng.random() < 0.7:
        for _ in range(rng.randint(1, 2)):
            start = granted + timedelta(days=rng.randint(10, 60))
            measure_id = str(story.uuid())
            kind = rng.choice(
                [
                    "job_coaching",
                    "language_course",
                    "rav_registration",
                    "qualification",
                    "social_integration",
                ]
            )
            actions.append(
                (
                    start,
                    "start_measure",
                    {"measure_id": measure_id, "kind": kind, "start_date": start.isoformat()},
                    0,
                )
            )
            end = start + timedelta(days=rng.randint(30, 180))
            ending = rng.choices(
                ["complete_measure", "break_off_measure", None], weights=[60, 25, 15]
            )[0]
            if ending == "complete_measure":
                actions.append(
                    (end, ending, {"measure_id": measure_id, "end_date": end.isoformat()}, 0)
                )
            elif ending:
                actions.append(
                    (
                        end,
                        ending,
                        {
                            "measure_id": measure_id,
                            "end_date": end.isoformat(),
                            "reason": rng.choice(["no_show", "health", "unsuitable"]),
                        },
                        0,
                    )
                )
    for _ in range(rng.choices([0, 1, 2, 3], weights=[40, 30, 20, 10])[0]):
        effective = granted + timedelta(days=rng.randint(20, 500))
        reason = rng.choice(["income_change", "rent_change", "premium_change", "correction"])
        actions.append(
            (
                effective,
                "change_budget",
                {
                    "effective_date": effective.isoformat(),
                    "reason": reason,
                    **_budget_inputs(rng, size),
                },
                rng.randint(3, 60),
            )
        )
    review = granted
    for _ in range(2):
        review += timedelta(days=rng.randint(300, 365))
        actions.append(
            (
                review,
                "complete_review",
                {"outcome": rng.choice(["continue", "adjust"]), "review_date": review.isoformat()},
                0,
            )
        )
    if rng.random() < 0.06:
        day = granted + timedelta(days=rng.randint(30, 300))
        actions.append(
            (
                day,
                "hand_over_case",
                {
                    "to_municipality_bfs": _elsewhere(rng, reference, story.region),
                    "effective_date": day.isoformat(),
                },
                0,
            )
        )
    closed: date | None = None
    if rng.random() < 0.45:
        closed = granted + timedelta(days=rng.randint(60, 540))
        actions.append(
            (
                closed,
                "close_case",
                {"reason": rng.choice(CLOSURE_REASONS), "closing_date": closed.isoformat()},
                0,
            )
        )
    return _play(story, reference, actions, closed)


def _play(
    story: _Story,
    reference: ReferenceData,
    actions: list[tuple[date, str, dict[str, Any], int]],
    closed: date | None,
) -> date | None:
    for day, command, data, delay in sorted(actions, key=lambda action: action[0]):
        if closed is not None and day > closed:
            break
        if not story.emit(day, command, data, delay):
            return None
        if command == "hand_over_case":
            story.region = reference.municipality(data["to_municipality_bfs"]).region_id
        if command == "close_case":
            return day
    return None


def _budget_inputs(rng: random.Random, size: int) -> dict[str, str]:
    housing = Decimal(rng.randrange(700, 1800 + 150 * size, 10))
    premium = Decimal(rng.randrange(280, 480)) * min(size, 4)
    income = Decimal(rng.choice([0, 0, 0, rng.randrange(200, 1500, 10)]))
    return {
        "housing": f"{housing}.00",
        "health_insurance": f"{premium}.00",
        "income": f"{income}.00",
    }


def _elsewhere(rng: random.Random, reference: ReferenceData, region: str) -> int:
    candidates = sorted(bfs for bfs, m in reference.municipalities.items() if m.region_id != region)
    return rng.choice(candidates)


def synthetic_person(
    rng: random.Random, town: str, born_from: date = date(1950, 1, 1), years: int = 55
) -> dict[str, Any]:
    """An invented person of `town` (import format), born within `years` from `born_from`:
    names from the lists above, a valid but random AHV number."""
    digits = "756" + "".join(str(rng.randint(0, 9)) for _ in range(9))
    ahvn13 = digits + ean.calc_check_digit(digits)
    born = born_from + timedelta(days=rng.randint(0, 365 * years))
    return {
        "person_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "given_name": rng.choice(GIVEN),
        "family_name": rng.choice(FAMILY),
        "ahvn13": ahvn13,
        "birth_date": born.isoformat(),
        "street": f"{rng.choice(STREETS)} {rng.randint(1, 120)}",
        "postal_code": str(rng.randint(4500, 4799)),
        "town": town,
    }
