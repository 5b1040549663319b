"""Synthetic EL and IPV applications of the demo canton, with a realistic backlog.

Every record is a benefits command (`domain.benefit_commands`) with the time it is to be
recorded at, in the shape of the case import records: `{"recorded_at", "command", "data"}`.
Who applies (DOMAIN.md, "The compensation fund (AKSO), its branch offices and EL"):
- pensioners at the branch office of their municipality (EL to AHV), and residents asking for a
  premium reduction (IPV); invented persons like the cases' (`synthetic_person`);
- about one in ten social-assistance households still supported at the end of the case
  history (a cantonal councillor put advances in view of EL at about 10 % of the cases): the
  case's applicant applies for EL (to AHV from 65, else to IV) at the office of the case's
  municipality. `SyntheticBenefits.advances` links such an application to its case; the
  domain has no case field on an application, the person id is the link it records.

The backlog follows the AKSO crisis as reported: many applications wait for documents the
applicant has not yet sent (about three quarters of the late ones), the fund often misses the
three-month target, some applications are pending for over six months. Branch offices check,
request and record documents and forward; fund officers decide with monthly amounts (invented
but plausible CHF, not an EL calculation), refuse some; a few are withdrawn. The fund delegates
recording received documents and completeness checks on forwarded applications to a few
offices for some weeks; some delegations are revoked, the others expire.

Deterministic for a seed and a `today`, from a generator of its own: the case history's random
sequence stays as it was. Nothing is recorded on or after `today` (the last records fall on the
day before).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from domain.case import SWISS_TIME
from domain.reference import BranchOffice, ReferenceData, load_benefit_checklists
from nervenbahn.synthetic import synthetic_person

__all__ = [
    "ADVANCE_SHARE",
    "HISTORY_DAYS",
    "IPV_PER_HOUSEHOLD",
    "PENSIONERS_PER_HOUSEHOLD",
    "SyntheticBenefits",
    "synthetic_benefits",
]

HISTORY_DAYS = 400
"""Applications are received over this many days before `today`: the 26 weeks the backlog
figures show, and the months before them whose applications are still pending in them."""
ADVANCE_SHARE = 0.10
"""Share of the supported social-assistance households whose applicant applies for EL."""
PENSIONERS_PER_HOUSEHOLD = 0.08
"""EL-to-AHV applications of pensioners outside social assistance, per synthetic household."""
IPV_PER_HOUSEHOLD = 0.04
"""Premium-reduction applications per synthetic household."""
MONTHLY_CHF = {"el_ahv": (300, 2400), "el_iv": (400, 2200), "ipv": (60, 420)}
"""Invented monthly amounts by kind (CHF, whole francs): synthetic, not an EL calculation."""
FUND = {"role": "fund_officer", "organisation": "akso"}
OFFICE_TASKS = ("documents_received", "completeness_check")


@dataclass
class SyntheticBenefits:
    """The records to play in order, and which application is an advance case's."""

    records: list[dict[str, Any]]
    advances: dict[str, str] = field(default_factory=dict)
    """Application id -> id of the social-assistance case whose applicant applied for EL
    (the case advances living costs in view of EL)."""


@dataclass(frozen=True)
class _Delegation:
    id: str
    office: str
    task: str
    valid_from: date
    valid_until: date
    revoked_on: date | None

    def active(self, day: date) -> bool:
        if self.revoked_on is not None and day >= self.revoked_on:
            return False
        return self.valid_from <= day <= self.valid_until


@dataclass
class _Clerk:
    """Emits one aggregate's records in time order, none on or after `today`."""

    rng: random.Random
    today: date
    records: list[dict[str, Any]]
    last: datetime | None = None

    def emit(self, day: date, command: str, actor: dict[str, str], data: dict[str, Any]) -> bool:
        """Append a record on `day`; False (nothing appended) if `day` is not before today."""
        if day >= self.today:
            return False
        moment = datetime.combine(
            day, time(self.rng.randint(7, 16), self.rng.randint(0, 59)), tzinfo=SWISS_TIME)
        if self.last is not None and moment <= self.last:
            moment = self.last + timedelta(minutes=1)
        self.last = moment
        self.records.append({
            "recorded_at": moment.isoformat(), "command": command,
            "data": {"actor": actor, "correlation_id": str(_uuid(self.rng)), **data},
        })
        return True


