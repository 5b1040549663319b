"""Claims recorded once: the claims process (`AdvanceClaims`) records each advance's
reimbursement on its case when the EL is decided, corrections when the facts change, nothing
when they do not; the decision ends the advance (`decided`) and proposes the budget follow it
(a budget change, or a closure where EL covers the needs), never applied automatically.

The worked example of `docs/benefits.md` (`test_reimbursement.record_worked_example_to_may`):
support of CHF 2,400.00 a month from January, advanced from January; EL from February
1,900.00, from April 2,600.00, granted 20 May; a budget change effective March (2,000.00)
recorded 10 June, with June's claim-backs of 400.00 for March to May."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from domain.application.claims import CLAIMS_ACTOR, AdvanceClaims
from domain.case import BenefitOnRecord
from domain.commands import Actor, RecordReimbursement
from domain.events import (
    AdvanceEnded,
    BudgetChangeProposed,
    ClaimFigures,
    ClosureProposed,
    ReimbursementRecorded,
    proposals_of,
)

from .case_desk import TODAY, Desk, person_input, replay
from .test_reimbursement import WorkedExample, record_worked_example_to_may


def _chf(text: str) -> Decimal:
    return Decimal(text)


def _figures(month: int, paid: str, el: str, claim: str, surplus: str) -> ClaimFigures:
    return ClaimFigures(date(2026, month, 1), _chf(paid), _chf(el), _chf("0.00"), _chf(claim),
                        _chf(surplus))


@pytest.fixture
def example(actor: Actor) -> WorkedExample:
    """The worked example until May's payment run, and the fund's grant on 20 May."""
    example = record_worked_example_to_may(actor)
    example.on(date(2026, 5, 20))
    example.benefits.run("grant_benefit", application_id=example.application_id,
                         from_month="2026-02",
                         amounts=[{"from_month": "2026-02", "monthly_chf": "1900.00"},
                                  {"from_month": "2026-04", "monthly_chf": "2600.00"}])
    return example


def _claims(example: WorkedExample) -> AdvanceClaims:
    return AdvanceClaims(example.desk.service, example.benefits.service, example.payments,
                         clock=example.desk.clock)


def _recorded(example: WorkedExample, before: int) -> list[object]:
    return example.desk.events(example.case_id)[before:]


def test_the_decision_records_the_claim_ends_the_advance_and_proposes_closure(
    example: WorkedExample,
) -> None:
    before = len(example.desk.events(example.case_id))

    (outcome,) = _claims(example).run()

    assert outcome.events == ("AdvanceEnded", "ReimbursementRecorded", "ClosureProposed")
    ended, recorded, proposed = _recorded(example, before)
    assert isinstance(ended, AdvanceEnded)
    assert (ended.reason, ended.effective_date, ended.actor) == (
        "decided", date(2026, 5, 20), CLAIMS_ACTOR)
    assert isinstance(recorded, ReimbursementRecorded)
    # By hand (docs/benefits.md): claim = min(paid, EL), surplus = EL - claim; January is
    # advanced without EL (application in February) and not claimed.
    may = [_figures(2, "2400.00", "1900.00", "1900.00", "0.00"),
           _figures(3, "2400.00", "1900.00", "1900.00", "0.00"),
           _figures(4, "2400.00", "2600.00", "2400.00", "200.00"),
           _figures(5, "2400.00", "2600.00", "2400.00", "200.00")]
    assert recorded.months == may
    assert recorded.corrections == may  # the first computation: the claim itself
    assert (recorded.claim_total, recorded.surplus_total, recorded.ipv_offset_total) == (
        _chf("8600.00"), _chf("400.00"), _chf("0.00"))
    # EL from May (2,600.00) covers the budget (2,400.00): closure proposed, not done.
    assert isinstance(proposed, ClosureProposed)
    assert (proposed.reason, proposed.source, proposed.effective_date) == (
        "other_insurance", "el_decision", date(2026, 5, 20))  # due from the decision
    case = example.desk.case(example.case_id)
    assert case.phase == "supported"
    assert [p.kind for p in proposals_of(case).values() if p.status == "open"] == ["closure"]


def test_the_same_facts_twice_record_nothing(example: WorkedExample) -> None:
    claims = _claims(example)
    claims.run()
    version = example.desk.case(example.case_id).version

    (again,) = claims.run()

    assert again.events == ()
    assert example.desk.case(example.case_id).version == version


def test_a_late_payment_correction_records_a_correction_for_the_difference_only(
    example: WorkedExample,
) -> None:
    claims = _claims(example)
    claims.run()
    # 10 June: budget 2,000.00 from March; June's run claims back 400.00 for March to May.
    example.on(date(2026, 6, 10))
    example.desk.run("change_budget", case_id=example.case_id, effective_date="2026-03-01",
                     reason="income_change", housing=str(example.housing), income="400.00")
    example.run("2026-06")
    before = len(example.desk.events(example.case_id))

    (june,) = claims.run()
    (third,) = claims.run()

    assert june.events == ("ReimbursementRecorded",)
    (correction,) = _recorded(example, before)
    assert isinstance(correction, ReimbursementRecorded)
    # March: paid 2,000.00 >= EL 1,900.00, the claim stays 1,900.00; April and May: the
    # claim falls to 2,000.00 (-400.00), the surplus rises to 600.00 (+400.00).
    assert correction.corrections == [
        ClaimFigures(date(2026, m, 1), _chf("-400.00"), _chf("0.00"), _chf("0.00"),
                     _chf("-400.00"), _chf("400.00")) for m in (4, 5)]
    assert (correction.claim_total, correction.surplus_total) == (_chf("-800.00"),
                                                                  _chf("800.00"))
    claims_in_all = sum(c.claim_total for c in example.desk.case(example.case_id).claims)
    assert claims_in_all == _chf("7800.00")  # the claim computed once from June's facts
    assert third.events == ()


def test_an_amended_decision_records_a_correction_and_proposes_the_new_amount(
    example: WorkedExample,
) -> None:
    claims = _claims(example)
    claims.run()
    # 15 June: the fund amends from April to 2,400.00 (retroactively).
    example.on(date(2026, 6, 15))
    example.benefits.run("amend_decision", application_id=example.application_id,
                         amounts=[{"from_month": "2026-04", "monthly_chf": "2400.00"}],
                         reason="pension recalculated")
    before = len(example.desk.events(example.case_id))

    (amended,) = claims.run()

    assert amended.events == ("ReimbursementRecorded", "ClosureProposed")
    correction, proposed = _recorded(example, before)
    assert isinstance(correction, ReimbursementRecorded)
    # April and May: EL 2,600.00 -> 2,400.00; paid 2,400.00, so the claim stays 2,400.00
    # and the person's surplus of 200.00 a month goes.
    assert correction.corrections == [
        ClaimFigures(date(2026, m, 1), _chf("0.00"), _chf("-200.00"), _chf("0.00"),
                     _chf("0.00"), _chf("-200.00")) for m in (4, 5)]
    assert (correction.claim_total, correction.surplus_total) == (_chf("0.00"),
                                                                  _chf("-400.00"))
    assert isinstance(proposed, ClosureProposed)
    assert proposed.external_reference.endswith(":2026-05:2400.00")
    assert claims.run()[0].events == ()


IPV_DOCUMENTS = ["signed_application", "tax_assessment", "health_insurance_policy"]


def _premium_reduction(example: WorkedExample, serial: int, person_id: UUID,
                       monthly: str) -> UUID:
    """A premium-reduction (IPV) application of `person_id`, received in January and granted
    today from January at `monthly` CHF a month."""
    application_id = example.benefits.forwarded(
        documents=IPV_DOCUMENTS, kind="ipv", received_on=date(2026, 1, 15),
        applicant=person_input(serial, person_id=str(person_id)))
    example.benefits.run("grant_benefit", application_id=application_id, from_month="2026-01",
                         amounts=[{"from_month": "2026-01", "monthly_chf": monthly}])
    return application_id


def test_the_premium_reduction_of_the_same_person_is_offset_first(
    example: WorkedExample,
) -> None:
    person = example.desk.case(example.case_id).applicant.person_id
    _premium_reduction(example, 1, person, "150.00")
    _premium_reduction(example, 3, uuid4(), "999.00")  # another person's: not offset
    before = len(example.desk.events(example.case_id))

    (outcome,) = _claims(example).run()

    assert outcome.events == ("AdvanceEnded", "ReimbursementRecorded", "ClosureProposed")
    recorded = _recorded(example, before)[1]
    assert isinstance(recorded, ReimbursementRecorded)
    # By hand (ELV Art. 22 para. 5: the premium reduction first, then the claim):
    #   Feb, Mar: EL 1900 - IPV 150 = 1750 left; claim min(paid 2400, 1750) = 1750; surplus 0
    #   Apr, May: EL 2600 - IPV 150 = 2450 left; claim min(paid 2400, 2450) = 2400; surplus 50
    # January has IPV but no EL (the EL application was filed in February): nothing offset.
    offset = [ClaimFigures(date(2026, m, 1), _chf("2400.00"), _chf(el), _chf("150.00"),
                           _chf(claim), _chf(surplus))
              for m, el, claim, surplus in ((2, "1900.00", "1750.00", "0.00"),
                                            (3, "1900.00", "1750.00", "0.00"),
                                            (4, "2600.00", "2400.00", "50.00"),
                                            (5, "2600.00", "2400.00", "50.00"))]
    assert recorded.months == recorded.corrections == offset
    # 8300 + 600 + 100 = 9000, the EL back-payment
    assert (recorded.claim_total, recorded.ipv_offset_total, recorded.surplus_total) == (
        _chf("8300.00"), _chf("600.00"), _chf("100.00"))
    assert _claims(example).run()[0].events == ()


def test_a_premium_reduction_granted_after_the_claim_is_offset_by_a_correction(
    example: WorkedExample,
) -> None:
    claims = _claims(example)
    claims.run()
    example.on(date(2026, 6, 1))
    person = example.desk.case(example.case_id).applicant.person_id
    _premium_reduction(example, 1, person, "150.00")
    before = len(example.desk.events(example.case_id))

    (late,) = claims.run()

    assert late.events == ("ReimbursementRecorded",)
    (correction,) = _recorded(example, before)
    assert isinstance(correction, ReimbursementRecorded)
    # Feb, Mar: claim 1900 -> 1750 (-150); Apr, May: surplus 200 -> 50 (-150), claim stays.
    assert [(c.month.month, c.ipv_offset, c.claim, c.surplus)
            for c in correction.corrections] == [
        (2, _chf("150.00"), _chf("-150.00"), _chf("0.00")),
        (3, _chf("150.00"), _chf("-150.00"), _chf("0.00")),
        (4, _chf("150.00"), _chf("0.00"), _chf("-150.00")),
        (5, _chf("150.00"), _chf("0.00"), _chf("-150.00"))]


def test_a_refusal_ends_the_advance_and_claims_nothing(actor: Actor) -> None:
    example = record_worked_example_to_may(actor)
    example.on(date(2026, 5, 20))
    example.benefits.run("refuse_benefit", application_id=example.application_id,
                         reason="income_sufficient")
    claims = _claims(example)

    (refused,) = claims.run()

    assert refused.events == ("AdvanceEnded",)
    (advance,) = example.desk.case(example.case_id).advances
    assert (advance.end_reason, advance.ended_on) == ("decided", date(2026, 5, 20))
    assert example.desk.case(example.case_id).claims == []
    assert claims.run() == []  # a refused application with no open advance: not looked at


def test_a_run_stopped_after_one_case_is_finished_by_the_next(
    example: WorkedExample,
) -> None:
    claims = _claims(example)
    other = _second_advanced_case(example)

    first = claims.run([example.case_id])  # "crash" before the second case
    rest = claims.run()

    assert [o.events for o in first] == [
        ("AdvanceEnded", "ReimbursementRecorded", "ClosureProposed")]
    assert {o.case_id: o.events for o in rest} == {
        example.case_id: (),
        other: ("AdvanceEnded", "ReimbursementRecorded", "ClosureProposed")}


def _second_advanced_case(example: WorkedExample) -> UUID:
    """Another supported case (from May), advanced from May for its applicant's own EL
    application, granted the same day as the example's."""
    desk, benefits = example.desk, example.benefits
    case_id = desk.assessed(application_date="2026-05-04", applicant=person_input(2))
    desk.run("grant_support", case_id=case_id, support_from="2026-05-01",
             housing=str(example.housing))
    person = desk.case(case_id).applicant.person_id
    application_id = benefits.forwarded(applicant=person_input(2, person_id=str(person)))
    desk.run("start_advance", case_id=case_id, application_id=application_id,
             advance_from="2026-05-01", commitment_date="2026-05-04")
    benefits.run("grant_benefit", application_id=application_id, from_month="2026-05",
                 amounts=[{"from_month": "2026-05", "monthly_chf": "2600.00"}])
    return case_id


