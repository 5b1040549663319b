"""The compensation fund's pathway end to end (issue 14), every piece real: the embedded
broker, `serve` (its benefits relay, fund-decisions connector and API), the CLI and the
reference fund application as processes of their own.

An application received at the Grenchen branch office with `nervenbahn benefits receive`,
checked and forwarded there, goes out on the applications topic; the fund application
(examples/fund_application.py, a simulation) decides it on the decisions topic; the
fund-decisions connector records the decision; the office's read model over the API (the
office's key) and the canton's backlog figures (`GET /v1/canton/benefits/backlog`) show it.
Then the very bytes of that decision delivered again change nothing, and a message that is no
Confluent-framed Avro and a well-framed decision on an unknown application are dead-lettered
with their reasons, nothing recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from kafka import KafkaProducer

from bus.benefits_codec import FundDecision, FundDecisionCodec
from bus.kafka_settings import KafkaSettings
from bus.topics import dead_letter_topic, ensure_topics, installation_topics
from domain.reference import load_benefit_checklists
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.container import FUND_DECISIONS_CONNECTOR
from projections.backlog import IsoWeek, ProcessingTarget
from tests.bus.fund_runs import dead_letters, fund_example, read_topic, run_fund
from tests.bus.pipeline import Pipeline, pipeline, topic_contents
from tests.bus.test_registry_served import serving_bus_readers
from tests.bus.waiting import wait_until
from tests.domain.case_desk import person_input

OFFICE_ID = "akso-grenchen"
OFFICE = f"eva.frei:branch_office:{OFFICE_ID}"
GRENCHEN = 2546
KIND = "el_ahv"


def test_an_application_goes_to_the_fund_and_its_decision_comes_back_once(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    fund = fund_example()
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        kafka, benefits = line.container.kafka, line.container.benefits
        ensure_topics(kafka, installation_topics(kafka))
        applications = line.container.topic("applications").name
        decisions = line.container.topic("decisions").name
        office_key, canton_key = _api_keys(tmp_path)
        with serving_bus_readers(line, tmp_path) as (server, reader_key):
            # the office: receive, check (complete), forward, each a CLI process of its own
            cli = _Cli(tmp_path, master_key)
            app = UUID(cli(OFFICE, "receive", "--kind", KIND, "--municipality", str(GRENCHEN),
                           *_applicant_options(1))["id"])
            documents = sorted(d.code for d in load_benefit_checklists()[KIND])
            cli(OFFICE, "check", str(app), *[o for d in documents for o in ("--present", d)])
            cli(OFFICE, "forward", str(app))
            wait_until(lambda: sum(topic_contents(kafka, applications)[0].values()) == 3,
                       within=60, what="the application's three events on the topic")
            # the fund: its application decides, the connector records
            ran = run_fund(server.url, reader_key)
            wait_until(lambda: benefits.application(app).stage in ("granted", "refused"),
                       within=60, what="the fund's decision recorded")
            state = benefits.application(app)
            decided_on, forwarded_on = state.decided_on, state.forwarded_on
            assert decided_on is not None and forwarded_on is not None
            events = len(list(benefits.events.get(app)))
            api = httpx.Client(base_url=server.url, timeout=30)
            detail = _get(api, f"/v1/branch-offices/{OFFICE_ID}/benefit-applications/{app}",
                          office_key)
            week = IsoWeek.of(decided_on)
            backlog = _get(api, "/v1/canton/benefits/backlog", canton_key, week=str(week))
            # the same decision again, byte for byte; then two malformed ones behind it
            [decision] = _messages(kafka, decisions)
            _produce(kafka, decisions, decision.key, decision.value, decision.headers)
            last_recorded = benefits.last_recorded_at()
            unknown = _unknown_application_decision(line, decisions, decided_on)
            _produce(kafka, decisions, decision.key, b'{"kind": "granted"}', [])
            _produce(kafka, decisions, decision.key, unknown, [])
            dlq = dead_letter_topic(kafka, FUND_DECISIONS_CONNECTOR)
            dead = dead_letters(kafka, dlq, 2)
            # one partition (the same key), read in order: the twin was handled before these
            events_after = len(list(benefits.events.get(app)))
            detail_after = _get(api, f"/v1/branch-offices/{OFFICE_ID}/benefit-applications/"
                                f"{app}", office_key)
            recorded_after = benefits.last_recorded_at()
            dead_in_all = len(_messages(kafka, dlq))
            api.close()

    # the fund decided what its documented simulation decides for this application
    _, figures = fund.figures_of(state.received_on.year)
    expect = fund.decide(fund.Application(str(app), kind=KIND, received_on=state.received_on,
                                          forwarded=True, missing=set()), figures)
    assert state.stage == expect.kind
    assert {d["application_id"] for d in ran if "decision_id" in d} == {str(app)}
    assert decision.value[0] == 0  # the Confluent frame's magic byte

    # the office's read model, over the API with the office's key
    assert detail["stage"] == state.stage
    assert detail["forwarded_on"] == forwarded_on.isoformat()
    outcome = detail["decision"]
    assert outcome["outcome"] == state.stage
    assert outcome["decided_on"] == decided_on.isoformat()
    if state.stage == "granted":
        assert state.granted_from is not None
        assert outcome["granted_from"] == state.granted_from.isoformat()
        assert state.granted_from == state.received_on.replace(day=1)  # ELG Art. 12
        assert [p.monthly_chf for p in state.schedule] == [expect.monthly_chf]
        assert outcome["refusal_reason"] is None
    else:
        assert outcome["refusal_reason"] == state.refusal_reason == expect.reason
        assert outcome["granted_from"] is None

    # the canton's backlog figures count it as decided in the week of its decision
    days = (decided_on - state.received_on).days
    within = decided_on <= ProcessingTarget(backlog["target_months"]).deadline(
        state.received_on)
    received_this_week = int(IsoWeek.of(state.received_on) == week)
    [office] = [o for o in backlog["branch_offices"] if o["unit"] == OFFICE_ID]
    [region] = [r for r in backlog["regions"] if r["decided"]]
    for unit in (backlog["canton"], region, office):
        assert (unit["week"], unit["decided"], unit["received"]) == (
            str(week), 1, received_this_week)
        assert (unit["pending"], unit["pending_at_fund"], unit["withdrawn"]) == (0, 0, 0)
        assert unit["median_days_to_decision"] == days and unit["p90_days_to_decision"] == days
        assert unit["decided_within_target"] == int(within)
        assert unit["share_decided_within_target"] == float(within)
    assert sum(o["decided"] for o in backlog["branch_offices"]) == 1

    # delivered twice: nothing changed
    assert events_after == events
    assert detail_after == detail
    # the malformed ones: dead-lettered whole, with the reason, nothing recorded
    assert recorded_after == last_recorded
    by_reason = dict((h["dlq_reason"], h["dlq_error"]) for h in dead)
    assert dead_in_all == 2  # the twin was not dead-lettered either
    assert set(by_reason) == {"undecodable", "rejected"}
    assert "no such application" in by_reason["rejected"]
    assert "application_id" in by_reason["rejected"]
    assert "Confluent wire format" in by_reason["undecodable"]


# --- helpers -------------------------------------------------------------------------------------


class _Cli:
    """`nervenbahn --json --actor ACTOR benefits …` as a process of its own on the
    pipeline's store (the store `serve` relays from)."""

    def __init__(self, tmp_path: Path, master_key: str) -> None:
        self.env = {**os.environ, "NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'store.db'}",
                    "NERVENBAHN_MASTER_KEY": master_key, "NERVENBAHN_LOG_FORMAT": "json"}

    def __call__(self, actor: str, *args: str) -> Any:
        done = subprocess.run([sys.executable, "-m", "nervenbahn", "--json", "--actor", actor,
                               "benefits", *args], env=self.env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)


