"""The datasets the bus publishes, as one table: what each is read from, how it is encoded,
under which relay position.

Words: a **dataset** is a kind of published stream ("case-events", "case-facts",
"payment-orders", "checkpoints", "applications", "claims"; "decisions" is written by the
fund's application and read by the core); its **topic** is the Kafka topic that carries it
(`bus.topics.TopicSpec`, named `<prefix>.<domain>.<dataset>.v<major>`, so a topic's
`TopicSpec.dataset` is the key of this table). The container (`nervenbahn.container`) builds a
dataset's relay (`Container.relay(name)`) and consumers (`Container.consumer(name, group, …)`)
from its row here; there is no factory per dataset.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from eventsourcing.utils import get_topic

from bus.benefits_codec import BenefitEventCodec, FundDecisionCodec, benefit_event_encoder
from bus.claims_codec import ReimbursementClaimCodec, claims_encoder
from bus.codec import EventCodec
from bus.payments_codec import PaymentEventCodec, payment_event_encoder
from bus.registry import SchemaRegistry
from bus.relay import Encoder, case_event_encoder
from domain.events import ReimbursementRecorded
from domain.payments import PaymentOrdered
from nervenbahn.audit.checkpoints import CheckpointCodec
from nervenbahn.audit.verified_source import ChainLinks, VerifiedNotifications
from nervenbahn.config import ConfigError
from projections.reporting_codec import CaseFactCodec, fact_encoder
from projections.reporting_facts import CaseFacts, Pseudonymiser, region_in_store

if TYPE_CHECKING:
    from nervenbahn.container import Container

__all__ = [
    "AUDIT_CHECKPOINTS",
    "BENEFIT_APPLICATIONS",
    "CASE_EVENTS",
    "CASE_FACTS",
    "DATASETS",
    "FUND_DECISIONS",
    "PAYMENT_ORDERS",
    "REIMBURSEMENT_CLAIMS",
    "Dataset",
    "dataset",
]

CASE_EVENTS = "case-events"
CASE_FACTS = "case-facts"
PAYMENT_ORDERS = "payment-orders"
AUDIT_CHECKPOINTS = "checkpoints"
BENEFIT_APPLICATIONS = "applications"
FUND_DECISIONS = "decisions"
REIMBURSEMENT_CLAIMS = "claims"


@dataclass(frozen=True)
class Dataset:
    """One published dataset: its codec, and (if a relay fills its topic) the relay's encoder,
    position name and notification source."""

    name: str
    """The dataset, e.g. "case-events" (the key of its topic in `bus.topics.catalogue`)."""
    codec: Callable[[Container, str], Any]
    """(container, topic name) → the codec that writes and reads the topic's messages."""
    relay: str | None = None
    """The relay's position name (kept in the store's database); None: no relay fills it."""
    encoder: Callable[[Container, Callable[[], Any]], Encoder] | None = None
    """(container, codec factory) → what the relay publishes for one recorded event (the
    codec is built after the encoder's own checks, e.g. that the reporting key is set)."""
    source: Callable[[Container], Any] | None = None
    """The application whose notification log the relay reads (case, payments or benefits
    store; the claims relay reads the case store)."""


def _verified_claims(container: Container) -> VerifiedNotifications:
    """The case store's log, its `ReimbursementRecorded` events checked against their hash-chain
    link before the claims relay publishes them (`nervenbahn.audit.verified_source`)."""
    service = container.service
    return VerifiedNotifications(service, cast(ChainLinks, service.recorder),
                                 {get_topic(ReimbursementRecorded)})


def _verified_payments(container: Container) -> VerifiedNotifications:
    """The payments store's log, each `PaymentOrdered` checked against its hash-chain link
    before the payments relay publishes it (the payments sink turns it into a transfer)."""
    payments = container.payments
    return VerifiedNotifications(payments, cast(ChainLinks, payments.recorder),
                                 {get_topic(PaymentOrdered)})


def _case_codec(container: Container, topic: str) -> EventCodec:
    return EventCodec(container.registry, topic, vault=container.service.vault)


def _fact_codec(container: Container, topic: str) -> CaseFactCodec:
    return CaseFactCodec(container.registry, topic)


def _payments_codec(container: Container, topic: str) -> PaymentEventCodec:
    return PaymentEventCodec(container.registry, topic)


def _benefits_codec(container: Container, topic: str) -> BenefitEventCodec:
    return BenefitEventCodec(container.registry, topic, vault=container.service.vault)


def _decisions_codec(container: Container, topic: str) -> FundDecisionCodec:
    return FundDecisionCodec(container.registry, topic)


def _claims_codec(container: Container, topic: str) -> ReimbursementClaimCodec:
    return ReimbursementClaimCodec(container.registry, topic)


def _checkpoint_codec(container: Container, topic: str) -> CheckpointCodec:
    registry: SchemaRegistry = container.registry
    return CheckpointCodec(registry, topic)


def _fact_encoder(container: Container, codec: Callable[[], CaseFactCodec]) -> Encoder:
    """A fact per case event, key = case pseudonym (`Settings.reporting_key`)."""
    key = container.settings.reporting_key
    if key is None:
        raise ConfigError(
            "NERVENBAHN_REPORTING_KEY must be set for a PostgreSQL store (32 random bytes, "
            "base64-encoded; the same for the relay and the reporting projection)"
        )
    pseudonyms = Pseudonymiser(base64.b64decode(key.get_secret_value()))
    facts = CaseFacts(pseudonyms, region_in_store(container.service))
    return fact_encoder(codec(), facts)


DATASETS: dict[str, Dataset] = {
    spec.name: spec
    for spec in (
        Dataset(
            CASE_EVENTS,
            codec=_case_codec,
            relay="case-events",
            encoder=lambda _, codec: case_event_encoder(codec()),
            source=lambda container: container.service,
        ),
        Dataset(
            CASE_FACTS,
            codec=_fact_codec,
            relay="reporting",
            encoder=_fact_encoder,
            source=lambda container: container.service,
        ),
        Dataset(
            PAYMENT_ORDERS,
            codec=_payments_codec,
            relay="payments",
            encoder=lambda _, codec: payment_event_encoder(codec()),
            # a payment order becomes a transfer: published only if its chain link holds
            source=_verified_payments,
        ),
        Dataset(AUDIT_CHECKPOINTS, codec=_checkpoint_codec),
        Dataset(
            BENEFIT_APPLICATIONS,
            codec=_benefits_codec,
            relay="benefits",
            encoder=lambda _, codec: benefit_event_encoder(codec()),
            source=lambda container: container.benefits,
        ),
        Dataset(FUND_DECISIONS, codec=_decisions_codec),  # written by the fund's application
        Dataset(
            REIMBURSEMENT_CLAIMS,
            codec=_claims_codec,
            relay="claims",
            # only ReimbursementRecorded, read with the case's history (region, sequence)
            encoder=lambda container, codec: claims_encoder(codec(), container.service),
            # a claim is a payment instruction: published only if its chain link holds
            source=_verified_claims,
        ),
    )
}
"""Every dataset the bus publishes, by name."""


def dataset(name: str) -> Dataset:
    """The dataset `name`; ConfigError naming the known ones if there is none."""
    if name not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        raise ConfigError(f"dataset {name!r}: no such topic on the bus; known: {known}")
    return DATASETS[name]