# --- the budget proposal and the command's rules, on the case alone ---------------------------

APPLICATION = UUID(int=7)


def _advanced(desk: Desk) -> UUID:
    case_id = desk.supported()
    person = desk.case(case_id).applicant.person_id
    desk.benefits.add(BenefitOnRecord(APPLICATION, "el_ahv", person, "forwarded"))
    desk.run("start_advance", case_id=case_id, application_id=APPLICATION)
    return case_id


def _record(case_id: UUID, monthly_el: str, actor: Actor = CLAIMS_ACTOR,
            application_id: UUID = APPLICATION) -> RecordReimbursement:
    month = TODAY.replace(day=1)
    return RecordReimbursement(actor=actor, correlation_id=uuid4(), case_id=case_id,
                               application_id=application_id, decided_on=TODAY,
                               el={month: monthly_el}, paid={month: "900.00"},
                               monthly_el=monthly_el)


def test_el_below_the_budget_proposes_a_budget_change_until_a_caseworker_acts(
    desk: Desk,
) -> None:
    case_id = _advanced(desk)

    desk.service.execute(_record(case_id, "500.00"))

    proposed = desk.events(case_id)[-1]
    assert isinstance(proposed, BudgetChangeProposed)
    assert (proposed.income, proposed.from_month, proposed.reason, proposed.effective_date) == (
        _chf("500.00"), TODAY.replace(day=1), "other_insurance", TODAY)
    (proposal,) = proposals_of(desk.case(case_id)).values()
    assert (proposal.kind, proposal.income, proposal.status) == (
        "budget_change", _chf("500.00"), "open")
    recorded = desk.events(case_id)[-2]
    assert isinstance(recorded, ReimbursementRecorded)
    assert (recorded.claim_total, recorded.surplus_total) == (_chf("500.00"), _chf("0.00"))

    desk.run("change_budget", case_id=case_id, income="500.00")
    (proposal,) = proposals_of(desk.case(case_id)).values()
    assert proposal.status == "resolved"


