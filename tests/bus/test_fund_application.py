"""examples/fund_application.py, the reference fund application (a simulation), on the real
embedded broker through `serve`: applications recorded at a branch office and forwarded reach
it over the applications topic, its decisions come back over the decisions topic, the
fund-decisions connector records them, and the BenefitService shows them granted (Decimal
amounts) or refused. Run again (without an end, stopped by SIGTERM once caught up), it
decides nothing twice: the same decision ids, one decision event per application."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from bus.envelope import event_id
from bus.kafka_settings import KafkaSettings
from bus.topics import ensure_topics, installation_topics
from domain import benefit_commands as bc
from domain.application.benefits import BenefitService
from domain.benefits import BenefitGranted, BenefitRefused
from domain.commands import Actor
from domain.reference import load_benefit_checklists
from tests.bus.fund_runs import (
    EXAMPLE,
    fund_example,
    run_fund,
    run_fund_until_caught_up_then_terminate,
)
from tests.bus.pipeline import pipeline, topic_contents
from tests.bus.test_outside_consumer import _resend_one
from tests.bus.test_registry_served import serving_bus_readers
from tests.bus.waiting import wait_until
from tests.domain.case_desk import person_input

GRENCHEN = 2546
OFFICE = Actor("eva.frei", "branch_office", "akso-grenchen")
SWISS = ZoneInfo("Europe/Zurich")


def test_forwarded_applications_are_decided_by_the_fund_application_once(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    fund = fund_example()
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        benefits = line.container.benefits
        forwarded = {
            _forwarded(benefits, 1, "el_ahv", complete=True): set(),
            _forwarded(benefits, 2, "el_iv", complete=True): set(),
            _forwarded(benefits, 3, "el_ahv", complete=False): _missing("el_ahv"),
            _forwarded(benefits, 4, "ipv", complete=False): _missing("ipv"),
        }
        waiting = _received(benefits, 5, "el_ahv")  # not forwarded: not decided
        kafka = line.container.kafka
        ensure_topics(kafka, installation_topics(kafka))
        applications = line.container.topic("applications").name
        expected = {str(event_id(app, v)) for app in forwarded for v in (1, 2, 3)}
        expected |= {str(event_id(waiting, 1))}
        with serving_bus_readers(line, tmp_path) as (server, key):
            wait_until(lambda: set(topic_contents(kafka, applications)[0]) == expected,
                       within=60, what="every application event on the topic")
            _resend_one(kafka, applications)  # at least once: one message comes twice
            first = run_fund(server.url, key)
            wait_until(lambda: all(benefits.application(app).stage in ("granted", "refused")
                                   for app in forwarded), within=60,
                       what="the fund's decisions recorded")
            second = run_fund_until_caught_up_then_terminate(
                server.url, key, applications=len(forwarded) + 1, decided=len(forwarded))
        state = {app: benefits.application(app) for app in forwarded}
        decisions = Counter(app for app in forwarded for e in benefits.events.get(app)
                            if isinstance(e, BenefitGranted | BenefitRefused))
        waiting_stage = benefits.application(waiting).stage

    today = datetime.now(SWISS).date()
    _, figures = fund.figures_of(today.year)
    for app, missing in forwarded.items():
        expect = fund.decide(fund.Application(str(app), kind=state[app].kind,
                                              received_on=today, forwarded=True,
                                              missing=missing), figures)
        assert state[app].stage == expect.kind
        if expect.kind == "granted":
            assert state[app].granted_from == today.replace(day=1)  # ELG Art. 12
            [period] = state[app].schedule
            assert isinstance(period.monthly_chf, Decimal)
            assert period.monthly_chf == expect.monthly_chf > 0
        else:
            assert state[app].refusal_reason == expect.reason
    assert decisions == Counter(list(forwarded))  # one decision each, even after the second run
    assert waiting_stage == "received"

    notice, summary = first[0], first[-1]
    made = [line for line in first if "decision_id" in line]
    assert "SIMULATION" in notice["simulation"]
    assert {d["application_id"] for d in made} == {str(app) for app in forwarded}
    assert all(d["simulated"] for d in made)
    assert summary["decision_ids"] == {d["application_id"]: d["decision_id"] for d in made}
    assert summary["forwarded"] == len(forwarded) and summary["applications"] == 5
    assert (summary["duplicates"], summary["mismatches"]) == (1, 0)  # the twin taken once
    assert second[-1]["decision_ids"] == summary["decision_ids"]  # the same ids again
    assert second[-1]["published"] == {"granted": 0, "refused": 0}  # it saw them decided


def test_a_decision_id_depends_only_on_the_application_and_the_kind() -> None:
    fund = fund_example()
    application = fund.Application(str(uuid.uuid4()), kind="el_ahv",
                                   received_on=date(2026, 3, 17), forwarded=True)
    _, figures = fund.figures_of(2026)
    once, again = fund.decide(application, figures), fund.decide(application, figures)
    assert once == again and once.decision_id == again.decision_id
    assert once.record(date(2026, 4, 1))["decision_id"] == once.record(
        date(2026, 12, 6))["decision_id"]
    assert UUID(once.decision_id).version == 5


def test_the_simulated_el_is_expenses_minus_income() -> None:
    fund = fund_example()
    _, figures = fund.figures_of(2026)
    poor = fund.Finances(rent_monthly=1400, pension_monthly=1260, occupational_monthly=0,
                         assets=40_000)
    # 20,670 + min(16,800, 18,300) + 5,600.40 - (15,120 + 10,000 / 10)
    assert fund.annual_el(poor, "el_ahv", figures) == Decimal("26950.40")
    # an IV pension: 1/15 of the assets above 30,000
    assert fund.annual_el(poor, "el_iv", figures) == (
        Decimal("43070.40") - 15_120 - Decimal(10_000) / 15)
    rich = fund.Finances(rent_monthly=1000, pension_monthly=2520, occupational_monthly=1190,
                         assets=0)
    assert fund.annual_el(rich, "el_ahv", figures) < 0


# --- helpers -------------------------------------------------------------------------------------


def _missing(kind: str) -> set[str]:
    return {d.code for d in load_benefit_checklists()[kind]} - {"signed_application"}


def _today() -> date:
    return datetime.now(SWISS).date()


def _run(benefits: BenefitService, name: str, **fields: Any) -> Any:
    command = bc.BENEFIT_COMMANDS[name](actor=OFFICE, correlation_id=uuid.uuid4(), **fields)
    return benefits.execute(command)


def _received(benefits: BenefitService, serial: int, kind: str) -> UUID:
    result = _run(benefits, "receive_application", kind=kind, municipality_bfs=GRENCHEN,
                  applicant=person_input(serial), received_on=_today())
    application_id: UUID = result.id
    return application_id


def _forwarded(benefits: BenefitService, serial: int, kind: str, complete: bool) -> UUID:
    application_id = _received(benefits, serial, kind)
    present = ({d.code for d in load_benefit_checklists()[kind]} if complete
               else {"signed_application"})
    _run(benefits, "check_completeness", application_id=application_id,
         documents_present=sorted(present))
    _run(benefits, "forward_application", application_id=application_id,
         override_reason=None if complete else "documents follow")
    return application_id


def test_docs_benefits_shows_the_figures_of_the_data_file() -> None:
    docs = (EXAMPLE.parents[1] / "docs" / "benefits.md").read_text()
    section = docs[docs.index("**The figures**"):docs.index("**Writing.**")]
    figures = json.loads(EXAMPLE.with_name("el_figures.json").read_text())
    for year in ("2025", "2026"):
        values = figures["years"][year]
        for name in ("living_needs_single", "rent_maximum_single_region_2",
                     "health_premium_lump_sum", "ipv_premium_reduction_monthly"):
            assert f"{values[name]:,.2f}".removesuffix(".00") in section, (year, name)
    for values in figures["years"].values():
        assert set(values) <= set(figures["sources"])  # every figure has its source


def test_each_way_of_deciding_follows_the_documented_rules() -> None:
    fund = fund_example()
    _, figures = fund.figures_of(2026)
    received = date(2026, 3, 17)

    def first(kind: str, missing: set[str], wanted: Any) -> Any:
        """The decision on the first of a fixed series of ids that `wanted` accepts."""
        for n in range(2000):
            app = fund.Application(str(uuid.UUID(int=n)), kind=kind, received_on=received,
                                   forwarded=True, missing=missing)
            if wanted(app):
                return app, fund.decide(app, figures)
        raise AssertionError("no such id in the series")

    def finances(app: Any) -> Any:
        return fund.simulated_finances(app.application_id, app.kind, figures)

    _, lacking = first("el_ahv", {"rent_contract"},
                       lambda a: fund.documents_not_handed_in(a.application_id))
    assert (lacking.kind, lacking.reason, lacking.monthly_chf) == (
        "refused", "documents_missing", None)
    _, handed_in = first("ipv", {"tax_assessment"},
                         lambda a: not fund.documents_not_handed_in(a.application_id))
    assert (handed_in.kind, handed_in.monthly_chf) == ("granted", Decimal("150.00"))
    assert handed_in.from_month == date(2026, 3, 1)  # ELG Art. 12
    _, wealthy = first("el_ahv", set(), lambda a: finances(a).assets > 100_000)
    assert (wealthy.kind, wealthy.reason) == ("refused", "assets_above_limit")
    _, sufficient = first("el_ahv", set(), lambda a: finances(a).assets <= 100_000 and
                          fund.annual_el(finances(a), "el_ahv", figures) <= 0)
    assert (sufficient.kind, sufficient.reason) == ("refused", "income_sufficient")
    app, granted = first("el_iv", set(), lambda a: finances(a).assets <= 100_000 and
                         fund.annual_el(finances(a), "el_iv", figures) > 0)
    annual = fund.annual_el(finances(app), "el_iv", figures)
    assert granted.kind == "granted" and granted.from_month == date(2026, 3, 1)
    assert abs(granted.monthly_chf - annual / 12) <= Decimal("0.5")  # to the franc
    assert granted.monthly_chf == granted.monthly_chf.to_integral_value() > 0
    assert granted.monthly_chf.as_tuple().exponent == -2  # CHF with two places
    record = granted.record(date(2026, 4, 2))
    assert record["amounts"] == [{"from_month": date(2026, 3, 1),
                                  "monthly_chf": granted.monthly_chf}]


def test_the_fund_decides_those_received_first_up_to_its_capacity() -> None:
    module = fund_example()
    apps = [module.Application(f"app-{n}") for n in range(5)]
    for n, app in enumerate(apps):
        app.received_on, app.forwarded = date(2026, 3, 10 - n), n != 1
    apps[4].decided = "granted"

    chosen = module.next_to_decide(apps, 2)

    assert [a.application_id for a in chosen] == ["app-3", "app-2"]
    assert [a.application_id for a in module.next_to_decide(apps, None)] == [
        "app-3", "app-2", "app-0"]
    assert module.next_to_decide(apps, 0) == []
