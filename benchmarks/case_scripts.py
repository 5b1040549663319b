"""Synthetic, valid case scripts (seeded): (command name, JSON data) as the CLI reads them.

Shared by append.py (execute, import and as-of benchmarks) and bus_throughput.py (latency commands).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from stdnum.ean import calc_check_digit

from domain.reference import ReferenceData

SWISS = ZoneInfo("Europe/Zurich")
GIVEN = ["Anna", "Luca", "Mia", "Noah", "Lea", "Elias", "Laura", "Jonas", "Sara", "Nico"]
FAMILY = ["Meier", "Müller", "Schmid", "Keller", "Weber", "Huber", "Brunner", "Frei", "Roth"]
STREETS = ["Bahnhofstrasse", "Hauptgasse", "Dorfstrasse", "Baselstrasse", "Gurzelngasse"]
NEEDS = ["financial", "housing", "health", "employment", "childcare", "debt", "language"]
GOALS = ["employment", "education", "health", "housing", "finances", "social"]
MEASURES = ["job_coaching", "language_course", "rav_registration", "qualification"]
CLOSURES = ["employment", "other_insurance", "moved_away", "other"]
TITLES = ["Stelle im ersten Arbeitsmarkt finden", "Deutschkurs B1 abschliessen",
          "Schulden sanieren mit der Budgetberatung", "Wohnung mit tieferer Miete finden"]


def _money(rng: random.Random, low: int, high: int) -> str:
    return f"{rng.randint(low, high)}.{rng.choice(['00', '50', '05', '95'])}"


def _ahvn13(rng: random.Random) -> str:
    digits = "756" + "".join(rng.choice("0123456789") for _ in range(9))
    return digits + calc_check_digit(digits)


def _person(rng: random.Random) -> dict[str, Any]:
    return {
        "person_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "given_name": rng.choice(GIVEN),
        "family_name": rng.choice(FAMILY),
        "ahvn13": _ahvn13(rng),
        "birth_date": date(rng.randint(1950, 2005), rng.randint(1, 12), rng.randint(1, 28))
        .isoformat(),
        "street": f"{rng.choice(STREETS)} {rng.randint(1, 120)}",
        "postal_code": str(rng.randint(4500, 4799)),
        "town": "Solothurn",
    }


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def case_script(
    rng: random.Random, reference: ReferenceData, days: list[date], *, length: int = 10
) -> list[tuple[str, dict[str, Any]]]:
    """A valid command sequence for one case; `days[i]` is the Swiss recording day of command i.

    open, assess, grant, then a cycle of goal/measure/budget/review work, and (for the default
    length of 10) a closure.
    """
    bfs = rng.choice(sorted(reference.municipalities))
    region = reference.municipality(bfs).region_id
    actor = {"user_id": f"cw-{rng.randint(1, 40):03d}", "role": "caseworker",
             "organisation": region}
    case_id = _uuid(rng)
    members = [_person(rng) for _ in range(rng.choice([1, 1, 2, 3]))]
    application = days[0] - timedelta(days=rng.randint(0, 20))
    support_from = application.replace(day=1)

    def base() -> dict[str, Any]:
        return {"actor": actor, "correlation_id": _uuid(rng), "case_id": case_id}

    script: list[tuple[str, dict[str, Any]]] = [
        ("open_case", {
            "actor": actor, "correlation_id": _uuid(rng), "case_id": case_id,
            "municipality_bfs": bfs, "household_size": len(members) + rng.randint(0, 1),
            "applicant": members[0], "other_members": members[1:],
            "application_date": application.isoformat(),
        }),
        ("complete_assessment", {**base(), "needs": rng.sample(NEEDS, rng.randint(1, 3)),
                                 "employability": "partially_employable"}),
        ("grant_support", {**base(), "support_from": support_from.isoformat(),
                           "housing": _money(rng, 900, 1600), "health_insurance":
                           _money(rng, 300, 450), "income": _money(rng, 0, 400)}),
    ]
    goals: list[str] = []
    measures: list[str] = []
    cycle = ["agree_goal", "start_measure", "change_budget", "complete_review",
             "record_goal_outcome", "end_measure"]
    tail = 1 if length == 10 else 0
    i = 0
    while len(script) < length - tail:
        step, day = cycle[i % len(cycle)], days[len(script)]
        i += 1
        if step == "agree_goal":
            goals.append(_uuid(rng))
            script.append(("agree_goal", {
                **base(), "goal_id": goals[-1], "category": rng.choice(GOALS),
                "title": rng.choice(TITLES), "due_date": (day + timedelta(days=120)).isoformat(),
            }))
        elif step == "start_measure":
            measures.append(_uuid(rng))
            script.append(("start_measure", {**base(), "measure_id": measures[-1],
                                             "kind": rng.choice(MEASURES)}))
        elif step == "change_budget":
            script.append(("change_budget", {
                **base(), "effective_date": day.isoformat(), "reason": "income_change",
                "housing": _money(rng, 900, 1600), "health_insurance": _money(rng, 300, 450),
                "income": _money(rng, 0, 600),
            }))
        elif step == "complete_review":
            script.append(("complete_review", {**base(), "outcome": "continue"}))
        elif step == "record_goal_outcome" and goals:
            script.append(("record_goal_outcome", {
                **base(), "goal_id": goals.pop(0), "outcome": rng.choice(["achieved", "missed"]),
            }))
        elif step == "end_measure" and measures:
            if rng.random() < 0.7:
                script.append(("complete_measure", {**base(), "measure_id": measures.pop(0)}))
            else:
                script.append(("break_off_measure", {**base(), "measure_id": measures.pop(0),
                                                     "reason": "no_show"}))
    if tail:
        script.append(("close_case", {**base(), "reason": rng.choice(CLOSURES)}))
    return script


def import_lines(
    rng: random.Random, reference: ReferenceData, cases: int, now: datetime, *, length: int = 10
) -> tuple[list[str], list[datetime]]:
    """JSON Lines history of `cases` cases (in recorded-time order) and each line's time."""
    records: list[tuple[datetime, int, str]] = []
    for _ in range(cases):
        if length == 10:
            start = now - timedelta(days=rng.randint(130, 600), seconds=rng.randint(0, 86_399))
            times = [start]
            for _step in range(length - 1):
                times.append(times[-1] + timedelta(hours=rng.randint(1, 240)))
        else:  # one long case: an event an hour, ending a day ago
            start = now - timedelta(days=1, hours=length)
            times = [start + timedelta(hours=k) for k in range(length)]
        days = [t.astimezone(SWISS).date() for t in times]
        script = case_script(rng, reference, days, length=length)
        for seq, (at, (name, data)) in enumerate(zip(times, script, strict=True)):
            line = json.dumps({"recorded_at": at.isoformat(), "command": name, "data": data})
            records.append((at, seq, line))
    records.sort(key=lambda r: (r[0], r[1]))
    return [line for _, _, line in records], [at for at, _, _ in records]

def interleaved(cases: list[list[Any]]) -> Iterator[tuple[int, int, Any]]:
    """Step 0 of every case, then step 1 of every case… (many cases worked on at once)."""
    for step in range(max(len(case) for case in cases)):
        for index, case in enumerate(cases):
            if step < len(case):
                yield index, step, case[step]