def test_the_el_is_compared_with_the_budget_in_force_in_the_decisions_month(
    desk: Desk,
) -> None:
    case_id = _advanced(desk)
    in_force = desk.case(case_id).budgets[-1].total
    next_month = (TODAY.replace(day=28) + timedelta(days=4)).replace(day=1)
    desk.run("change_budget", case_id=case_id, effective_date=next_month.isoformat(),
             income=str(in_force - _chf("100.00")))  # from next month: 100.00 a month
    assert desk.case(case_id).budgets[-1].total == _chf("100.00")

    desk.service.execute(_record(case_id, "500.00"))

    # 500.00 is below this month's budget, though above next month's: a budget change.
    assert isinstance(desk.events(case_id)[-1], BudgetChangeProposed)


def test_an_amended_amount_proposes_anew_and_can_be_dismissed(desk: Desk) -> None:
    case_id = _advanced(desk)
    desk.service.execute(_record(case_id, "500.00"))
    reference = next(iter(proposals_of(desk.case(case_id))))
    desk.run("dismiss_proposal", case_id=case_id, external_reference=reference)

    desk.service.execute(_record(case_id, "650.00"))

    statuses = {p.income: p.status for p in proposals_of(desk.case(case_id)).values()}
    assert statuses == {_chf("500.00"): "dismissed", _chf("650.00"): "open"}