def synthetic_benefits(
    reference: ReferenceData,
    offices: Mapping[str, BranchOffice],
    history: Iterable[dict[str, Any]],
    today: date,
    seed: int,
) -> SyntheticBenefits:
    """EL and IPV applications and the fund's delegations up to the day before `today`, for
    the canton whose case history (`synthetic_history` records) is `history`."""
    rng = random.Random(f"benefits-{seed}")  # noqa: S311 - synthetic data, not cryptography
    cases, households = _supported_cases(history)
    served = sorted(bfs for office in offices.values() for bfs in office.municipalities
                    if bfs in reference.municipalities)
    out = SyntheticBenefits([])
    delegations = _delegations(rng, offices, today, out.records)
    applicants: list[tuple[str, dict[str, Any], int, date, str | None]] = []
    for case_id, (person, bfs, supported_from) in cases.items():
        if rng.random() < ADVANCE_SHARE:
            first = max(supported_from + timedelta(days=14), today - timedelta(HISTORY_DAYS))
            if first < today:
                received = _day_between(rng, first, today)
                kind = "el_ahv" if _age(person, received) >= 65 else "el_iv"
                applicants.append((kind, person, bfs, received, case_id))
    for kind, share, born_from, years in (("el_ahv", PENSIONERS_PER_HOUSEHOLD, 1930, 30),
                                          ("ipv", IPV_PER_HOUSEHOLD, 1940, 65)):
        for _ in range(round(households * share)):
            bfs = rng.choice(served)
            person = synthetic_person(rng, reference.municipality(bfs).name,
                                      date(born_from, 1, 1), years)
            received = _day_between(rng, today - timedelta(HISTORY_DAYS), today)
            applicants.append((kind, person, bfs, received, None))
    for kind, person, bfs, received, advancing in applicants:
        office = next(o for o in offices.values() if bfs in o.municipalities)
        application_id = _application(rng, out.records, today, delegations, office.id,
                                      kind, person, bfs, received)
        if advancing is not None:
            out.advances[application_id] = advancing
    out.records.sort(key=lambda record: datetime.fromisoformat(record["recorded_at"]))
    return out


def _supported_cases(
    history: Iterable[dict[str, Any]],
) -> tuple[dict[str, tuple[dict[str, Any], int, date]], int]:
    """Cases supported at the end of the history: applicant, municipality, support start;
    and the number of households (cases)."""
    state: dict[str, list[Any]] = {}  # case id -> [applicant, bfs, phase, support start]
    for record in history:
        data, command = record["data"], record["command"]
        if command == "open_case":
            state[data["case_id"]] = [data["applicant"], data["municipality_bfs"], "intake", None]
            continue
        case = state[data["case_id"]]
        if command == "hand_over_case":
            case[1] = data["to_municipality_bfs"]
        elif command == "grant_support":
            case[2], case[3] = "supported", date.fromisoformat(data["decision_date"])
        elif command in ("refuse_support", "close_case", "reopen_case"):
            case[2] = command
    supported = {case_id: (case[0], case[1], case[3]) for case_id, case in state.items()
                 if case[2] == "supported"}
    return supported, len(state)


