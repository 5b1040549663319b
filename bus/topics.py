"""Topic names of the bus, the catalogue of topics it needs, and creating them.

Naming convention (also in docs/bus.md, "Topics"):

    <prefix>.<domain>.<dataset>.v<major>

- `prefix`: `NERVENBAHN_TOPIC_PREFIX` (default `nervenbahn`), one segment, no dots; separates
  installations (and tests) sharing one cluster.
- `domain`: the business area that owns the data, e.g. `casework`, `audit`, `reporting`.
- `dataset`: what the messages are, plural, e.g. `case-events`, `case-facts`.
- `v<major>`: raised only for a change a reader cannot follow (new key, new partitioning,
  incompatible schema); the new topic is filled beside the old one, never in place.

Segments are lower-case letters, digits and `-`, starting with a letter. So a name splits on
`.` into exactly four parts. Examples:

| topic | key | personal data |
| --- | --- | --- |
| `nervenbahn.casework.case-events.v1` | case id (order per case) | sealed |
| `nervenbahn.dlq.<group as a segment>.v1` | the original key | as the original |
| `nervenbahn.audit.checkpoints.v1` | checkpoint sequence | none |
| `nervenbahn.reporting.case-facts.v1` | case pseudonym | none |
| `nervenbahn.payments.payment-orders.v1` | payment run id (a run's events in order) | sealed |
| `nervenbahn.benefits.applications.v1` | application id (its events in order) | sealed |
| `nervenbahn.benefits.decisions.v1` | application id (written by the fund's application) | none |
| `nervenbahn.benefits.claims.v1` | application id (an application's claims in order) | none |

Dead-letter topics use the reserved domain `dlq` and the consumer group as dataset. A group
that is not a valid segment (`projection-branch_office`: `_`) is mapped to one deterministically
(`dead_letter_segment`); a group that is one names its topic unchanged.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import TopicAlreadyExistsError, for_code

from bus.kafka_errors import TopicError, kafka_errors_translated
from bus.kafka_settings import KafkaSettings
from bus.tls_check import tls_diagnosed

__all__ = [
    "PersonalData",
    "TopicSpec",
    "audit_checkpoints_spec",
    "benefit_applications_spec",
    "catalogue",
    "dead_letter_segment",
    "dead_letter_spec",
    "dead_letter_topic",
    "ensure_topics",
    "epochs_at",
    "fund_decisions_spec",
    "headers_at",
    "installation_topics",
    "list_topics",
    "offsets_at",
    "partition_end_offsets",
    "payments_spec",
    "read_topic",
    "reimbursement_claims_spec",
    "reporting_spec",
    "topic_end_offsets",
    "topic_exists",
    "topic_message_counts",
    "topic_name",
    "validate_group",
]

PersonalData = Literal["sealed", "clear", "none"]
"""Personal data on a topic: sealed per person (the rule), in clear (needs a written
decision, docs/bus.md), or none at all."""

_SEGMENT = re.compile(r"[a-z][a-z0-9-]{0,62}")
_NOT_SEGMENT = re.compile(r"[^a-z0-9]+")
_LEGAL_GROUP = re.compile(r"[a-zA-Z0-9._-]{1,249}")
_MAX_NAME = 249  # Kafka's limit
_LEGAL_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
DLQ_DOMAIN = "dlq"

FOREVER = {"cleanup.policy": "delete", "retention.ms": "-1"}
"""Kept for good: a new consumer replays a topic from its start."""

THIRTY_DAYS = {"cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000)}


@dataclass(frozen=True)
class TopicSpec:
    """A topic the bus needs: its name, size, broker config and what it carries."""

    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)
    carries_personal_data: PersonalData = "none"
    description: str = ""

    def __post_init__(self) -> None:
        # The embedded broker accepts any name and 0 partitions; Kafka would not.
        if not _LEGAL_NAME.fullmatch(self.name):
            raise TopicError(f"{self.name!r} is not a legal Kafka topic name")
        if self.partitions < 1:
            raise TopicError(f"topic {self.name}: partitions must be 1 or more")

    @property
    def domain(self) -> str:
        """The owning business area (second segment of the name)."""
        return self._segments()[1]

    @property
    def dataset(self) -> str:
        """What the messages are (third segment of the name)."""
        return self._segments()[2]

    @property
    def major(self) -> int:
        """The major version (fourth segment, without its `v`)."""
        return int(self._segments()[3][1:])

    def _segments(self) -> list[str]:
        parts = self.name.split(".")
        if len(parts) != 4:
            raise TopicError(f"{self.name!r} does not follow <prefix>.<domain>.<dataset>.v<major>")
        return parts


def topic_name(settings: KafkaSettings, domain: str, dataset: str, major: int = 1) -> str:
    """`<prefix>.<domain>.<dataset>.v<major>`; raises `TopicError` for a malformed segment."""
    for what, segment in (("domain", domain), ("dataset", dataset)):
        if not _SEGMENT.fullmatch(segment):
            raise TopicError(
                f"topic {what} {segment!r}: use lower-case letters, digits and '-', "
                "starting with a letter (at most 63 characters)"
            )
    if major < 1:
        raise TopicError(f"topic major version must be 1 or more, not {major}")
    name = f"{settings.topic_prefix}.{domain}.{dataset}.v{major}"
    if len(name) > _MAX_NAME:
        raise TopicError(f"topic name {name[:40]}… is longer than {_MAX_NAME} characters")
    return name


def validate_group(group: str) -> None:
    """Refuse a consumer group id that Kafka's tools could not name, with `TopicError` naming
    it: letters, digits, `.`, `_` and `-` only (checked when a consumer is created, so that a
    bad group fails at start and not at its first poison message)."""
    if not _LEGAL_GROUP.fullmatch(group):
        raise TopicError(
            f"consumer group {group!r}: use letters, digits, '.', '_' and '-' "
            "(1 to 249 characters)"
        )


def dead_letter_segment(group: str) -> str:
    """The dataset segment of `group`'s dead-letter topic: the group itself if it is a valid
    segment (so existing dead-letter topics keep their names), else the group lower-cased,
    each run of other characters turned into `-`, and 8 hex digits of its SHA-256 added, so
    that two groups never share a topic (`projection-branch_office` →
    `projection-branch-office-<hash>`). TopicError for a group `validate_group` refuses."""
    validate_group(group)
    if _SEGMENT.fullmatch(group):
        return group
    digest = hashlib.sha256(group.encode()).hexdigest()[:8]
    readable = _NOT_SEGMENT.sub("-", group.lower()).strip("-")
    if not readable[:1].isalpha():
        readable = f"g-{readable}".rstrip("-")
    return f"{readable[: 62 - len(digest)].rstrip('-')}-{digest}"


def dead_letter_topic(settings: KafkaSettings, group: str) -> str:
    """The dead-letter topic of consumer group `group`: `<prefix>.dlq.<segment>.v1`, the
    segment from `dead_letter_segment`."""
    return topic_name(settings, DLQ_DOMAIN, dead_letter_segment(group))


def dead_letter_spec(settings: KafkaSettings, group: str) -> TopicSpec:
    """The dead-letter topic of `group`, kept 30 days, personal data as in the original."""
    return TopicSpec(
        name=dead_letter_topic(settings, group),
        partitions=1,
        config=THIRTY_DAYS,
        carries_personal_data="sealed",
        description=f"Messages consumer group {group} refused, with the error in headers.",
    )


def reporting_spec(settings: KafkaSettings) -> TopicSpec:
    """The pseudonymised reporting topic: case facts for statistics, no personal data."""
    return _kept_forever(
        settings, "reporting", "case-facts", "none",
        "One pseudonymised fact per case event (ch.nervenbahn.reporting.CaseFact, "
        "Avro, Confluent framing); key = case pseudonym, so the facts of a case stay in order. "
        "No case id, no persons, no free text; fact ids keyed, recorded times to the day.",
    )


def payments_spec(settings: KafkaSettings) -> TopicSpec:
    """The payments topic: every payment run's events (ch.nervenbahn.payments), filled by the
    payments relay from the payments store."""
    return _kept_forever(
        settings, "payments", "payment-orders", "sealed",
        "Payment runs: PaymentRunStarted, one PaymentOrdered per order, "
        "PaymentRunCompleted (Avro, Confluent framing); key = run id, so a run's events stay "
        "in order on one partition. Payout accounts sealed per person.",
    )


def benefit_applications_spec(settings: KafkaSettings) -> TopicSpec:
    """The applications topic: every benefit application's events (ch.nervenbahn.benefits),
    filled by the benefits relay from the benefits store."""
    return _kept_forever(
        settings, "benefits", "applications", "sealed",
        "Benefit applications (EL to AHV or IV, premium reduction) from receipt "
        "to decision: one event per change (Avro, Confluent framing); key = application id, "
        "so an application's events stay in order. The applicant sealed per person.",
    )


def fund_decisions_spec(settings: KafkaSettings) -> TopicSpec:
    """The decisions topic: the fund's decisions (ch.nervenbahn.benefits.FundDecision),
    written by the fund's application, recorded by the fund-decisions connector."""
    return _kept_forever(
        settings, "benefits", "decisions", "none",
        "The fund's decisions on forwarded applications, written by the fund's "
        "application (Avro FundDecision, Confluent framing, subject "
        "<topic>-ch.nervenbahn.benefits.FundDecision); key = application id. Ids and amounts "
        "only, no personal data.",
    )