def test_reimbursement_is_refused_to_a_caseworker_and_without_an_advance(
    desk: Desk, actor: Actor,
) -> None:
    case_id = _advanced(desk)

    desk.refused(_record(case_id, "500.00", actor=actor), rule="reimbursement-by-system",
                 mentions=("actor.role",))
    desk.refused(_record(case_id, "500.00", application_id=UUID(int=8)),
                 rule="advance-for-application", mentions=("application_id",))


def test_a_closed_case_still_records_its_claim_and_proposes_nothing(desk: Desk) -> None:
    case_id = _advanced(desk)
    desk.run("close_case", case_id=case_id)

    result = desk.service.execute(_record(case_id, "500.00"))

    assert result.events == ("ReimbursementRecorded",)
    assert desk.case(case_id).advances[0].end_reason == "case_closed"
    assert proposals_of(desk.case(case_id)) == {}


def test_a_snapshot_keeps_the_claims_and_the_budget_proposal(desk: Desk) -> None:
    case_id = _advanced(desk)
    desk.service.execute(_record(case_id, "500.00"))
    while desk.case(case_id).version < 100:  # the service snapshots at version 100
        desk.run("complete_review", case_id=case_id, outcome="continue")

    assert desk.service.snapshots is not None
    assert [s.originator_version for s in desk.service.snapshots.get(case_id)] == [100]
    desk.service.forget_decoded_snapshots()
    case = desk.case(case_id)
    assert vars(case) == vars(replay(desk.events(case_id)))
    assert [c.claim_total for c in case.claims] == [_chf("500.00")]
    assert [p.income for p in proposals_of(case).values()] == [_chf("500.00")]
