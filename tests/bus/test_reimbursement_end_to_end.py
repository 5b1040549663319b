"""Issue 15 end to end, every part real: `nervenbahn serve` (a subprocess: its relays, its
fund-decisions connector, its claims worker, its read models) on a SQLite store and the test's
embedded broker, and the reference fund application (examples/fund_application.py, an outside
program with confluent-kafka only) deciding and paying.

decision in → claim out → split payment files → proposal in the work list, and a crash in the
middle: once the first claim is recorded, serve and the fund application are both killed with
SIGKILL (no clean-up, no flush, as a power cut), then started again. Two advances: one case
paid more than its EL (the fund pays the region only), one paid less (the file splits: the
claim to the region, the surplus to the person). Afterwards every advance
has exactly one claim, every claim exactly one payment file and one `ReimbursementPaid`, each
file pays the claim to the social region and the surplus to the person, and the region's work
list shows the budget proposal the decision led to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from bus.claims_codec import ReimbursementClaimCodec
from bus.envelope import event_id
from bus.kafka_settings import KafkaSettings
from domain.events import Claim, claims_of
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.container import Container
from nervenbahn.datasets import REIMBURSEMENT_CLAIMS
from nervenbahn.keyfiles import default_key_dir
from tests.api.http import bus_variables, get_json, serve_environment, serving
from tests.bus.advances import (
    GRENCHEN,
    OFFICE,
    advancing_pipeline,
    benefit,
    pay_this_month,
    this_month,
    today,
)
from tests.bus.fund_runs import EXAMPLE, fund_example, read_topic
from tests.bus.pipeline import command, open_supported_case
from tests.bus.waiting import wait_until
from tests.domain.case_desk import person_input

REGION = "so-olten"
PAIN = "{urn:iso:std:iso:20022:tech:xsd:pain.001.001.09}"
ADVANCES = 2


@pytest.mark.skipif(not EXAMPLE.exists(), reason="the reference fund application is not here")
def test_decision_claim_payment_and_proposal_end_to_end_through_a_crash(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    keys = ApiKeyRegistry(tmp_path / "api-keys.json")
    now = datetime.now(UTC)
    fund_key = keys.add("akso-fund", Scope("bus_reader"), now=now)
    region_key = keys.add("region-olten", Scope("region", REGION), now=now)
    outbox = tmp_path / "fund-outbox"
    with advancing_pipeline(tmp_path, master_key, kafka_settings) as line:
        container = line.container
        advanced = [_advance_the_fund_grants(container, n) for n in range(ADVANCES)]
        environment = _serve_environment(tmp_path, master_key, kafka_settings)
        subprocess.run([sys.executable, "-m", "nervenbahn", "init"], env=environment,
                       check=True, capture_output=True, timeout=60)  # the reporting key

        # First run: the fund decides; once a claim is recorded, everything dies at once.
        with serving(environment) as served, _fund(served.url, fund_key, outbox) as fund:
            wait_until(lambda: _claims(container, advanced), within=120,
                       what="the claims worker to record a claim")
            for pid in (fund.pid, served.process.pid):
                os.kill(pid, signal.SIGKILL)
            fund.wait(timeout=30)
            served.process.wait(timeout=30)
        # Killed mid-way: a claim is recorded and not every claim is paid yet.
        assert not _all_paid(container, advanced)
        # Second run: both start again and finish the work.
        with serving(environment) as served, _fund(served.url, fund_key, outbox):
            wait_until(lambda: _all_paid(container, advanced), within=180,
                       what="every claim recorded and paid")
            proposals = wait_until(lambda: _proposals(served.url, region_key, advanced),
                                   within=60,
                                   what="the proposals in the region's work list")
        claims = {case_id: claims_of(container.service.get_case(case_id))
                  for case_id, _ in advanced}
        events = {case_id: [e.event for e in container.service.history(case_id)]
                  for case_id, _ in advanced}
        published = _published_claim_ids(container, kafka_settings)

    files = sorted(outbox.glob("claim-*.xml"))
    surpluses: list[Decimal] = []
    for (case_id, application_id), (claim,) in ((a, claims[a[0]]) for a in advanced):
        assert claim.application_id == application_id and claim.claim_total > 0
        surpluses.append(claim.surplus_total)
        assert events[case_id].count("ReimbursementRecorded") == 1  # never twice
        assert events[case_id].count("ReimbursementPaid") == 1
        assert events[case_id].count("AdvanceEnded") == 1
        assert claim.is_paid and claim.paid_to_region == claim.claim_total
        assert claim.paid_to_person == max(claim.surplus_total, Decimal(0))
        assert _transfers(outbox / f"claim-{claim.payment_message_id}.xml") == _expected(claim)
        assert proposals[str(case_id)] & {"budget_proposal", "closure_proposal"}
    assert len(files) == ADVANCES  # one file per claim, none written twice
    assert surpluses[0] == 0 < surpluses[1]  # one file pays the region only, one splits
    assert list(outbox.glob(".*.tmp")) == []  # no half-written file left by the kill
    assert published == {_claim_id(case_id, c) for case_id, _ in advanced
                         for c in claims[case_id]}


def _advance_the_fund_grants(container: Container, n: int) -> tuple[UUID, UUID]:
    """A supported case of Olten paid for this month whose applicant applies for EL (an id
    the simulated fund grants even with documents missing; for an odd `n` a case paid CHF 411
    and EL of at least CHF 1,000) and the case's advance for it."""
    fund = fund_example()
    _, figures = fund.figures_of(today().year)
    least = Decimal("1000.00") if n % 2 else Decimal("0.01")  # the odd case: above its paid

    def granted(app: UUID) -> bool:
        decision = fund.decide(fund.Application(str(app), kind="el_ahv", received_on=today(),
                                                forwarded=True, missing={"any"}), figures)
        return bool(decision.kind == "granted" and decision.monthly_chf >= least)

    application_id = next(app for app in (uuid.UUID(int=10_000 * (n + 1) + k)
                                          for k in range(5000)) if granted(app))
    case_id = open_supported_case(container.service, n)
    if n % 2:  # income from a small job: paid less than the EL, so the person gets a surplus
        container.service.execute(command(
            "change_budget", case_id=str(case_id), effective_date=this_month().isoformat(),
            reason="income_change", housing="1200", health_insurance="350", income="2200"))
    pay_this_month(container, case_id, "CH5604835012345678009")
    person = container.service.get_case(case_id).applicant.person_id
    benefit(container.benefits, "receive_application", OFFICE, kind="el_ahv",
            municipality_bfs=GRENCHEN, application_id=application_id,
            applicant=person_input(7 + n, person_id=str(person)), received_on=today())
    benefit(container.benefits, "forward_application", OFFICE, application_id=application_id,
            override_reason="documents follow")
    container.service.execute(command(
        "start_advance", case_id=str(case_id), application_id=str(application_id),
        advance_from=this_month().isoformat(), commitment_kind="payment_order",
        commitment_date=today().isoformat()))
    return case_id, application_id