def reimbursement_claims_spec(settings: KafkaSettings) -> TopicSpec:
    """The claims topic: the social regions' reimbursement claims on EL back-payments
    (ch.nervenbahn.benefits.ReimbursementClaim), filled by the claims relay from the case
    store, read by the fund's application."""
    return _kept_forever(
        settings, "benefits", "claims", "none",
        "Reimbursement claims and their corrections on EL back-payments for the months a "
        "social region advanced (ELV Art. 22 para. 4 and 5), one per ReimbursementRecorded "
        "case event (Avro ReimbursementClaim, Confluent framing, subject "
        "<topic>-ch.nervenbahn.benefits.ReimbursementClaim); key = application id, so an "
        "application's claims stay in order. Pay each claim_id once. Ids and amounts only, no "
        "personal data.",
    )


def _kept_forever(
    settings: KafkaSettings, domain: str, dataset: str, personal: PersonalData, description: str
) -> TopicSpec:
    """A topic of `settings.partitions` partitions whose messages are kept for good."""
    return TopicSpec(
        name=topic_name(settings, domain, dataset),
        partitions=settings.partitions,
        config=FOREVER,
        carries_personal_data=personal,
        description=description,
    )


def audit_checkpoints_spec(settings: KafkaSettings) -> TopicSpec:
    """The audit topic: signed checkpoints of the store's hash chains, kept for good."""
    return TopicSpec(
        name=topic_name(settings, "audit", "checkpoints"),
        partitions=1,
        config=FOREVER,
        carries_personal_data="none",
        description="Signed checkpoints of the event store's hash chains "
        "(ch.nervenbahn.audit.Checkpoint, Avro, Confluent framing); key = checkpoint sequence; "
        "one partition, so they stay in order.",
    )


