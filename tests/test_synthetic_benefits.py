"""The demo canton's synthetic EL and IPV applications: deterministic for a seed, every command
valid, the backlog within the bounds the module states, invented persons only."""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from datetime import date, datetime, timedelta
from functools import cache
from uuid import UUID

import pytest
from stdnum.ch import ssn

from domain.application.benefits import BenefitService
from domain.benefits import BenefitApplication
from domain.case import SWISS_TIME
from domain.personal_data import PersonalDataVault
from domain.reference import load_branch_offices, load_reference_data
from nervenbahn.demo_benefits import (
    PENDING_STAGES,
    ReplayClock,
    benefit_figures,
    months_before,
    record_benefits,
)
from nervenbahn.synthetic import FAMILY, GIVEN, synthetic_history
from nervenbahn.synthetic_benefits import (
    ADVANCE_SHARE,
    IPV_PER_HOUSEHOLD,
    PENSIONERS_PER_HOUSEHOLD,
    SyntheticBenefits,
    synthetic_benefits,
)

from .domain.case_desk import MASTER_KEY, POPO_ENV
from .domain.fakes import InMemoryKeyStore

TODAY = date(2026, 12, 6)
HOUSEHOLDS = 2500
SEED = 2026
REFERENCE = load_reference_data()
OFFICES = load_branch_offices()


@cache
def _history(seed: int) -> tuple[dict, ...]:
    return tuple(synthetic_history(REFERENCE, HOUSEHOLDS, seed))


def _made(seed: int = SEED) -> SyntheticBenefits:
    return synthetic_benefits(REFERENCE, OFFICES, _history(seed), TODAY, seed)


@cache
def _recorded() -> tuple[SyntheticBenefits, BenefitService, list[BenefitApplication]]:
    """Every generated command executed by an in-memory benefits service at its time."""
    made = _made()
    clock = ReplayClock(datetime.now(SWISS_TIME))
    service = BenefitService(POPO_ENV, vault=PersonalDataVault(InMemoryKeyStore(), MASTER_KEY),
                             reference=REFERENCE, offices=OFFICES, clock=clock)
    assert record_benefits(service, clock, made.records) == len(made.records)
    applications = [service.application(UUID(r["data"]["application_id"]))
                    for r in made.records if r["command"] == "receive_application"]
    return made, service, applications


def test_same_seed_and_day_give_the_same_records_and_the_case_history_is_unchanged() -> None:
    before = json.dumps(_history(SEED))
    first, again = _made(), _made()
    assert json.dumps(first.records) == json.dumps(again.records)
    assert first.advances == again.advances
    assert json.dumps(list(synthetic_history(REFERENCE, HOUSEHOLDS, SEED))) == before
    assert json.dumps(_made(SEED + 1).records) != json.dumps(first.records)


def test_every_generated_command_is_recorded_in_time_order_before_today() -> None:
    made, service, applications = _recorded()  # record_benefits raises on any refusal
    times = [datetime.fromisoformat(r["recorded_at"]) for r in made.records]
    assert times == sorted(times)
    assert max(times).date() < TODAY
    assert service.max_position() >= len(made.records)
    assert {a.kind for a in applications} == {"el_ahv", "el_iv", "ipv"}
    commands = Counter(r["command"] for r in made.records)
    for name in ("forward_application", "grant_benefit", "refuse_benefit",
                 "withdraw_application", "request_documents", "record_documents_received",
                 "grant_delegation", "revoke_delegation", "expire_delegation"):
        assert commands[name] > 0, name


@pytest.mark.parametrize(("seed", "today"), [(1, date(2026, 3, 30)), (7, date(2027, 1, 4)),
                                            (99, date(2026, 10, 25))])
def test_other_seeds_and_days_are_recorded_without_a_refusal(seed: int, today: date) -> None:
    history = list(synthetic_history(REFERENCE, 600, seed))
    made = synthetic_benefits(REFERENCE, OFFICES, history, today, seed)
    clock = ReplayClock(datetime.now(SWISS_TIME))
    service = BenefitService(POPO_ENV, vault=PersonalDataVault(InMemoryKeyStore(), MASTER_KEY),
                             reference=REFERENCE, offices=OFFICES, clock=clock)
    assert record_benefits(service, clock, made.records) == len(made.records) > 100


def test_volumes_follow_the_stated_shares() -> None:
    made, _, applications = _recorded()
    supported = _supported_case_ids()
    assert set(made.advances.values()) <= supported
    share = len(made.advances) / len(supported)
    assert ADVANCE_SHARE * 0.7 <= share <= ADVANCE_SHARE * 1.3
    pensioners = sum(1 for a in applications if a.kind == "el_ahv") - sum(
        1 for i in made.advances if _kind(applications, i) == "el_ahv")
    assert pensioners == round(HOUSEHOLDS * PENSIONERS_PER_HOUSEHOLD)
    assert sum(1 for a in applications if a.kind == "ipv") == round(HOUSEHOLDS * IPV_PER_HOUSEHOLD)


