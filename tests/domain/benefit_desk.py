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
from domain.errors import ApplicationNotFoundError, DomainError, RuleViolationError
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

    def forwarded(self, documents: list[str] | None = None, **fields: Any) -> UUID:
        """An application checked by its office (complete unless `documents` says which are
        there) and forwarded by it (with a reason if documents are missing)."""
        application_id = self.receive(**fields)
        present = ALL_DOCUMENTS["el_ahv"] if documents is None else documents
        self.run("check_completeness", GRENCHEN_OFFICE, application_id=application_id,
                 documents_present=present)
        reason = {} if documents is None else {"override_reason": "documents follow"}
        self.run("forward_application", GRENCHEN_OFFICE, application_id=application_id,
                 **reason)
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
        error = self._failing(RuleViolationError, name, actor, **fields)
        assert isinstance(error, RuleViolationError) and error.rule == rule, str(error)
        return str(error)

    def not_found(self, name: str, actor: Actor = FUND, **fields: Any) -> DomainError:
        """Run a command that must be answered "application not found"; check nothing was
        recorded."""
        return self._failing(ApplicationNotFoundError, name, actor, **fields)

    def _failing(self, expected: type[DomainError], name: str, actor: Actor,
                 **fields: Any) -> DomainError:
        before = self.service.max_position()
        keys = self.keystore.state()
        with pytest.raises(expected) as info:
            self.run(name, actor, **fields)
        assert self.service.max_position() == before
        assert self.keystore.state() == keys
        return info.value


def build_benefit_desk() -> BenefitDesk:
    """A fresh in-memory benefits service at the fake start time."""
    keystore = InMemoryKeyStore()
    clock = FakeClock(START)
    service = BenefitService(POPO_ENV, vault=PersonalDataVault(keystore, MASTER_KEY),
                             reference=load_reference_data(), offices=OFFICES, clock=clock)
    return BenefitDesk(service, clock, keystore)
