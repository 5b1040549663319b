"""The claims topic's codec (`bus.claims_codec.ReimbursementClaimCodec`): a claim travels
and comes back equal (negative corrections, CHF as Decimals with 2 places), under its subject;
an amount the schema cannot hold is refused naming the field; another record is not read as a
claim; a claim names the social region the case was in when it was recorded."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bus.benefits_codec import FundDecision, FundDecisionCodec
from bus.claims_codec import ReimbursementClaim, ReimbursementClaimCodec, claim_of
from bus.envelope import event_id
from bus.errors import DecodeError, EncodeError
from bus.registry_sqlite import SQLiteSchemaRegistry
from domain.events import CaseHandedOver, ClaimFigures, ReimbursementRecorded

CLAIMS = "t.benefits.claims.v1"


def _month(month: int, paid: str, el: str, claim: str, surplus: str) -> ClaimFigures:
    return ClaimFigures(date(2026, month, 1), Decimal(paid), Decimal(el), Decimal("0.00"),
                        Decimal(claim), Decimal(surplus))


CORRECTION = ReimbursementClaim(
    claim_id=uuid.uuid4(), application_id=uuid.uuid4(), case_id=uuid.uuid4(), case_version=12,
    region="so-olten", sequence=2, recorded_on=date(2026, 6, 10),
    months=[_month(4, "2000.00", "2600.00", "2000.00", "600.00")],
    corrections=[_month(4, "-400.00", "0.00", "-400.00", "400.00")],
    claim_total=Decimal("-400.00"), surplus_total=Decimal("400.00"),
    ipv_offset_total=Decimal("0.00"))


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[SQLiteSchemaRegistry]:
    registry = SQLiteSchemaRegistry(tmp_path / "registry.db")
    yield registry
    registry.close()


def test_a_correction_travels_and_comes_back_equal(registry: SQLiteSchemaRegistry) -> None:
    codec = ReimbursementClaimCodec(registry, CLAIMS)

    encoded = codec.encode(CORRECTION)
    back = codec.decode(encoded.value)

    assert back == CORRECTION and codec.event_id(back) == CORRECTION.claim_id
    assert encoded.event_type == "ReimbursementClaim"
    assert codec.subject("ReimbursementClaim") == (
        f"{CLAIMS}-ch.nervenbahn.benefits.ReimbursementClaim")
    assert registry.schema_by_id(encoded.schema_id)["name"] == "ReimbursementClaim"


@pytest.mark.parametrize(("change", "field"), [
    ({"claim_total": -400}, "claim_total: -400 is not a CHF Decimal"),
    ({"surplus_total": Decimal("400.005")}, "surplus_total: 400.005 does not fit"),
    ({"ipv_offset_total": Decimal("NaN")}, r"ipv_offset_total: Decimal\('NaN'\) is not a CHF"),
    ({"months": [dataclasses.replace(CORRECTION.months[0], el=Decimal("1e10"))]},
     "months.el: 1E\\+10 does not fit"),
])
def test_an_amount_the_schema_cannot_hold_is_refused_naming_the_field(
    registry: SQLiteSchemaRegistry, change: dict[str, Any], field: str
) -> None:
    codec = ReimbursementClaimCodec(registry, CLAIMS)
    with pytest.raises(EncodeError, match=field):
        codec.encode(dataclasses.replace(CORRECTION, **change))


def test_another_record_is_not_read_as_a_claim(registry: SQLiteSchemaRegistry) -> None:
    decision = FundDecision(uuid.uuid4(), uuid.uuid4(), "refused", date(2026, 6, 1),
                            reason="income_sufficient")
    value = FundDecisionCodec(registry, CLAIMS).encode(decision).value
    with pytest.raises(DecodeError, match="FundDecision, not a reimbursement claim"):
        ReimbursementClaimCodec(registry, CLAIMS).decode(value)


class StoredEvents:
    """The case events of `events` by case, as the case store gives them back."""

    def __init__(self, events: list[Any]) -> None:
        self._events = events

    def case_events(self, case_id: uuid.UUID, *, lte: int, desc: bool = False) -> list[Any]:
        found = [e for e in self._events
                 if e.originator_id == case_id and e.originator_version <= lte]
        return found[::-1] if desc else found


def test_a_claim_names_the_region_of_when_it_was_recorded_not_of_a_later_handover(
    recorded_events: list[Any],
) -> None:
    (recorded,) = [e for e in recorded_events if isinstance(e, ReimbursementRecorded)]
    history = [e for e in recorded_events if e.originator_id == recorded.originator_id]
    opened = history[0]
    (handover,) = [e for e in history if isinstance(e, CaseHandedOver)]

    claim = claim_of(recorded, StoredEvents(recorded_events))

    assert handover.originator_version > recorded.originator_version  # handed over later
    assert claim.region == opened.social_region != handover.to_region
    assert (claim.sequence, claim.case_version) == (1, recorded.originator_version)
    assert claim.claim_id == event_id(recorded.originator_id, recorded.originator_version)
    assert (claim.months, claim.claim_total) == (recorded.months, recorded.claim_total)
