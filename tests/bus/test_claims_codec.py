"""The claims topic's codec (`bus.claims_codec.ReimbursementClaimCodec`): a claim travels
and comes back equal (negative corrections, CHF as Decimals with 2 places), under its subject;
an amount the schema cannot hold is refused naming the field; another record is not read as a
claim."""

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
from bus.claims_codec import ReimbursementClaim, ReimbursementClaimCodec
from bus.errors import DecodeError, EncodeError
from bus.registry_sqlite import SQLiteSchemaRegistry
from domain.events import ClaimFigures

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