def catalogue(
    settings: KafkaSettings,
    dead_letter_groups: Iterable[str] = (),
    *,
    reporting: bool = False,
    payments: bool = False,
    audit: bool = False,
    benefits: bool = False,
) -> list[TopicSpec]:
    """Every topic the bus needs, plus the dead-letter topics of `dead_letter_groups`.

    With `reporting`, also the reporting topic (`reporting_spec`), which only the reporting
    relay fills and creates for itself; with `payments`, the payments topic (`payments_spec`);
    with `audit`, the audit topic of signed checkpoints (`audit_checkpoints_spec`); with
    `benefits`, the applications, decisions and claims topics.
    """
    specs = [
        TopicSpec(
            name=topic_name(settings, "casework", "case-events"),
            partitions=settings.partitions,
            config=FOREVER,
            carries_personal_data="sealed",
            description="Every case event, Avro (Confluent framing); key = case id, so the "
            "events of a case stay in order.",
        ),
    ]
    if reporting:
        specs.append(reporting_spec(settings))
    if audit:
        specs.append(audit_checkpoints_spec(settings))
    if payments:
        specs.append(payments_spec(settings))
    if benefits:
        specs += [benefit_applications_spec(settings), fund_decisions_spec(settings),
                  reimbursement_claims_spec(settings)]
    specs += [dead_letter_spec(settings, group) for group in dead_letter_groups]
    return specs