def _delegations(rng: random.Random, offices: Mapping[str, BranchOffice], today: date,
                 records: list[dict[str, Any]]) -> dict[str, list[_Delegation]]:
    """The fund delegates both completing tasks to eight of the sixteen offices serving the
    most municipalities, for six to sixteen weeks."""
    by_office: dict[str, list[_Delegation]] = {}
    largest = sorted(offices, key=lambda o: (-len(offices[o].municipalities), o))[:16]
    for office in rng.sample(largest, k=min(8, len(largest))):
        valid_from = today - timedelta(days=rng.randint(40, 170))
        valid_until = valid_from + timedelta(days=rng.randint(42, 112))
        revoked = (valid_from + timedelta(days=rng.randint(14, 40))
                   if rng.random() < 0.25 else None)
        for task in OFFICE_TASKS:
            clerk = _Clerk(rng, today, records)
            delegation = _Delegation(str(_uuid(rng)), office, task, valid_from, valid_until,
                                     revoked)
            fund = _fund(rng)
            clerk.emit(valid_from - timedelta(days=rng.randint(1, 7)), "grant_delegation", fund,
                       {"delegation_id": delegation.id, "branch_office": office, "task": task,
                        "valid_from": valid_from.isoformat(),
                        "valid_until": valid_until.isoformat()})
            if revoked is not None:
                clerk.emit(revoked, "revoke_delegation", fund,
                           {"delegation_id": delegation.id,
                            "reason": "the fund's own backlog on these tasks is cleared"})
            else:
                clerk.emit(valid_until + timedelta(days=rng.randint(1, 3)), "expire_delegation",
                           fund, {"delegation_id": delegation.id})
            by_office.setdefault(office, []).append(delegation)
    return by_office


def _application(rng: random.Random, records: list[dict[str, Any]], today: date,
                 delegations: dict[str, list[_Delegation]], office: str, kind: str,
                 person: dict[str, Any], bfs: int, received: date) -> str:
    """One application's records from receipt to decision (or as far as `today`)."""
    application_id = str(_uuid(rng))
    clerk = _Clerk(rng, today, records)
    staff = {"user_id": f"zs-{office.removeprefix('akso-')}-{rng.randint(1, 3):02d}",
             "role": "branch_office", "organisation": office}
    steps = sorted(_steps(rng, kind, staff, delegations.get(office, []), received),
                   key=lambda step: step[0])
    withdrawn = received + timedelta(days=rng.randint(5, 150)) if rng.random() < 0.03 else None
    on_app = {"application_id": application_id}
    clerk.emit(received, "receive_application", staff,
               {**on_app, "kind": kind, "municipality_bfs": bfs, "applicant": person,
                "received_on": received.isoformat()})
    for day, command, actor, data in steps:
        if withdrawn is not None and day >= withdrawn:
            clerk.emit(withdrawn, "withdraw_application", staff,
                       {**on_app, "reason": rng.choice(["applicant_request", "moved_away"])})
            break
        if not clerk.emit(day, command, actor, {**on_app, **data}):
            break
    return application_id


Step = tuple[date, str, dict[str, str], dict[str, Any]]


def _steps(rng: random.Random, kind: str, staff: dict[str, str],
           delegations: list[_Delegation], received: date) -> list[Step]:
    """The planned steps after receipt (cut at today by the caller). A forwarded
    application's completeness is reviewed by its office if the fund delegated that to it."""
    codes = [document.code for document in load_benefit_checklists()[kind]]
    checked = received + timedelta(days=rng.randint(0, 6))
    missing = ([] if rng.random() < 0.35 else
               sorted(rng.sample(codes[1:], k=rng.randint(1, min(3, len(codes) - 1)))))
    steps: list[Step] = [(checked, "check_completeness", staff,
                          {"documents_present": [c for c in codes if c not in missing]})]
    arrival: date | None = None
    complete = checked
    forwarded = checked + timedelta(days=rng.randint(1, 10))
    override = False
    if missing:
        asked = checked + timedelta(days=rng.randint(0, 3))
        steps.append((asked, "request_documents", staff,
                      {"documents": missing, "due_on": (asked + timedelta(30)).isoformat()}))
        draw = rng.random()
        arrival = (asked + timedelta(days=rng.randint(5, 45)) if draw < 0.5 else
                   asked + timedelta(days=rng.randint(46, 220)) if draw < 0.75 else None)
        late = arrival is None or arrival > asked + timedelta(60)
        override = late and rng.random() < 0.7
        if override:
            forwarded = asked + timedelta(days=rng.randint(60, 90))
            override = arrival is None or arrival > forwarded
        if not override:
            if arrival is None:
                return steps  # waiting at the branch office for documents that do not come
            forwarded = arrival + timedelta(days=rng.randint(1, 10))
        complete = arrival or forwarded
    if arrival is not None and not override:
        steps.append((arrival, "record_documents_received", staff,
                      {"documents": missing, "received_on": arrival.isoformat()}))
    steps.append((forwarded, "forward_application", staff,
                  {"override_reason": "documents follow; the fund pursues them"}
                  if override else {}))
    review = forwarded + timedelta(days=rng.randint(1, 5))
    reviewers = [d for d in delegations if d.task == "completeness_check" and d.active(review)]
    if reviewers and (arrival is None or not override or review < arrival):
        present = [c for c in codes if not override or c not in missing]
        steps.append((review, "check_completeness", staff,
                      {"documents_present": present, "delegation_id": reviewers[0].id}))
    if override and arrival is not None:
        steps.extend(_completed_at_fund(rng, staff, delegations, missing, codes, arrival))
    decided = max(forwarded, complete) + timedelta(days=_processing_days(rng))
    if override and arrival is None:
        if rng.random() < 0.4:
            return steps  # the fund still waits for the documents
        decided = forwarded + timedelta(days=rng.randint(90, 200))
        return [*steps, (decided, "refuse_benefit", _fund(rng), {"reason": "documents_missing"})]
    return [*steps, _decision(rng, kind, received, decided)]


