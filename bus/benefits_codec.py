"""Benefit applications on the bus, both ways: the applications topic (out) and the fund's
decisions topic (in), Avro in namespace `ch.nervenbahn.benefits` (`schemas/benefits/`).

Out: `BenefitEventCodec` is the case events' `EventCodec` with the benefit-application family
(`APPLICATION_EVENTS`): every event of an application, the applicant sealed as stored (the
case events' `SealedPersonalData` record), key = application id, so an application's events
stay in order. Delegation events are not published: the fund grants and revokes delegations
inside nervenbahn, and the application events already name the delegation an office acted
under (`delegation_id`), which is what a reader of an application needs.

In: the fund's application (an outside program) writes one `FundDecision` per decision, and
one `ClaimPaid` (`bus.claims_codec`) per reimbursement claim it paid; `FundDecisionCodec` reads
both (and writes them, for tests and the reference fund application's documentation) with the
current schemas registered under `<decisions topic>-ch.nervenbahn.benefits.FundDecision` and
`…ClaimPaid`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from bus.claims_codec import PAID_RECORD, ClaimPaid, claim_paid_mismatches
from bus.codec import EventCodec, EventFamily, schema_mismatches
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
from domain.benefits import (
    APPLICATION_EVENT_TYPES,
    ApplicationForwarded,
    ApplicationReceived,
    ApplicationWithdrawn,
    BenefitApplication,
    BenefitEnded,
    BenefitGranted,
    BenefitRefused,
    DecisionAmended,
    DocumentRequest,
    DocumentsReceived,
    DocumentsRequested,
    MonthlyAmount,
)
from domain.commands import Actor
from domain.identity import UNKNOWN_IDENTITY
from domain.personal_data import PersonalDataVault
from schemas import BENEFITS_NAMESPACE, NAMESPACE, SCHEMA_DIR, record_name

__all__ = [
    "APPLICATION_EVENTS",
    "BENEFITS_NAMESPACE",
    "DECISION_KINDS",
    "BenefitEventCodec",
    "FundDecision",
    "FundDecisionCodec",
    "benefit_event_encoder",
    "benefit_schema_mismatches",
    "fund_decision_mismatches",
]

APPLICATION_EVENTS = EventFamily(
    group="benefits",
    aggregate=BenefitApplication,
    id_field="application_id",
    value_records={
        record_name("Actor", NAMESPACE): Actor,
        record_name("MonthlyAmount", BENEFITS_NAMESPACE): MonthlyAmount,
        record_name("DocumentRequest", BENEFITS_NAMESPACE): DocumentRequest,
    },
    event_types=APPLICATION_EVENT_TYPES,
    kind="a benefit-application event type",
    store_only={"recorded_by": UNKNOWN_IDENTITY},
)
"""The events of a benefit application (`schemas/benefits/`). The established identity
(`recorded_by`) stays in the store, as the case events' (`bus.codec.CASE_EVENTS`): it is
audit metadata, not for the topic's readers (the fund's application among them), who decode
it as `unknown`; the schemas did not change for it."""

DECISION_KINDS = ("granted", "refused", "amended", "ended")
"""The kinds of a fund decision (the `DecisionKind` enum)."""


def benefit_schema_mismatches(
    event_class: type[Any], schema: dict[str, Any]
) -> list[tuple[str, str]]:
    """(field, problem) for each difference between an application event class and its schema
    (also: the record must be ch.nervenbahn.benefits.<EventType>)."""
    problems = schema_mismatches(event_class, schema, APPLICATION_EVENTS)
    if schema.get("namespace") != BENEFITS_NAMESPACE:
        problems.append(("(schema)", f"record must be {BENEFITS_NAMESPACE}.{event_class.__name__}"))
    return problems


class BenefitEventCodec(EventCodec):
    """Encodes benefit-application events for one topic and decodes them (applicants sealed;
    opened into `SealedPersonalData` only with the core's vault)."""

    def __init__(
        self,
        registry: SchemaRegistry,
        topic: str,
        *,
        vault: PersonalDataVault | None = None,
        schema_dir: Path = SCHEMA_DIR,
    ) -> None:
        super().__init__(registry, topic, vault=vault, schema_dir=schema_dir,
                         family=APPLICATION_EVENTS)


def benefit_event_encoder(codec: BenefitEventCodec) -> Encoder:
    """The benefits relay's encoder: each application event, key = application id, with the
    standard headers (effective date: the business day the event speaks of, see
    `_effective_date`); delegation events are not published (module docstring)."""

    def encode(event: Any) -> list[OutgoingMessage]:
        if not isinstance(event, APPLICATION_EVENT_TYPES):
            return []
        encoded = codec.encode(event)
        headers = message_headers(
            encoded.event_type, encoded.schema_id,
            event_id=event_id(event.originator_id, event.originator_version),
            recorded_at=event.timestamp, effective_date=_effective_date(event),
            correlation_id=event.correlation_id,
        )
        return [(str(event.originator_id).encode(), encoded.value, headers)]

    return encode


def _effective_date(event: Any) -> date:
    """The day an application event takes effect: receipt, documents handed in, forwarding,
    the first month granted or amended, the day a condition ceased, the withdrawal; the
    recording day (UTC) for a check, a request or a refusal."""
    if isinstance(event, ApplicationReceived | DocumentsReceived):
        return event.received_on
    if isinstance(event, ApplicationForwarded):
        return event.forwarded_on
    if isinstance(event, BenefitGranted):
        return event.from_month
    if isinstance(event, DecisionAmended):
        return event.amounts[0].from_month
    if isinstance(event, BenefitEnded):
        return event.condition_ceased_on
    if isinstance(event, ApplicationWithdrawn):
        return event.withdrawn_on
    if isinstance(event, DocumentsRequested):
        return event.request.requested_on
    if isinstance(event, BenefitRefused):
        return event.decided_on
    moment: date = event.timestamp.date()
    return moment


# --- the fund's decisions ------------------------------------------------------------------------


@dataclass(frozen=True)
class FundDecision:
    """One decision of the fund's application, as it arrives on the decisions topic."""

    decision_id: UUID
    application_id: UUID
    kind: str
    """granted, refused, amended or ended (`DECISION_KINDS`)."""
    decided_on: date
    from_month: date | None = None
    amounts: list[MonthlyAmount] = dataclasses.field(default_factory=list)
    reason: str | None = None
    condition_ceased_on: date | None = None


def fund_decision_mismatches(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, problem) for each difference between `FundDecision` and its schema."""
    problems = field_mismatches(FundDecision, schema, {})
    if (schema.get("name"), schema.get("namespace")) != ("FundDecision", BENEFITS_NAMESPACE):
        problems.append(("(schema)", f"record must be {BENEFITS_NAMESPACE}.FundDecision"))
    return problems


class FundDecisionCodec(RecordCodec):
    """Reads (and writes) what the fund writes to the decisions topic (Confluent wire format):
    its decisions (`FundDecision`) and its reports of claims paid (`ClaimPaid`)."""

    def __init__(
        self, registry: SchemaRegistry, topic: str, *, schema_dir: Path = SCHEMA_DIR
    ) -> None:
        schema = current_schema("benefits", "FundDecision", schema_dir)
        refuse_mismatches("FundDecision", fund_decision_mismatches(schema))
        kind = RecordType(
            FundDecision, schema, _decision_record, _decision_from_record,
            describe=lambda record: f"FundDecision {record.get('decision_id')}",
        )
        paid_schema = current_schema("benefits", PAID_RECORD, schema_dir)
        refuse_mismatches(PAID_RECORD, claim_paid_mismatches(paid_schema))
        paid = RecordType(
            ClaimPaid, paid_schema, dataclasses.asdict, lambda record: ClaimPaid(**record),
            describe=lambda record: f"ClaimPaid {record.get('claim_id')}",
        )
        super().__init__(registry, topic, [kind, paid], kind="a fund decision or claim paid")

    def event_id(self, value: FundDecision | ClaimPaid) -> UUID:
        """The id a consumer deduplicates a message by: a decision's id, a paid claim's
        `ClaimPaid.event_id` (the fund's producer sets no `event_id` header; one that does
        must name this id)."""
        return value.event_id if isinstance(value, ClaimPaid) else value.decision_id


def _decision_record(decision: FundDecision) -> dict[str, Any]:
    record = dataclasses.asdict(decision)
    for amount in record["amounts"]:
        if not isinstance(amount["monthly_chf"], Decimal):
            raise EncodeError(f"amounts: {amount['monthly_chf']!r} is not a CHF Decimal")
    return record


def _decision_from_record(record: dict[str, Any]) -> FundDecision:
    amounts = [MonthlyAmount(a["from_month"], a["monthly_chf"]) for a in record["amounts"]]
    return FundDecision(
        decision_id=record["decision_id"], application_id=record["application_id"],
        kind=record["kind"], decided_on=record["decided_on"], from_month=record["from_month"],
        amounts=amounts, reason=record["reason"],
        condition_ceased_on=record["condition_ceased_on"],
    )
