"""The store written by the release before the benefits store recorded identities (4b2b3b6:
benefit-application, delegation and payout-account events at class version 1) under this one
(version 2, `recorded_by`): what docs/evolution.md promises, on the real stored bytes.

Every application, delegation and payout account replays as that release answered it, each of
its events recorded by `unknown` (upcast on read, never rewritten); a new event is appended
after them with the identity its edge established; the auditor's extract lists the old actions
as `unknown`; the hash chains still verify. The fixture and how it was made:
tests/fixtures/identity_release/README.md.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from domain import benefit_commands as bc
from domain.application.benefits import BenefitService
from domain.application.cases import CaseService
from domain.application.payments import PaymentService
from domain.benefits import BenefitEnded
from domain.case import SWISS_TIME
from domain.commands import Actor
from domain.identity import UNKNOWN_IDENTITY, EstablishedIdentity
from domain.payments import payout_account_id
from nervenbahn.audit.chain import chain_name
from nervenbahn.audit.extract import ExtractFilter, RecordedLog, extract
from nervenbahn.config import load_settings
from nervenbahn.container import (
    build_benefit_service,
    build_payment_service,
    build_service,
    close_service,
)

FIXTURE = Path(__file__).parent / "fixtures" / "identity_release" / "prev-4b2b3b6"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
FUND = Actor("max.akso", "fund_officer", "akso")
OLD_BENEFIT_EVENTS = 16
OLD_PAYOUT_EVENTS = 2


@dataclass
class Stores:
    """This release's services on a copy of the old store."""

    database: Path
    cases: CaseService
    benefits: BenefitService
    payments: PaymentService


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    database = tmp_path / "nervenbahn.db"
    shutil.copyfile(FIXTURE / "store" / "nervenbahn.db", database)
    settings = load_settings(_environ(database))
    cases = build_service(settings)
    benefits = build_benefit_service(settings, cases)
    payments = build_payment_service(settings, cases)
    yield Stores(database, cases, benefits, payments)
    benefits.close()
    payments.close()
    close_service(cases)


def _environ(database: Path) -> dict[str, str]:
    return {
        "NERVENBAHN_STORE": f"sqlite:///{database}",
        "NERVENBAHN_MASTER_KEY": (FIXTURE / "master.key").read_text().strip(),
        "NERVENBAHN_LOG_LEVEL": "warning",
    }


