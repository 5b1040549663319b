"""The ports relays and projections read a store through (`domain.application.ports`), as the
case and payment services answer them: positions in recording order, each store its own."""

from __future__ import annotations

import uuid

from domain import commands
from domain.application.payments import PaymentService
from domain.application.ports import CaseEventSource, NotificationLog
from domain.events import CaseOpened, SupportGranted
from domain.payments import RecordPayoutAccount

from .case_desk import POPO_ENV, Desk

IBAN = "CH93 0076 2011 6238 5295 7"


def test_an_empty_store_has_no_position_and_no_notifications(desk: Desk) -> None:
    log: NotificationLog = desk.service
    assert log.max_position() == 0
    assert list(log.notifications(gt=0, limit=10)) == []


def test_notifications_after_a_position_come_in_recording_order_up_to_the_limit(
    desk: Desk,
) -> None:
    first, second = desk.supported(), desk.open()
    log: NotificationLog = desk.service
    everything = log.notifications(gt=0, limit=100)
    assert [n.id for n in everything] == list(range(1, log.max_position() + 1))
    after_one = log.notifications(gt=1, limit=2)
    assert [n.id for n in after_one] == [2, 3]
    events = [log.decode(n) for n in everything]
    assert [(e.originator_id, type(e)) for e in events if isinstance(e, CaseOpened)] == [
        (first, CaseOpened),
        (second, CaseOpened),
    ]


def test_a_case_s_events_up_to_a_version_latest_first(desk: Desk) -> None:
    case_id = desk.supported()
    source: CaseEventSource = desk.service
    ascending = list(source.case_events(case_id, lte=3))
    assert [e.originator_version for e in ascending] == [1, 2, 3]
    descending = list(source.case_events(case_id, lte=3, desc=True))
    assert descending == ascending[::-1]
    assert any(isinstance(e, SupportGranted) for e in ascending)


def test_the_payment_store_s_log_holds_payment_events_only(
    desk: Desk, actor: commands.Actor
) -> None:
    case_id = desk.supported()
    cases_before = desk.service.max_position()
    payments = PaymentService(POPO_ENV, cases=desk.service, clock=desk.clock)
    try:
        log: NotificationLog = payments
        assert log.max_position() == 0
        payments.record_account(RecordPayoutAccount(
            actor=actor, correlation_id=uuid.uuid4(), case_id=case_id, iban=IBAN,
            holder="Anna Muster",
        ))
        (notification,) = log.notifications(gt=0, limit=10)
        assert log.decode(notification).case_id == case_id
        assert desk.service.max_position() == cases_before
    finally:
        payments.close()
