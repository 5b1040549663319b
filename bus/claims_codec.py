"""Reimbursement claims on the bus (issue 15): the claims topic, read by the fund.

When a case records a reimbursement claim or its correction (`ReimbursementRecorded`), the
claims relay publishes it as one `ReimbursementClaim` (namespace `ch.nervenbahn.benefits`,
`schemas/benefits/ReimbursementClaim.avsc`), key = application id, so an application's claims
stay in order. It names no person and no account: the fund pays the social region's part
(`claim_total`) and the person's (`surplus_total`) from its own records, and pays each
`claim_id` once.

`ReimbursementClaimCodec` writes it (and reads it, for tests and the fund's side) with the
current schema registered under `<claims topic>-ch.nervenbahn.benefits.ReimbursementClaim`.
`claims_encoder` is the claims relay's encoder: it reads the case store's notification log like
the case-events relay, with a position of its own, and turns each `ReimbursementRecorded` into
one claim; every other case event publishes nothing. What the event does not carry it reads
from the case's history up to the event, which is fixed once recorded, so a message published
again after a crash is the same message: the social region the case belonged to when the claim
was recorded (a case handed over later still owes the first region's claims to it) and the
claim's place among the application's claims on that case (`sequence`). `claim_id` is the
event's own id (`bus.envelope.event_id` of case and version), so the claim and the case event
that recorded it are found by the same id on both topics.

Back from the fund: once it has paid a claim (its payment file written), the fund's
application writes a `ClaimPaid` to the decisions topic beside its decisions; the
fund-decisions connector reads both (`bus.benefits_codec.FundDecisionCodec`) and records the
payment on the case (`ReimbursementPaid`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

from bus.envelope import event_id, message_headers
from bus.errors import EncodeError
from bus.record_codec import (
    RecordCodec,
    RecordType,
    current_schema,
    field_mismatches,
    refuse_mismatches,
)
from bus.registry import SchemaRegistry
from bus.relay import Encoder, OutgoingMessage
from domain.application.ports import CaseEventSource
from domain.events import CaseHandedOver, CaseOpened, ClaimFigures, ReimbursementRecorded
from schemas import BENEFITS_NAMESPACE, SCHEMA_DIR

__all__ = [
    "CLAIM_RECORD",
    "PAID_RECORD",
    "ClaimPaid",
    "ReimbursementClaim",
    "ReimbursementClaimCodec",
    "claim_of",
    "claim_paid_mismatches",
    "claims_encoder",
    "reimbursement_claim_mismatches",
]

CLAIM_RECORD = "ReimbursementClaim"
PAID_RECORD = "ClaimPaid"


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


class ReimbursementClaimCodec(RecordCodec):
    """Writes (and reads) reimbursement claims on the claims topic (Confluent wire format)."""

    def __init__(
        self, registry: SchemaRegistry, topic: str, *, schema_dir: Path = SCHEMA_DIR
    ) -> None:
        schema = current_schema("benefits", CLAIM_RECORD, schema_dir)
        refuse_mismatches(CLAIM_RECORD, reimbursement_claim_mismatches(schema))
        kind = RecordType(
            ReimbursementClaim, schema, _claim_record, _claim_from_record,
            describe=lambda record: f"ReimbursementClaim {record.get('claim_id')}",
        )
        super().__init__(registry, topic, [kind], kind="a reimbursement claim")

    def event_id(self, claim: ReimbursementClaim) -> UUID:
        """The id a reader deduplicates a claim by: its claim id (the `event_id` header)."""
        return claim.claim_id


def claim_of(event: ReimbursementRecorded, cases: CaseEventSource) -> ReimbursementClaim:
    """The claim a recorded `ReimbursementRecorded` makes, with the social region and the
    sequence read from the case's history before it (`cases`: the case store)."""
    region: str | None = None
    earlier = 0
    for before in cases.case_events(event.originator_id, lte=event.originator_version - 1):
        if isinstance(before, CaseOpened):
            region = before.social_region
        elif isinstance(before, CaseHandedOver):
            region = before.to_region
        elif (isinstance(before, ReimbursementRecorded)
              and before.application_id == event.application_id):
            earlier += 1
    if region is None:
        raise EncodeError(f"ReimbursementRecorded of case {event.originator_id} version "
                          f"{event.originator_version}: the case has no opening before it")
    return ReimbursementClaim(
        claim_id=event_id(event.originator_id, event.originator_version),
        application_id=event.application_id, case_id=event.originator_id,
        case_version=event.originator_version, region=region, sequence=earlier + 1,
        recorded_on=event.effective_date, months=list(event.months),
        corrections=list(event.corrections), claim_total=event.claim_total,
        surplus_total=event.surplus_total, ipv_offset_total=event.ipv_offset_total,
    )