def _applicant_options(serial: int) -> list[str]:
    return [arg for key, value in person_input(serial).items()
            for arg in (f"--{key.replace('_', '-')}", str(value))]


def _api_keys(tmp_path: Path) -> tuple[str, str]:
    """Keys of the Grenchen branch office and of the canton, in the key file `serve` reads."""
    keys, now = ApiKeyRegistry(tmp_path / "keys.json"), datetime.now(UTC)
    return (keys.add("grenchen", Scope("branch_office", OFFICE_ID), now=now),
            keys.add("canton-so", Scope("canton"), now=now))


def _get(api: httpx.Client, path: str, key: str, **params: str) -> Any:
    answer = api.get(path, headers={"X-API-Key": key}, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _messages(kafka: KafkaSettings, topic: str) -> list[Any]:
    """Every record on `topic` (kafka-python's ConsumerRecord: key, value, headers)."""
    found: list[Any] = []
    read_topic(kafka, topic, found.append, until=None)
    return found


def _produce(kafka: KafkaSettings, topic: str, key: bytes, value: bytes,
             headers: list[tuple[str, bytes]]) -> None:
    producer = KafkaProducer(**kafka.producer_kwargs("pathway-test"))
    try:
        producer.send(topic, key=key, value=value, headers=headers).get(timeout=30)
    finally:
        producer.close()


def _unknown_application_decision(line: Pipeline, topic: str, decided_on: date) -> bytes:
    """A refusal, well framed with the registered FundDecision schema, of an application
    nervenbahn never received."""
    codec = FundDecisionCodec(line.container.registry, topic)
    decision = FundDecision(decision_id=uuid.uuid4(), application_id=uuid.uuid4(),
                            kind="refused", decided_on=decided_on, reason="other")
    return codec.encode(decision).value
