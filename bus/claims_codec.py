"""Reimbursement claims on the bus (issue 15): the claims topic, read by the fund.

When a case records a reimbursement claim or its correction (`ReimbursementRecorded`), the
claims relay publishes it as one `ReimbursementClaim` (namespace `ch.nervenbahn.benefits`,
`schemas/benefits/ReimbursementClaim.avsc`), key = application id, so an application's claims
stay in order. It names no person and no account: the fund pays the social region's part
(`claim_total`) and the person's (`surplus_total`) from its own records, and pays each
`claim_id` once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from bus.record_codec import field_mismatches
from domain.events import ClaimFigures
from schemas import BENEFITS_NAMESPACE

__all__ = ["CLAIM_RECORD", "ReimbursementClaim", "reimbursement_claim_mismatches"]

CLAIM_RECORD = "ReimbursementClaim"


@dataclass(frozen=True)
class ReimbursementClaim:
    """One claim (or correction) as it goes to the fund: the recorded figures, the ids that
    identify it, the social region it is owed to and its place among the application's
    claims."""

    claim_id: UUID
    application_id: UUID
    case_id: UUID
    case_version: int
    region: str
    sequence: int
    recorded_on: date
    months: list[ClaimFigures]
    corrections: list[ClaimFigures]
    claim_total: Decimal
    surplus_total: Decimal
    ipv_offset_total: Decimal


def reimbursement_claim_mismatches(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, problem) for each difference between `ReimbursementClaim` and its schema."""
    problems = field_mismatches(ReimbursementClaim, schema, {})
    if (schema.get("name"), schema.get("namespace")) != (CLAIM_RECORD, BENEFITS_NAMESPACE):
        problems.append(("(schema)", f"record must be {BENEFITS_NAMESPACE}.{CLAIM_RECORD}"))
    return problems