def _completed_at_fund(rng: random.Random, staff: dict[str, str],
                       delegations: list[_Delegation], missing: list[str], codes: list[str],
                       arrival: date) -> list[Step]:
    """Documents arriving after forwarding: recorded and checked by the fund, or by the branch
    office under a delegation active that day."""
    steps: list[Step] = []
    for task, command, data in (
        ("documents_received", "record_documents_received",
         {"documents": missing, "received_on": arrival.isoformat()}),
        ("completeness_check", "check_completeness", {"documents_present": codes}),
    ):
        live = [d for d in delegations if d.task == task and d.active(arrival)]
        if live:
            steps.append((arrival, command, staff, {**data, "delegation_id": live[0].id}))
        else:
            steps.append((arrival, command, _fund(rng), data))
    return steps


def _processing_days(rng: random.Random) -> int:
    """The fund's days from a complete forwarded application to its decision: often more
    than the three-month target in the crisis."""
    draw = rng.random()
    if draw < 0.75:
        return rng.randint(10, 60)
    return rng.randint(61, 100) if draw < 0.95 else rng.randint(101, 180)


def _decision(rng: random.Random, kind: str, received: date, decided: date) -> Step:
    """Granted from the month of the application (ELG Art. 12) or refused."""
    if rng.random() < 0.28:
        reason = rng.choices(["income_sufficient", "assets_above_limit", "other"],
                             [55, 35, 10])[0]
        return decided, "refuse_benefit", _fund(rng), {"reason": reason}
    low, high = MONTHLY_CHF[kind]
    monthly = Decimal(rng.randrange(low, high, 5))
    from_month = received.replace(day=1)
    amounts = [{"from_month": f"{from_month:%Y-%m}", "monthly_chf": f"{monthly}.00"}]
    new_year = date(decided.year, 1, 1)
    if new_year > from_month:  # the amounts of the new year (adjusted premiums and rents)
        adjusted = (monthly * Decimal(rng.choice(["1.01", "1.02", "1.03"]))).quantize(
            Decimal("1"))
        amounts.append({"from_month": f"{new_year:%Y-%m}", "monthly_chf": f"{adjusted}.00"})
    return decided, "grant_benefit", _fund(rng), {"from_month": f"{from_month:%Y-%m}",
                                                  "amounts": amounts}


def _fund(rng: random.Random) -> dict[str, str]:
    return {"user_id": f"akso-{rng.randint(1, 12):02d}", **FUND}


def _age(person: dict[str, Any], day: date) -> int:
    born = date.fromisoformat(person["birth_date"])
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _day_between(rng: random.Random, first: date, end: date) -> date:
    """A day from `first` up to the day before `end`."""
    return first + timedelta(days=rng.randint(0, max(0, (end - first).days - 1)))


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)
