"""Helpers of the benefit tests: an in-memory benefits service with a fake clock, actors of a
branch office and of the fund, and a `BenefitDesk.refused` that checks a refusal recorded
nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import pytest

from domain import benefit_commands as bc
from domain.application.benefits import BenefitResult, BenefitService
from domain.commands import Actor
from domain.errors import RuleViolationError
from domain.personal_data import PersonalDataVault
from domain.reference import load_branch_offices, load_reference_data

from .case_desk import MASTER_KEY, POPO_ENV, START, move_to, person_input
from .fakes import FakeClock, InMemoryKeyStore

OFFICES = load_branch_offices()
GRENCHEN = 2546  # akso-grenchen (with Bettlach 2543 and Selzach 2556)
LOMMISWIL = 2551  # akso-lommiswil
GRENCHEN_OFFICE = Actor("eva.frei", "branch_office", "akso-grenchen")
LOMMISWIL_OFFICE = Actor("urs.kurz", "branch_office", "akso-lommiswil")
FUND = Actor("max.akso", "fund_officer", "akso")
ALL_DOCUMENTS = {
    "el_ahv": ["signed_application", "pension_statement", "tax_assessment",
               "account_statements", "rent_contract", "health_insurance_policy"],
}
"""The el_ahv checklist as the data file lists it (checked in test_benefits.py)."""


@dataclass
class BenefitDesk:
    """An in-memory benefits service, its clock and key store."""

    service: BenefitService
    clock: FakeClock
    keystore: InMemoryKeyStore

    @property
    def today(self) -> date:
        """The fake clock's day in Swiss time."""
        return self.clock().astimezone(START.tzinfo).date()

    def run(self, name: str, actor: Actor = FUND, **fields: Any) -> BenefitResult:
        """Build command `name` from `fields` and execute it."""
        command = bc.BENEFIT_COMMANDS[name](actor=actor, correlation_id=uuid.uuid4(), **fields)
        return self.service.execute(command)

    def receive(self, actor: Actor = GRENCHEN_OFFICE, municipality_bfs: int = GRENCHEN,
                serial: int = 1, **fields: Any) -> UUID:
        """An el_ahv application received today at `actor`'s office."""
        data: dict[str, Any] = {"kind": "el_ahv", "municipality_bfs": municipality_bfs,
                                "applicant": person_input(serial), "received_on": self.today}
        return self.run("receive_application", actor, **(data | fields)).id

    def forwarded(self, **fields: Any) -> UUID:
        """An application checked complete by the fund and forwarded."""
        application_id = self.receive(**fields)
        self.run("check_completeness", application_id=application_id,
                 documents_present=ALL_DOCUMENTS["el_ahv"])
        self.run("forward_application", application_id=application_id)
        return application_id

    def delegate(self, task: str, office: str = "akso-grenchen", days: int = 30) -> UUID:
        """A delegation of `task` to `office` from today for `days` days."""
        until = date.fromordinal(self.today.toordinal() + days)
        return self.run("grant_delegation", branch_office=office, task=task,
                        valid_from=self.today, valid_until=until).id

    def move_to(self, day: date) -> None:
        """Advance the clock to 09:00 on `day`."""
        move_to(self, day)  # type: ignore[arg-type]

    def refused(self, rule: str, name: str, actor: Actor = FUND, **fields: Any) -> str:
        """Run a command that must be refused by `rule`; check nothing was recorded."""
        before = self.service.max_position()
        keys = self.keystore.state()
        with pytest.raises(RuleViolationError) as info:
            self.run(name, actor, **fields)
        assert info.value.rule == rule, str(info.value)
        assert self.service.max_position() == before
        assert self.keystore.state() == keys
        return str(info.value)


def build_benefit_desk() -> BenefitDesk:
    """A fresh in-memory benefits service at the fake start time."""
    keystore = InMemoryKeyStore()
    clock = FakeClock(START)
    service = BenefitService(POPO_ENV, vault=PersonalDataVault(keystore, MASTER_KEY),
                             reference=load_reference_data(), offices=OFFICES, clock=clock)
    return BenefitDesk(service, clock, keystore)