def installation_topics(
    settings: KafkaSettings, dead_letter_groups: Iterable[str] = ()
) -> list[TopicSpec]:
    """Every topic a whole installation uses (case events, reporting, audit checkpoints,
    payments, benefit applications, the fund's decisions and the reimbursement claims), plus
    the dead-letter topics of `dead_letter_groups`: what `topics create` creates, so that a
    subscriber starting before the relays never meets an unknown topic."""
    return catalogue(settings, dead_letter_groups, reporting=True, payments=True, audit=True,
                     benefits=True)


def ensure_topics(settings: KafkaSettings, specs: Sequence[TopicSpec]) -> list[str]:
    """Create the topics of `specs` that do not exist yet; return the names created.

    Idempotent: an existing topic is left as it is (also one created concurrently).
    """
    with kafka_errors_translated("create topics"), _admin(settings) as admin:
        existing = set(admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        response = admin.create_topics(
            {spec.name: _creatable(settings, spec) for spec in missing}, raise_errors=False
        )
    return _created(response, missing)


def topic_exists(settings: KafkaSettings, name: str) -> bool:
    """True if the cluster has a topic `name`."""
    with kafka_errors_translated("look up topics"), _admin(settings) as admin:
        return name in admin.list_topics()


def list_topics(settings: KafkaSettings) -> dict[str, int]:
    """Topics under this installation's prefix, with their partition counts, by name."""
    prefix = f"{settings.topic_prefix}."
    with kafka_errors_translated("list topics"), _admin(settings) as admin:
        names = sorted(n for n in admin.list_topics() if n.startswith(prefix))
        described = admin.describe_topics(names) if names else []
    return {t["name"]: len(t["partitions"]) for t in described if t["name"] in names}


def topic_message_counts(settings: KafkaSettings, names: Sequence[str]) -> dict[str, int | None]:
    """Messages held per topic: end minus beginning offset, summed over partitions.

    None for a topic that does not exist. Transaction markers occupy offsets too, so on a
    transactional topic this is an upper bound.
    """
    counts: dict[str, int | None] = {}
    with kafka_errors_translated("count messages"), _offsets_reader(settings) as reader:
        tps = _partitions_of(reader, names)
        counts = {name: 0 if any(tp.topic == name for tp in tps) else None for name in names}
        if not tps:
            return counts
        starts = reader.beginning_offsets(tps)
        ends = _true_ends(reader, reader.end_offsets(tps), settings.request_timeout_ms / 1000)
        for tp in tps:
            counts[tp.topic] = (counts[tp.topic] or 0) + ends[tp] - starts[tp]
    return counts


def topic_end_offsets(settings: KafkaSettings, names: Sequence[str]) -> dict[TopicPartition, int]:
    """The end offset of every partition of the topics `names` (a topic that does not exist
    has none), read as `partition_end_offsets` does."""
    with kafka_errors_translated("read end offsets"), _offsets_reader(settings) as reader:
        tps = _partitions_of(reader, names)
        if not tps:
            return {}
        return _true_ends(reader, reader.end_offsets(tps), settings.request_timeout_ms / 1000)


def _partitions_of(reader: KafkaConsumer, names: Sequence[str]) -> list[TopicPartition]:
    return [
        TopicPartition(name, p)
        for name in names
        for p in sorted(reader.partitions_for_topic(name) or ())
    ]


def partition_end_offsets(
    settings: KafkaSettings, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """The offset after the last message of each partition (what a caught-up reader is at).

    Use this rather than `KafkaConsumer.end_offsets`, which is wrong on the embedded broker
    (see `_true_ends`). Opens a reader of its own; a group consumer's position is untouched.
    """
    if not partitions:
        return {}
    with kafka_errors_translated("read end offsets"), _offsets_reader(settings) as reader:
        reported = reader.end_offsets(list(partitions))
        return _true_ends(reader, reported, settings.request_timeout_ms / 1000)


def epochs_at(
    settings: KafkaSettings, offsets: Mapping[TopicPartition, int]
) -> dict[TopicPartition, str | None]:
    """The `relay_epoch` header of the message at each partition's given offset (None: no
    such message, or it carries no epoch, or the broker did not answer in time). Opens a
    reader of its own; a group consumer's position is untouched."""
    found = headers_at(settings, offsets)
    return {tp: (headers or {}).get("relay_epoch") or None for tp, headers in found.items()}


def headers_at(
    settings: KafkaSettings, offsets: Mapping[TopicPartition, int]
) -> dict[TopicPartition, dict[str, str] | None]:
    """The headers (decoded as UTF-8) of the message at each partition's given offset (None:
    no such message, or the broker did not answer in time). Opens a reader of its own; a
    group consumer's position is untouched."""
    found: dict[TopicPartition, dict[str, str] | None] = dict.fromkeys(offsets)
    if not offsets:
        return found
    with kafka_errors_translated("read message headers"), _offsets_reader(settings) as reader:
        reader.assign(list(offsets))
        for tp, offset in offsets.items():
            reader.seek(tp, offset)
        waiting = set(offsets)
        deadline = time.monotonic() + settings.request_timeout_ms / 1000
        while waiting and time.monotonic() < deadline:
            for tp, records in reader.poll(timeout_ms=100).items():
                for record in records:  # a batch may begin before the offset asked for
                    if record.offset == offsets[tp]:
                        found[tp] = {k: v.decode(errors="replace")
                                     for k, v in record.headers or []}
                        waiting.discard(tp)
                    elif record.offset > offsets[tp]:
                        waiting.discard(tp)  # no message at that offset
        reader.unsubscribe()
    return found


def read_topic(
    settings: KafkaSettings, name: str, *, last: int | None = None
) -> list[ConsumerRecord]:
    """Every message the topic `name` holds now (up to the end offsets at the call), or with
    `last` only each partition's last `last` messages, by partition, then offset; none if the
    topic does not exist. Opens a reader outside any group and reads into memory: for small
    topics (a dead-letter topic that `nervenbahn connectors replay` re-delivers) or a tail (a
    relay taking over). TopicError if a partition does not yield its messages within the
    request timeout (a part read is never passed off as the whole)."""
    timeout = settings.request_timeout_ms / 1000
    with kafka_errors_translated(f"read topic {name}"), _offsets_reader(settings) as reader:
        tps = _partitions_of(reader, [name])
        starts = reader.beginning_offsets(tps) if tps else {}
        ends = _true_ends(reader, reader.end_offsets(tps), timeout) if tps else {}
        if last is not None:
            starts = {tp: max(starts[tp], ends[tp] - last) for tp in tps}
        waiting = {tp for tp in tps if ends[tp] > starts[tp]}
        found: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in waiting}
        reader.assign(sorted(waiting))
        for tp in waiting:
            reader.seek(tp, starts[tp])
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            for tp, records in reader.poll(timeout_ms=100).items():
                found[tp] += [r for r in records if starts[tp] <= r.offset < ends[tp]]
            waiting = {tp for tp in waiting if reader.position(tp) < ends[tp]}
        reader.unsubscribe()
    if waiting:
        late = ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(waiting))
        raise TopicError(f"read topic {name}: {late} not read to the end within {timeout:.0f} s")
    return [record for tp in sorted(found) for record in found[tp]]


