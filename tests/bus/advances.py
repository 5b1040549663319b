"""An advanced case on a real store, for the claims tests: a supported case paid for this
month, its applicant's EL application forwarded, the advance started; and the fund's grant
and amendment as the benefits service records them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from bus.kafka_settings import KafkaSettings
from bus.topics import ensure_topics, installation_topics
from domain import benefit_commands as bc
from domain.application.benefits import BenefitService
from domain.commands import Actor
from domain.payments import RecordPayoutAccount, RunPayments
from nervenbahn.container import Container
from tests.bus.pipeline import Pipeline, command, open_supported_case, store_settings
from tests.domain.case_desk import person_input

OFFICE = Actor("eva.frei", "branch_office", "akso-grenchen")
FUND = Actor("max.akso", "fund_officer", "akso")
FINANCE = Actor("fin-so-01", "administrator", "so-finance")
GRENCHEN = 2546
SWISS = ZoneInfo("Europe/Zurich")


@contextmanager
def advancing_pipeline(
    tmp_path: Path, master_key: str, kafka: KafkaSettings,
    environ: Mapping[str, str] | None = None, kind: type[Container] = Container,
) -> Iterator[Pipeline]:
    """`tests.bus.pipeline.pipeline` whose case service the container (of class `kind`)
    builds, so that it looks benefit applications up (an advance needs it); every topic of the
    installation made."""
    settings = store_settings(tmp_path, master_key, environ)
    container = kind(settings, kafka=kafka)
    ensure_topics(kafka, installation_topics(kafka))
    try:
        yield Pipeline(settings, container.service, container)
    finally:
        container.close()


def today() -> date:
    """Today in Swiss time."""
    return datetime.now(SWISS).date()


def this_month() -> date:
    """The first day of this month (Swiss time)."""
    return today().replace(day=1)


def benefit(benefits: BenefitService, name: str, actor: Actor = FUND, **fields: Any) -> Any:
    """Run benefit command `name` as `actor` (the fund's officer by default)."""
    return benefits.execute(bc.BENEFIT_COMMANDS[name](actor=actor, correlation_id=uuid.uuid4(),
                                                      **fields))


def advance_on(container: Container, case_id: UUID, serial: int = 7) -> UUID:
    """The case's applicant's EL application, received and forwarded at Grenchen, and the
    case's advance for it from this month (a payment order signed today); its id."""
    person = container.service.get_case(case_id).applicant.person_id
    application_id: UUID = benefit(
        container.benefits, "receive_application", OFFICE, kind="el_ahv",
        municipality_bfs=GRENCHEN, applicant=person_input(serial, person_id=str(person)),
        received_on=today()).id
    benefit(container.benefits, "forward_application", OFFICE, application_id=application_id,
            override_reason="documents follow")
    container.service.execute(command(
        "start_advance", case_id=str(case_id), application_id=str(application_id),
        advance_from=this_month().isoformat(), commitment_kind="payment_order",
        commitment_date=today().isoformat()))
    return application_id


def pay_this_month(container: Container, case_id: UUID, iban: str) -> None:
    """The case's payout account, and the payment run of this month."""
    payments = container.payments
    payments.record_account(RecordPayoutAccount(actor=FINANCE, correlation_id=uuid.uuid4(),
                                                case_id=case_id, iban=iban, holder="N. Beispiel"))
    payments.run(RunPayments(actor=FINANCE, correlation_id=uuid.uuid4(), month=this_month()))


def advanced_case(container: Container, n: int = 0) -> tuple[UUID, UUID]:
    """A supported case of Olten paid for this month, advanced in view of its applicant's
    forwarded EL application: (case id, application id)."""
    case_id = open_supported_case(container.service, n)
    pay_this_month(container, case_id, "CH5604835012345678009")
    return case_id, advance_on(container, case_id)


def grant(benefits: BenefitService, application_id: UUID, monthly_chf: str) -> None:
    """The fund grants EL of `monthly_chf` a month from this month."""
    month = this_month().strftime("%Y-%m")
    benefit(benefits, "grant_benefit", application_id=application_id, from_month=month,
            amounts=[{"from_month": month, "monthly_chf": monthly_chf}])


def amend(benefits: BenefitService, application_id: UUID, monthly_chf: str) -> None:
    """The fund amends the EL to `monthly_chf` a month from this month."""
    month = this_month().strftime("%Y-%m")
    benefit(benefits, "amend_decision", application_id=application_id,
            amounts=[{"from_month": month, "monthly_chf": monthly_chf}],
            reason="pension recalculated")