def rows(database: Path, table: str) -> list[tuple[Any, ...]]:
    """Every stored row of `table`, bytes as they are on disk."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return db.execute(
            f"SELECT originator_id, originator_version, topic, state FROM {table} ORDER BY rowid"
        ).fetchall()
    finally:
        db.close()


def test_the_fixture_holds_version_1_benefit_and_payout_account_events() -> None:
    benefits = rows(FIXTURE / "store" / "nervenbahn.db", "benefits_events")
    payouts = [
        row
        for row in rows(FIXTURE / "store" / "nervenbahn.db", "payments_events")
        if "PayoutAccount" in row[2]
    ]

    assert (len(benefits), len(payouts)) == (OLD_BENEFIT_EVENTS, OLD_PAYOUT_EVENTS)
    assert {row[2].split(":")[1] for row in benefits} >= {
        "ApplicationReceived",
        "CompletenessChecked",
        "DocumentsRequested",
        "DocumentsReceived",
        "ApplicationForwarded",
        "BenefitGranted",
        "DecisionAmended",
        "BenefitRefused",
        "ApplicationWithdrawn",
        "DelegationGranted",
        "DelegationRevoked",
    }
    assert all(
        b"recorded_by" not in row[3] and b"class_version" not in row[3]
        for row in [*benefits, *payouts]
    )


def test_every_application_and_delegation_replays_as_before_recorded_by_unknown(
    stores: Stores,
) -> None:
    day = date.fromisoformat(EXPECTED["today"])
    for application_id, answered in EXPECTED["applications"].items():
        app = stores.benefits.application(uuid.UUID(application_id))
        events = list(stores.benefits.events.get(app.id))
        assert {
            "stage": app.stage,
            "documents_present": list(app.documents_present),
            "missing": list(app.missing),
            "owed_this_month": str(app.owed_for(day)),
            "events": [type(e).__name__ for e in events],
            "actors": [e.actor.user_id for e in events],
        } == answered
        assert {e.recorded_by for e in events} == {UNKNOWN_IDENTITY}
    for delegation_id, answered in EXPECTED["delegations"].items():
        events = list(stores.benefits.events.get(uuid.UUID(delegation_id)))
        assert [type(e).__name__ for e in events] == answered["events"]
        assert (
            stores.benefits.delegation(uuid.UUID(delegation_id)).status_on(day)
            == (answered["status"])
        )
        assert {e.recorded_by for e in events} == {UNKNOWN_IDENTITY}


def test_the_payout_account_replays_recorded_by_unknown(stores: Stores) -> None:
    expected = EXPECTED["payout_account"]
    case_id = uuid.UUID(expected["case_id"])

    account = stores.payments.payout_account(case_id)
    events = list(stores.payments.events.get(payout_account_id(case_id)))

    assert account is not None
    assert (account.iban, account.holder) == (expected["iban"], expected["holder"])
    assert [type(e).__name__ for e in events] == ["PayoutAccountRecorded", "PayoutAccountChanged"]
    assert {e.recorded_by for e in events} == {UNKNOWN_IDENTITY}


def test_a_new_event_is_appended_with_its_identity_without_rewriting_the_old(
    stores: Stores,
) -> None:
    before = rows(stores.database, "benefits_events")
    granted = next(
        uuid.UUID(i) for i, a in EXPECTED["applications"].items() if a["stage"] == "granted"
    )
    officer = EstablishedIdentity("web", "max.akso")
    today = datetime.now(SWISS_TIME).date()

    stores.benefits.execute(
        bc.EndBenefit(
            actor=FUND,
            correlation_id=uuid.uuid4(),
            application_id=granted,
            condition_ceased_on=today,
            reason="moved_away",
        ),
        recorded_by=officer,
    )

    after = rows(stores.database, "benefits_events")
    assert after[: len(before)] == before  # not a byte of the old rows changed
    (new,) = after[len(before) :]
    assert b'"recorded_by"' in new[3] and b'"class_version":2' in new[3]
    events = list(stores.benefits.events.get(granted))
    assert isinstance(events[-1], BenefitEnded) and events[-1].recorded_by == officer
    assert {e.recorded_by for e in events[:-1]} == {UNKNOWN_IDENTITY}


def test_the_auditors_extract_lists_the_old_actions_as_unknown(stores: Stores) -> None:
    def logged(service: Any, table: str) -> RecordedLog:
        return RecordedLog(service, chain_name(table))

    found = extract(
        "actions",
        logged(stores.cases, "stored_events"),
        logged(stores.payments, "payments_events"),
        ExtractFilter(),
        logged(stores.benefits, "benefits_events"),
    )

    benefit_rows = [r for r in found.rows if r["chain"] == "events:benefits_events"]
    payout_rows = [r for r in found.rows if r["event"].startswith("PayoutAccount")]
    assert len(benefit_rows) == OLD_BENEFIT_EVENTS and len(payout_rows) == OLD_PAYOUT_EVENTS
    assert {r["recorded_by"] for r in [*benefit_rows, *payout_rows]} == {"unknown"}
    assert [r["position"] for r in benefit_rows] == list(range(1, OLD_BENEFIT_EVENTS + 1))


def test_the_hash_chains_of_the_old_store_still_verify(tmp_path: Path) -> None:
    database = tmp_path / "nervenbahn.db"
    shutil.copyfile(FIXTURE / "store" / "nervenbahn.db", database)
    env = {
        **os.environ,
        **_environ(database),
        "NERVENBAHN_KEY_DIR": str(tmp_path / "keys"),
        "NERVENBAHN_ACTOR": "fk.meier:auditor:so-finanzkontrolle",
        # the old store signed no checkpoint: any key verifies its chains
        "NERVENBAHN_AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    }

    done = subprocess.run(
        [sys.executable, "-m", "nervenbahn", "--json", "audit", "verify"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    chains = {c["chain"]: c for c in json.loads(done.stdout)["chains"]}
    assert chains["events:benefits_events"]["ok"] is True