def offsets_at(
    settings: KafkaSettings, partitions: Sequence[TopicPartition], when: datetime
) -> dict[TopicPartition, int]:
    """The offset of the first message each partition received at or after `when` (the
    broker's timestamp: when the producer sent it), or the partition's end if none did.

    The embedded broker (Tansu) answers "none" with offset 0 and timestamp -1 instead of
    offset -1, so an answer without a timestamp counts as none."""
    if when.tzinfo is None:
        raise ValueError(f"offsets_at: {when.isoformat()} has no time zone")
    millis = int(when.timestamp() * 1000)
    with kafka_errors_translated("look up offsets by time"), _offsets_reader(settings) as reader:
        found = reader.offsets_for_times(dict.fromkeys(partitions, millis))
        ends = _true_ends(reader, reader.end_offsets(list(partitions)),
                          settings.request_timeout_ms / 1000)
    return {
        tp: hit.offset if (hit := found.get(tp)) is not None and hit.timestamp >= 0 else ends[tp]
        for tp in partitions
    }


def _true_ends(
    reader: KafkaConsumer, ends: Mapping[TopicPartition, int], timeout: float
) -> dict[TopicPartition, int]:
    """End offsets corrected by reading each partition's last record batch.

    Tansu (the embedded broker) reports the end of a partition as the first offset of its
    last record batch + 1, so a batch of several records counts as one. Reading from
    end - 1 returns that batch whole; its last offset + 1 is the true end. On Kafka this
    reads one record per partition and changes nothing.
    """
    true = dict(ends)
    filled = [tp for tp, end in ends.items() if end > 0]
    if not filled:
        return true
    reader.assign(filled)
    for tp in filled:
        reader.seek(tp, ends[tp] - 1)
    deadline = time.monotonic() + timeout
    answered: set[TopicPartition] = set()
    while time.monotonic() < deadline:
        batches = reader.poll(timeout_ms=100)
        for tp, records in batches.items():
            true[tp] = max(true[tp], records[-1].offset + 1)
            answered.add(tp)
        # A fetch returns record batches whole, so the first answer from each partition
        # already holds its last batch: stop there instead of waiting for an empty poll.
        if answered >= set(filled):
            break
    reader.unsubscribe()
    return true