def claims_encoder(codec: ReimbursementClaimCodec, cases: CaseEventSource) -> Encoder:
    """The claims relay's encoder: a `ReimbursementRecorded` as one claim, key = application
    id (an application's claims stay in order), the standard headers with `event_id` = the
    claim id; every other case event publishes nothing (module docstring)."""

    def encode(event: Any) -> list[OutgoingMessage]:
        if not isinstance(event, ReimbursementRecorded):
            return []
        claim = claim_of(event, cases)
        encoded = codec.encode(claim)
        headers = message_headers(
            encoded.event_type, encoded.schema_id, event_id=claim.claim_id,
            recorded_at=event.timestamp, effective_date=event.effective_date,
            correlation_id=event.correlation_id,
        )
        return [(str(claim.application_id).encode(), encoded.value, headers)]

    return encode


_AMOUNTS = ("claim_total", "surplus_total", "ipv_offset_total")
_MONTH_AMOUNTS = ("paid", "el", "ipv_offset", "claim", "surplus")


def _claim_record(claim: ReimbursementClaim) -> dict[str, Any]:
    record = dataclasses.asdict(claim)
    for name in _AMOUNTS:
        _require_chf(name, record[name])
    for field in ("months", "corrections"):
        for month in record[field]:
            for name in _MONTH_AMOUNTS:
                _require_chf(f"{field}.{name}", month[name])
    return record


def _require_chf(field: str, value: Any) -> None:
    """EncodeError naming `field` unless `value` is a CHF amount the schema holds (a Decimal
    of at most 2 places and 10 digits before the point)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise EncodeError(f"{field}: {value!r} is not a CHF Decimal")
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int) or exponent < -2 or abs(value) >= Decimal("1e10"):
        raise EncodeError(f"{field}: {value} does not fit CHF with 2 places and 12 digits")


def _claim_from_record(record: dict[str, Any]) -> ReimbursementClaim:
    return ReimbursementClaim(**{
        **record,
        "months": [ClaimFigures(**month) for month in record["months"]],
        "corrections": [ClaimFigures(**month) for month in record["corrections"]],
    })


@dataclass(frozen=True)
class ClaimPaid:
    """The fund's report that it paid one claim, as it arrives on the decisions topic beside
    its decisions: which claim (`claim_id`, and the case and version that recorded it), on
    which day, how much to the social region and to the person, in which payment file."""

    claim_id: UUID
    application_id: UUID
    case_id: UUID
    case_version: int
    paid_on: date
    to_region: Decimal
    to_person: Decimal
    message_id: str

    @property
    def event_id(self) -> UUID:
        """The id a consumer deduplicates it by: the claim paid in that file (the same report
        again is taken once; a report of the same claim in another file reaches the case,
        which refuses it)."""
        return uuid5(self.claim_id, self.message_id)


def claim_paid_mismatches(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, problem) for each difference between `ClaimPaid` and its schema."""
    problems = field_mismatches(ClaimPaid, schema, {})
    if (schema.get("name"), schema.get("namespace")) != (PAID_RECORD, BENEFITS_NAMESPACE):
        problems.append(("(schema)", f"record must be {BENEFITS_NAMESPACE}.{PAID_RECORD}"))
    return problems