def test_an_advance_application_is_the_case_applicants_in_the_cases_municipality() -> None:
    made, _, applications = _recorded()
    opened = {r["data"]["case_id"]: r["data"] for r in _history(SEED)
              if r["command"] == "open_case"}
    municipality = {case_id: data["municipality_bfs"] for case_id, data in opened.items()}
    for record in _history(SEED):
        if record["command"] == "hand_over_case":
            municipality[record["data"]["case_id"]] = record["data"]["to_municipality_bfs"]
    by_id = {str(a.id): a for a in applications}
    for application_id, case_id in made.advances.items():
        application = by_id[application_id]
        case = opened[case_id]
        assert str(application.applicant.person_id) == case["applicant"]["person_id"]
        assert application.municipality_bfs == municipality[case_id]
        assert application.kind in ("el_ahv", "el_iv")
        born = date.fromisoformat(case["applicant"]["birth_date"])
        assert (application.kind == "el_ahv") == (_age(born, application.received_on) >= 65)


def test_the_backlog_is_the_crisis_one() -> None:
    """Many late ones wait for documents (about three quarters), some are pending for over
    six months, the three-month target is often missed; most are decided, some refused,
    a few withdrawn."""
    _, _, applications = _recorded()
    figures = benefit_figures(applications, TODAY)
    late = figures.pending_over_3_months.total()
    pending = sum(1 for a in applications if a.stage in PENDING_STAGES)
    assert late >= 20
    assert 0.6 <= figures.late_waiting_for_documents.total() / late <= 0.9
    assert 0.1 <= figures.pending_over_6_months.total() / pending <= 0.4
    window = TODAY - timedelta(weeks=26)
    days = [(a.decided_on - a.received_on).days for a in applications
            if a.decided_on is not None and a.decided_on >= window]
    within = [d for d in days if d <= 92]  # three months
    assert 0.4 <= len(within) / len(days) <= 0.75
    assert statistics.quantiles(days, n=10)[-1] > 92  # p90 beyond the target
    stages = Counter(a.stage for a in applications)
    total = len(applications)
    assert 0.15 <= stages["refused"] / (stages["refused"] + stages["granted"]) <= 0.45
    assert 0 < stages["withdrawn"] / total <= 0.06
    assert all(a.received_on >= TODAY - timedelta(days=400) for a in applications)


def test_grants_have_plausible_monthly_amounts_from_the_month_of_the_application() -> None:
    _, _, applications = _recorded()
    granted = [a for a in applications if a.stage == "granted"]
    assert granted
    for application in granted:
        assert application.granted_from == application.received_on.replace(day=1)
        for period in application.schedule:
            assert 50 <= period.monthly_chf <= 2500, period
            assert period.monthly_chf == period.monthly_chf.quantize(period.monthly_chf)


def test_offices_act_on_forwarded_applications_under_live_delegations() -> None:
    _, service, _ = _recorded()
    actions = service.delegated_actions()
    assert len(actions) >= 5
    assert {a.event for a in actions} <= {"CompletenessChecked", "DocumentsReceived"}
    for action in actions:
        delegation = service.delegation(action.delegation_id)
        assert delegation.branch_office == action.branch_office
        day = action.recorded_at.astimezone(SWISS_TIME).date()
        assert delegation.valid_from <= day <= delegation.valid_until


def test_applicants_are_invented_persons() -> None:
    made, _, _ = _recorded()
    persons = [r["data"]["applicant"] for r in made.records
               if r["command"] == "receive_application"]
    assert len({p["person_id"] for p in persons}) == len(persons)
    for person in persons:
        assert person["given_name"] in GIVEN and person["family_name"] in FAMILY
        assert ssn.is_valid(person["ahvn13"])
        assert re.fullmatch(r"[A-Za-zäöüÄÖÜ ]+ \d{1,3}", person["street"])
    text = json.dumps(made.records)
    assert "@" not in text  # no e-mail addresses or other contact data


def _supported_case_ids() -> set[str]:
    phase: dict[str, str] = {}
    for record in _history(SEED):
        case_id = record["data"]["case_id"]
        if record["command"] in ("open_case", "grant_support", "refuse_support", "close_case",
                                 "reopen_case"):
            phase[case_id] = record["command"]
    return {case_id for case_id, last in phase.items() if last == "grant_support"}


def _kind(applications: list[BenefitApplication], application_id: str) -> str:
    return next(a.kind for a in applications if str(a.id) == application_id)


def _age(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2026, 12, 6), 3, date(2026, 9, 6)),
    (date(2026, 12, 6), 6, date(2026, 6, 6)),
    (date(2026, 5, 31), 3, date(2026, 2, 28)),
    (date(2028, 5, 31), 3, date(2028, 2, 29)),
    (date(2026, 2, 15), 3, date(2025, 11, 15)),
    (date(2026, 1, 31), 1, date(2025, 12, 31)),
])
def test_months_before_keeps_the_day_or_takes_the_months_last(day: date, months: int,
                                                               expected: date) -> None:
    assert months_before(day, months) == expected