def _creatable(settings: KafkaSettings, spec: TopicSpec) -> dict[str, object]:
    return {
        "num_partitions": spec.partitions,
        "replication_factor": settings.replication_factor,
        "configs": dict(spec.config),
    }


def _created(response: Mapping[str, object], asked: Sequence[TopicSpec]) -> list[str]:
    """Names created; an 'already exists' answer is fine, any other error raises TopicError."""
    created: list[str] = []
    for topic in response.get("topics", []):  # type: ignore[attr-defined]
        error = for_code(topic["error_code"])
        if error is TopicAlreadyExistsError:
            continue
        if topic["error_code"]:
            raise TopicError(
                f"create topic {topic['name']}: {error.__name__}: "
                f"{topic.get('error_message') or error.description}"
            )
        created.append(topic["name"])
    order = {spec.name: i for i, spec in enumerate(asked)}
    return sorted(created, key=lambda name: order.get(name, len(order)))


@contextmanager
def _admin(settings: KafkaSettings) -> Iterator[KafkaAdminClient]:
    """A KafkaAdminClient for one block, closed afterwards."""
    with tls_diagnosed(settings):
        client = KafkaAdminClient(**settings.admin_kwargs())
    try:
        yield client
    finally:
        client.close()


@contextmanager
def _offsets_reader(settings: KafkaSettings) -> Iterator[KafkaConsumer]:
    """A consumer outside any group that only reads metadata and offsets."""
    with tls_diagnosed(settings):
        client = KafkaConsumer(**settings.consumer_kwargs(None, "offsets"))
    try:
        yield client
    finally:
        client.close()