def _serve_environment(tmp_path: Path, master_key: str,
                       kafka: KafkaSettings) -> dict[str, str]:
    return serve_environment(
        tmp_path,
        NERVENBAHN_KEY_DIR=str(default_key_dir(os.environ)),  # the in-process store's keys
        NERVENBAHN_MASTER_KEY=master_key,
        **bus_variables(kafka),
        NERVENBAHN_API_KEYS=str(tmp_path / "api-keys.json"),
        NERVENBAHN_ACCESS_LOG=str(tmp_path / "access.db"),
        NERVENBAHN_ADVANCE_CLAIMS_SECONDS="0.5",
        NERVENBAHN_RELAY_LEASE_SECONDS="2",  # a killed relay's lease runs out soon
        NERVENBAHN_RELAY_RENEW_SECONDS="0.5",
    )


@contextmanager
def _fund(url: str, key: str, outbox: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The reference fund application deciding and paying into `outbox` until the block ends."""
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--asyncapi", f"{url}/asyncapi.json", "--user",
         "akso-fund", f"--key={key}", "--group", "akso-fund", "--session-timeout-ms", "6000",
         "--payments-dir", str(outbox)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=60)


def _claims(container: Container, advanced: list[tuple[UUID, UUID]]) -> bool:
    return any(claims_of(container.service.get_case(case_id)) for case_id, _ in advanced)


def _all_paid(container: Container, advanced: list[tuple[UUID, UUID]]) -> bool:
    claims = [claims_of(container.service.get_case(case_id)) for case_id, _ in advanced]
    return all(found and all(c.is_paid for c in found) for found in claims)


def _proposals(url: str, key: str, advanced: list[tuple[UUID, UUID]]) -> dict[str, set[str]]:
    """Each advanced case's kinds of open work-list items, once every case has a proposal."""
    status, body = get_json(f"{url}/v1/regions/{REGION}/worklist?today={today()}", key)
    assert status == 200, body
    kinds: dict[str, set[str]] = {}
    for item in body["items"]:
        kinds.setdefault(item["case_id"], set()).add(item["kind"])
    cases = [str(case_id) for case_id, _ in advanced]
    done = all(kinds.get(c, set()) & {"budget_proposal", "closure_proposal"} for c in cases)
    return kinds if done else {}


def _claim_id(case_id: UUID, claim: Claim) -> str:
    assert claim.case_version is not None
    return str(event_id(case_id, claim.case_version))


def _published_claim_ids(container: Container, kafka: KafkaSettings) -> set[str]:
    """The distinct claim ids on the claims topic (a relay killed between publishing and
    storing its position publishes again: the fund dedups by claim id)."""
    codec = container.codec(REIMBURSEMENT_CLAIMS)
    assert isinstance(codec, ReimbursementClaimCodec)
    found: list[Any] = []
    read_topic(kafka, container.topic(REIMBURSEMENT_CLAIMS).name,
               lambda record: found.append(codec.decode(record.value)), until=None)
    return {str(claim.claim_id) for claim in found}


def _transfers(path: Path) -> list[tuple[str, Decimal]]:
    """(end-to-end id suffix, CHF) of each credit transfer of a pain.001 file."""
    root = ET.parse(path).getroot()
    return sorted(
        (tx.findtext(f"{PAIN}PmtId/{PAIN}EndToEndId", "")[-1],
         Decimal(tx.findtext(f"{PAIN}Amt/{PAIN}InstdAmt", "0")))
        for tx in root.iter(f"{PAIN}CdtTrfTxInf"))


def _expected(claim: Claim) -> list[tuple[str, Decimal]]:
    """The transfers a claim's file must hold: the claim to the region (R), the surplus to
    the person (P), each only if above zero."""
    return sorted(
        (suffix, amount) for suffix, amount in (("R", claim.claim_total),
                                                 ("P", claim.surplus_total)) if amount > 0)
