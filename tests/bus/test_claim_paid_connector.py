"""The fund's `ClaimPaid` without a broker: through the decisions topic's codec and back (beside
its decisions), and into the case by the fund-decisions connector — on a real in-memory case
service with a recorded claim — once: the report again records nothing, a report that does not
fit the claim is refused naming the field and the rule (dead-lettered by the consumer), a
concurrent change of the case is retried."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4, uuid5

import pytest

from bus.benefits_codec import FundDecisionCodec
from bus.claims_codec import ClaimPaid
from bus.consumer import Received, TransientError
from bus.envelope import event_id
from bus.registry_sqlite import SQLiteSchemaRegistry
from connectors.fund_decisions.recorder import DecisionRecorder, DecisionRefusedError
from domain.commands import Actor, Command
from domain.errors import ConcurrentChangeError
from domain.events import ReimbursementPaid
from tests.bus.test_benefits_codec import DECISIONS, FakeBenefits
from tests.domain.case_desk import TODAY, Desk, build_desk
from tests.domain.test_advance_claims import APPLICATION, _advanced, _record


@pytest.fixture
def desk() -> Iterator[Desk]:
    """An in-memory case service; its caseworker advances, the claims process claims."""
    built = build_desk(Actor(user_id="anna.keller", role="caseworker",
                             organisation="so-solothurn"))
    yield built
    built.service.close()


def _claimed(desk: Desk) -> tuple[UUID, int]:
    """A case with one claim of 900.00 for the region and 100.00 for the person."""
    case_id = _advanced(desk)
    desk.service.execute(_record(case_id, "1000.00"))
    version = desk.case(case_id).claims[-1].case_version
    assert version is not None
    return case_id, version


def _paid(case_id: UUID, version: int, **fields: Any) -> ClaimPaid:
    data: dict[str, Any] = {
        "claim_id": event_id(case_id, version), "application_id": APPLICATION,
        "case_id": case_id, "case_version": version, "paid_on": TODAY,
        "to_region": Decimal("900.00"), "to_person": Decimal("100.00"),
        "message_id": "fund-pay-1"}
    return ClaimPaid(**(data | fields))


def _received(paid: ClaimPaid) -> Received:
    return Received(paid, paid.event_id, "ClaimPaid", DECISIONS, 0, 0, {})


def test_a_claim_paid_travels_beside_the_decisions_and_comes_back_equal(tmp_path: Path) -> None:
    registry = SQLiteSchemaRegistry(tmp_path / "registry.db")
    codec = FundDecisionCodec(registry, DECISIONS)
    paid = _paid(uuid4(), 7)
    back = codec.decode(codec.encode(paid).value)
    ids = codec.register_schemas()
    registry.close()

    assert back == paid and isinstance(back.to_region, Decimal)
    assert codec.event_id(back) == uuid5(paid.claim_id, "fund-pay-1") == paid.event_id
    assert set(ids) == {"FundDecision", "ClaimPaid"}  # serve registers both for the fund


def test_the_connector_records_a_claim_paid_once(desk: Desk) -> None:
    case_id, version = _claimed(desk)
    recorder = DecisionRecorder("fund-decisions", FakeBenefits(set()), desk.service)
    paid = _paid(case_id, version)

    recorder.handle(_received(paid), None)
    recorder.handle(_received(paid), None)  # re-sent after the fund's restart

    recorded = [e for e in desk.events(case_id) if isinstance(e, ReimbursementPaid)]
    assert len(recorded) == 1
    assert (recorded[0].claim_version, recorded[0].to_region, recorded[0].message_id,
            recorded[0].correlation_id) == (version, Decimal("900.00"), "fund-pay-1",
                                            paid.event_id)
    assert (recorded[0].actor.user_id, recorded[0].actor.role) == ("fund-decisions", "system")
    assert desk.case(case_id).claims[-1].paid_on == TODAY


@pytest.mark.parametrize(("fields", "reason"), [
    ({"claim_id": UUID(int=5)}, "claim_id: .* is not the event at version"),
    ({"to_region": Decimal("1000.00")}, "rule paid-as-claimed: to_region"),
    ({"to_person": Decimal("-100.00")}, "to_person"),
    ({"application_id": UUID(int=8)}, "rule known-claim: application_id"),
    ({"message_id": "x" * 36}, "message_id"),
    ({"paid_on": date(2020, 1, 1)}, "paid_on"),
])
def test_a_claim_paid_that_does_not_fit_the_claim_is_refused_naming_why(
    desk: Desk, fields: dict[str, Any], reason: str
) -> None:
    case_id, version = _claimed(desk)
    recorder = DecisionRecorder("fund-decisions", FakeBenefits(set()), desk.service)
    before = desk.case(case_id).version

    with pytest.raises(DecisionRefusedError, match=reason):
        recorder.handle(_received(_paid(case_id, version, **fields)), None)

    assert desk.case(case_id).version == before


def test_a_claim_paid_again_in_another_file_or_for_no_case_is_refused(desk: Desk) -> None:
    case_id, version = _claimed(desk)
    recorder = DecisionRecorder("fund-decisions", FakeBenefits(set()), desk.service)
    recorder.handle(_received(_paid(case_id, version)), None)

    with pytest.raises(DecisionRefusedError, match="rule claim-paid-once: message_id"):
        recorder.handle(_received(_paid(case_id, version, message_id="fund-pay-2")), None)
    stranger = uuid4()
    with pytest.raises(DecisionRefusedError, match=r"case_id: .* no such case"):
        recorder.handle(_received(_paid(stranger, 3, claim_id=event_id(stranger, 3))), None)


class ConflictingCases:
    """A case service whose case moved on meanwhile, once."""

    def __init__(self, cases: Any) -> None:
        self.cases = cases
        self.conflicts = 1

    def execute(self, command: Command) -> Any:
        if self.conflicts:
            self.conflicts -= 1
            raise ConcurrentChangeError(getattr(command, "case_id", uuid4()))
        return self.cases.execute(command)


def test_a_claim_paid_meeting_a_concurrent_change_is_retried(desk: Desk) -> None:
    case_id, version = _claimed(desk)
    recorder = DecisionRecorder("fund-decisions", FakeBenefits(set()),
                                ConflictingCases(desk.service))
    paid = _paid(case_id, version)

    with pytest.raises(TransientError):
        recorder.handle(_received(paid), None)
    recorder.handle(_received(paid), None)

    assert desk.case(case_id).claims[-1].payment_message_id == "fund-pay-1"
