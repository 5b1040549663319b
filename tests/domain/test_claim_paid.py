"""A claim paid once: the fund reports each recorded claim (or correction) paid
(`RecordReimbursementPaid`, from its `ClaimPaid`), and the case records `ReimbursementPaid` —
only for a claim it recorded, of that application, with the claim's totals (a negative total
is paid as nothing: it is to be returned), once: the same payment file again records
nothing, another file is refused.

The claims come from `record_reimbursement` on the case alone (`test_advance_claims`): an EL of
CHF 1,000.00 for this month against CHF 900.00 paid claims 900.00 for the region and leaves
100.00 for the person; an EL amended to 500.00 corrects that by -400.00 and -100.00."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from domain.commands import Actor, RecordReimbursementPaid
from domain.events import ReimbursementPaid

from .case_desk import TODAY, Desk, replay
from .test_advance_claims import APPLICATION, _advanced, _record

FUND = Actor(user_id="fund-decisions", role="system", organisation="akso")
"""The fund-decisions connector records payments as a system actor."""


def _pay(case_id: UUID, claim_version: int, to_region: str = "900.00",
         to_person: str = "100.00", message_id: str = "claim-pay-1", actor: Actor = FUND,
         application_id: UUID = APPLICATION, paid_on: date = TODAY) -> RecordReimbursementPaid:
    return RecordReimbursementPaid(
        actor=actor, correlation_id=uuid4(), case_id=case_id, application_id=application_id,
        claim_version=claim_version, paid_on=paid_on, to_region=to_region, to_person=to_person,
        message_id=message_id)


def _claimed(desk: Desk) -> tuple[UUID, int]:
    """A case with one claim (900.00 to the region, 100.00 to the person): its id and the
    claim's version."""
    case_id = _advanced(desk)
    desk.service.execute(_record(case_id, "1000.00"))
    (claim,) = desk.case(case_id).claims
    assert (claim.claim_total, claim.surplus_total) == (Decimal("900.00"), Decimal("100.00"))
    assert claim.case_version is not None and not claim.is_paid
    return case_id, claim.case_version


def test_a_paid_claim_records_when_in_which_file_and_how_much(desk: Desk) -> None:
    case_id, version = _claimed(desk)

    result = desk.service.execute(_pay(case_id, version))

    assert result.events == ("ReimbursementPaid",)
    paid = desk.events(case_id)[-1]
    assert isinstance(paid, ReimbursementPaid)
    assert (paid.claim_version, paid.to_region, paid.to_person, paid.message_id,
            paid.effective_date, paid.actor) == (
        version, Decimal("900.00"), Decimal("100.00"), "claim-pay-1", TODAY, FUND)
    (claim,) = desk.case(case_id).claims
    assert (claim.paid_on, claim.paid_to_region, claim.paid_to_person,
            claim.payment_message_id) == (TODAY, Decimal("900.00"), Decimal("100.00"),
                                          "claim-pay-1")


def test_the_same_payment_reported_twice_records_nothing(desk: Desk) -> None:
    case_id, version = _claimed(desk)
    desk.service.execute(_pay(case_id, version))
    before = desk.case(case_id).version

    again = desk.service.execute(_pay(case_id, version))

    assert again.events == ()
    assert desk.case(case_id).version == before


def test_a_claim_paid_in_another_file_is_refused(desk: Desk) -> None:
    case_id, version = _claimed(desk)
    desk.service.execute(_pay(case_id, version))

    desk.refused(_pay(case_id, version, message_id="claim-pay-2"), rule="claim-paid-once",
                 mentions=("message_id", "claim-pay-1"))


def test_the_fund_pays_the_claims_totals(desk: Desk) -> None:
    case_id, version = _claimed(desk)

    desk.refused(_pay(case_id, version, to_region="1000.00"), rule="paid-as-claimed",
                 mentions=("to_region", "900.00"))
    desk.refused(_pay(case_id, version, to_person="0.00"), rule="paid-as-claimed",
                 mentions=("to_person", "100.00"))


def test_a_negative_correction_is_paid_as_nothing(desk: Desk) -> None:
    case_id, first = _claimed(desk)
    desk.service.execute(_record(case_id, "500.00"))  # amended: -400.00 and -100.00
    correction = desk.case(case_id).claims[-1]
    assert (correction.claim_total, correction.surplus_total) == (
        Decimal("-400.00"), Decimal("-100.00"))
    assert correction.case_version is not None and correction.case_version > first

    desk.refused(_pay(case_id, correction.case_version, to_region="400.00",
                      to_person="0.00", message_id="claim-pay-2"), rule="paid-as-claimed",
                 mentions=("to_region",))
    desk.service.execute(_pay(case_id, correction.case_version, to_region="0.00",
                              to_person="0.00", message_id="claim-pay-2"))

    claims = desk.case(case_id).claims
    assert [c.is_paid for c in claims] == [False, True]
    assert (claims[1].paid_to_region, claims[1].paid_to_person) == (
        Decimal("0.00"), Decimal("0.00"))


def test_only_a_claim_the_case_recorded_for_that_application_is_paid(desk: Desk) -> None:
    case_id, version = _claimed(desk)

    desk.refused(_pay(case_id, 1), rule="known-claim", mentions=("claim_version",))
    desk.refused(_pay(case_id, version + 50), rule="known-claim", mentions=("claim_version",))
    desk.refused(_pay(case_id, version, application_id=UUID(int=8)), rule="known-claim",
                 mentions=("application_id", str(APPLICATION)))


def test_a_payment_is_recorded_by_the_system_not_a_caseworker(desk: Desk, actor: Actor) -> None:
    case_id, version = _claimed(desk)

    desk.refused(_pay(case_id, version, actor=actor), rule="reimbursement-paid-by-system",
                 mentions=("actor.role",))


def test_a_payment_before_its_claim_was_recorded_is_refused(desk: Desk) -> None:
    case_id, version = _claimed(desk)
    early = _pay(case_id, version, paid_on=TODAY - timedelta(days=1))

    desk.refused(early, rule="effective-date-order", mentions=("paid_on",))


def test_a_closed_case_still_records_the_payment(desk: Desk) -> None:
    case_id, version = _claimed(desk)
    desk.run("close_case", case_id=case_id)

    assert desk.service.execute(_pay(case_id, version)).events == ("ReimbursementPaid",)


def test_a_snapshot_keeps_the_payment(desk: Desk) -> None:
    case_id, version = _claimed(desk)
    desk.service.execute(_pay(case_id, version))
    while desk.case(case_id).version < 100:  # the service snapshots at version 100
        desk.run("complete_review", case_id=case_id, outcome="continue")

    desk.service.forget_decoded_snapshots()
    case = desk.case(case_id)

    assert vars(case) == vars(replay(desk.events(case_id)))
    assert [c.payment_message_id for c in case.claims] == ["claim-pay-1"]
