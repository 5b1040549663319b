"""Advances in view of a benefit, on the case: started with the person's commitment or payment
order for a pending EL application of a household member, ended when the application is
decided or withdrawn or the case closes (SKOS F.2, ELV Art. 22 para. 4)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from domain import commands
from domain.application.cases import CaseService
from domain.case import BenefitOnRecord
from domain.errors import ApplicationNotFoundError, RuleViolationError
from domain.events import Advance, AdvanceEnded, AdvanceStarted, CaseClosed

from .benefit_desk import build_benefit_desk
from .case_desk import OMIT, TODAY, Desk, build_desk, person_input, replay

APPLICATION = UUID(int=3)


def _pending(desk: Desk, person_id: UUID, *, kind: str = "el_ahv", stage: str = "forwarded",
             application_id: UUID = APPLICATION) -> BenefitOnRecord:
    return desk.benefits.add(BenefitOnRecord(application_id, kind, person_id, stage))


def _applicant(desk: Desk, case_id: UUID) -> UUID:
    return desk.case(case_id).applicant.person_id


def _advanced(desk: Desk) -> UUID:
    case_id = desk.supported()
    _pending(desk, _applicant(desk, case_id))
    desk.run("start_advance", case_id=case_id, commitment_kind="payment_order")
    return case_id


def test_advance_for_the_applicant_records_application_commitment_and_start(desk: Desk) -> None:
    case_id = desk.supported()
    person = _applicant(desk, case_id)
    _pending(desk, person, kind="el_iv", stage="received")

    desk.run("start_advance", case_id=case_id, commitment_date=TODAY - timedelta(days=2))

    event = desk.events(case_id)[-1]
    assert isinstance(event, AdvanceStarted)
    assert (event.application_id, event.benefit_kind, event.person_id) == (
        APPLICATION, "el_iv", person)
    assert (event.commitment_kind, event.commitment_date) == ("commitment",
                                                              TODAY - timedelta(days=2))
    assert event.effective_date == TODAY.replace(day=1)
    expected = Advance(APPLICATION, "el_iv", person, "commitment", TODAY - timedelta(days=2),
                       TODAY.replace(day=1))
    assert desk.case(case_id).advances == [expected]
    assert replay(desk.events(case_id)).advances == [expected]
    assert expected.is_open


def test_advance_for_another_household_member(desk: Desk) -> None:
    case_id = desk.open(household_size=2, other_members=[person_input(2)])
    desk.run("complete_assessment", case_id=case_id)
    desk.run("grant_support", case_id=case_id)
    partner = desk.case(case_id).other_members[0].person_id
    _pending(desk, partner)

    desk.run("start_advance", case_id=case_id)

    assert desk.case(case_id).advances[0].person_id == partner


@pytest.mark.parametrize("missing", ["commitment_kind", "commitment_date"])
def test_no_advance_without_the_commitment(desk: Desk, missing: str) -> None:
    case_id = desk.supported()
    _pending(desk, _applicant(desk, case_id))

    desk.refused(desk.commands("start_advance", case_id=case_id, **{missing: OMIT}),
                 rule="advance-requires-commitment", mentions=(missing, "SKOS F.2"))


def test_commitment_cannot_be_dated_in_the_future(desk: Desk) -> None:
    case_id = desk.supported()
    _pending(desk, _applicant(desk, case_id))

    desk.refused(desk.commands("start_advance", case_id=case_id,
                               commitment_date=TODAY + timedelta(days=1)),
                 rule="effective-date-limit", mentions=("commitment_date",))


def test_one_open_advance_per_application(desk: Desk) -> None:
    case_id = _advanced(desk)

    desk.refused(desk.commands("start_advance", case_id=case_id),
                 rule="one-open-advance-per-application", mentions=(str(APPLICATION),))


def test_advance_only_for_a_household_member(desk: Desk) -> None:
    case_id = desk.supported()
    _pending(desk, uuid4())

    desk.refused(desk.commands("start_advance", case_id=case_id),
                 rule="advance-for-household-member", mentions=("application_id",))


def test_advance_only_in_view_of_el(desk: Desk) -> None:
    case_id = desk.supported()
    _pending(desk, _applicant(desk, case_id), kind="ipv")

    desk.refused(desk.commands("start_advance", case_id=case_id),
                 rule="advance-in-view-of-el", mentions=("ipv",))


@pytest.mark.parametrize("stage", ["granted", "refused", "ended", "withdrawn"])
def test_advance_only_for_a_pending_application(desk: Desk, stage: str) -> None:
    case_id = desk.supported()
    _pending(desk, _applicant(desk, case_id), stage=stage)

    desk.refused(desk.commands("start_advance", case_id=case_id),
                 rule="advance-for-pending-application", mentions=(stage,))


def test_advance_requires_support(desk: Desk) -> None:
    case_id = desk.assessed()
    _pending(desk, _applicant(desk, case_id))

    desk.refused(desk.commands("start_advance", case_id=case_id),
                 rule="advance-requires-support")


def test_advance_cannot_start_before_support(desk: Desk) -> None:
    case_id = desk.supported()
    _pending(desk, _applicant(desk, case_id))
    before = TODAY.replace(day=1) - timedelta(days=1)

    desk.refused(desk.commands("start_advance", case_id=case_id, advance_from=before),
                 rule="advance-within-support", mentions=("advance_from",))


def test_unknown_application_is_not_found_and_nothing_recorded(desk: Desk) -> None:
    case_id = desk.supported()

    desk.refused(desk.commands("start_advance", case_id=case_id), ApplicationNotFoundError)


def test_advance_not_on_a_closed_case(desk: Desk) -> None:
    case_id = desk.supported()
    _pending(desk, _applicant(desk, case_id))
    desk.run("close_case", case_id=case_id)

    desk.refused(desk.commands("start_advance", case_id=case_id),
                 rule="closed-case-only-reopens")


@pytest.mark.parametrize(("stage", "reason"), [
    ("granted", "decided"), ("refused", "decided"), ("ended", "decided"),
    ("withdrawn", "withdrawn"),
])
def test_advance_ends_when_the_application_is_decided_or_withdrawn(
    desk: Desk, stage: str, reason: str,
) -> None:
    case_id = _advanced(desk)
    _pending(desk, _applicant(desk, case_id), stage=stage)
    desk.clock.advance(days=3)

    desk.run("end_advance", case_id=case_id, reason=reason)

    event = desk.events(case_id)[-1]
    assert isinstance(event, AdvanceEnded)
    assert (event.application_id, event.reason, event.effective_date) == (
        APPLICATION, reason, TODAY + timedelta(days=3))
    (advance,) = desk.case(case_id).advances
    assert (advance.ended_on, advance.end_reason, advance.is_open) == (
        TODAY + timedelta(days=3), reason, False)


@pytest.mark.parametrize(("stage", "reason"), [
    ("forwarded", "decided"), ("withdrawn", "decided"), ("granted", "withdrawn"),
])
def test_advance_ends_only_with_what_happened_to_the_application(
    desk: Desk, stage: str, reason: str,
) -> None:
    case_id = _advanced(desk)
    _pending(desk, _applicant(desk, case_id), stage=stage)

    desk.refused(desk.commands("end_advance", case_id=case_id, reason=reason),
                 rule="advance-ends-with-application", mentions=(reason, stage))


def test_only_an_open_advance_ends(desk: Desk) -> None:
    case_id = _advanced(desk)
    _pending(desk, _applicant(desk, case_id), stage="granted")
    desk.run("end_advance", case_id=case_id)

    desk.refused(desk.commands("end_advance", case_id=case_id), rule="open-advance")


def test_closing_the_case_ends_its_open_advances_first(desk: Desk) -> None:
    case_id = _advanced(desk)
    desk.clock.advance(days=5)

    result = desk.run("close_case", case_id=case_id, reason="other_insurance")

    assert result.events == ("AdvanceEnded", "CaseClosed")
    ended, closed = desk.events(case_id)[-2:]
    assert isinstance(ended, AdvanceEnded) and isinstance(closed, CaseClosed)
    assert (ended.reason, ended.effective_date) == ("case_closed", TODAY + timedelta(days=5))
    assert desk.case(case_id).advances[0].end_reason == "case_closed"


def test_after_reopening_the_case_advances_again_for_the_same_pending_application(
    desk: Desk,
) -> None:
    case_id = _advanced(desk)
    desk.run("close_case", case_id=case_id)
    desk.clock.advance(days=7)
    desk.run("reopen_case", case_id=case_id)
    desk.run("complete_assessment", case_id=case_id)
    desk.run("grant_support", case_id=case_id, support_from=TODAY + timedelta(days=7))

    desk.run("start_advance", case_id=case_id, advance_from=TODAY + timedelta(days=7))

    assert [a.is_open for a in desk.case(case_id).advances] == [False, True]


def test_a_service_without_the_benefits_store_refuses_advances(actor: commands.Actor) -> None:
    desk = build_desk(actor)
    desk.service = CaseService({"PERSISTENCE_MODULE": "eventsourcing.popo"},
                               vault=desk.service.vault, reference=desk.reference,
                               clock=desk.clock)
    case_id = desk.supported()
    _pending(desk, _applicant(desk, case_id))  # known to the desk, not to the service

    with pytest.raises(RuleViolationError, match=r"\[rule: benefits-connected\]"):
        desk.service.execute(desk.commands("start_advance", case_id=case_id))
    assert len(desk.events(case_id)) == 3


def test_the_benefits_store_answers_what_a_case_needs(actor: commands.Actor) -> None:
    benefits = build_benefit_desk()
    desk = build_desk(actor)
    case_id = desk.supported()
    person = _applicant(desk, case_id)
    application_id = benefits.receive(applicant=person_input(1, person_id=str(person)))

    on_record = benefits.service.on_record(application_id)

    assert on_record == BenefitOnRecord(application_id, "el_ahv", person, "received")
    desk.benefits.add(on_record)
    desk.run("start_advance", case_id=case_id, application_id=application_id)
    assert desk.case(case_id).advances[0].application_id == application_id
    with pytest.raises(ApplicationNotFoundError):
        benefits.service.on_record(uuid4())
