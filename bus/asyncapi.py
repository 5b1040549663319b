"""The bus as an AsyncAPI 3.0.0 document, generated from the code's own catalogue.

An integrator (any language, standard Kafka tooling) reads from it every topic the installation
uses (`bus.topics.installation_topics`: case events, reporting, payments, audit, benefit
applications, the fund's decisions, the reimbursement claims, and the pattern of the
dead-letter topics), each topic's
partitions, retention and key encoding, the Kafka headers with their meaning, and every
message's Avro schema with its registry subject (TopicRecordNameStrategy:
`<topic>-<full record name>`). Nothing here is written by hand twice:
the topics come from `installation_topics`, the schemas from `schemas.load_schema`, the
released version from `schemas.released_versions`; the headers are the ones
`bus.envelope.message_headers` and the relays write (kept in step by tests/bus/test_asyncapi.py).

`servers` says how the installation's brokers are secured (TLS, the SASL mechanism or a client
certificate, from its Kafka settings) and how the schema registry authenticates readers (HTTP
Basic, a bus_reader key), never a secret: no user name, password, key or file path. Where the
registry answers is the Kafka server binding's `schemaRegistryUrl` (bindings 0.5.0), when the
caller knows it: `serve` its own URL + /registry, the CLI an external registry's URL.

The document holds no personal data (names, schemas, descriptions), so `serve` answers
`GET /asyncapi.json` without an API key. Each message names the id of its schema's latest released
version (`x-schema-id`) and of every released version (`x-schema-versions`) from the committed id
catalogue (`schemas/catalogue.json`): the same in every installation, no registry needed. The
ids a particular registry holds can be passed instead (`schema_ids`, by subject), for
`nervenbahn asyncapi --registered`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bus.kafka_settings import KafkaSettings
from bus.registry import SchemaRegistry
from bus.topics import DLQ_DOMAIN, TopicSpec, installation_topics
from domain.benefits import APPLICATION_EVENT_TYPES
from schemas import SCHEMA_GROUPS, load_schema, released_versions, schema_names
from schemas.catalogue import SchemaCatalogue, load_catalogue

__all__ = [
    "ASYNCAPI_VERSION",
    "AVRO_SCHEMA_FORMAT",
    "HEADERS",
    "PublishedSchema",
    "asyncapi_document",
    "published_schemas",
]

ASYNCAPI_VERSION = "3.0.0"
AVRO_SCHEMA_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
_KAFKA_BINDING = "0.5.0"

_UUID = {"type": "string", "format": "uuid"}
_TEXT = {"type": "string"}

HEADERS: dict[str, dict[str, Any]] = {
    "event_type": {**_TEXT, "description": "The Avro record's short name (e.g. CaseOpened): "
                   "which schema the value has, readable before decoding."},
    "fact": {**_TEXT, "description": "Reporting facts only: the kind of fact (e.g. opened, "
             "budget-changed)."},
    "event_id": {**_UUID, "description": "Deduplicate by this id: UUID v5 of "
                 "<aggregate id>/<version> in namespace 476a5c74-c6c7-55b8-81d7-18814063cd87 "
                 "(the case id; on the payments topic always the run id, run_id; on the "
                 "applications topic the application id; on the claims topic the claim_id, "
                 "which is the event_id of the case event that recorded the claim); "
                 "an event relayed twice keeps it. On reporting facts the keyed fact id."},
    "schema_id": {**_TEXT, "pattern": "^[0-9]+$", "description": "The registry id of the "
                  "writer schema (also in bytes 1-4 of the value, Confluent framing)."},
    "recorded_at": {**_TEXT, "description": "When the core recorded the event, ISO 8601 in "
                    "UTC (+00:00); on reporting facts only the start of the Swiss day it was "
                    "recorded on (midnight Swiss time, given in UTC)."},
    "effective_date": {**_TEXT, "format": "date", "description": "The business date the event "
                       "takes effect (ISO 8601 date); absent when the event has none."},
    "correlation_id": {**_UUID, "description": "The conversation the event belongs to (the "
                       "command that caused it); absent when none was given."},
    "causation_id": {**_UUID, "description": "What caused the event; equals correlation_id for "
                     "a command issued by a person."},
    "producer": {**_TEXT, "const": "nervenbahn-relay", "description": "Who published it."},
    "relay_epoch": {**_TEXT, "description": "Random per relay history: a new epoch means the "
                    "topic was refilled from the store, so read the partition from its start "
                    "and deduplicate by event_id."},
    "dlq_reason": {**_TEXT, "description": "Dead letters: why the group refused the message."},
    "dlq_error_type": {**_TEXT, "description": "Dead letters: the error's class name."},
    "dlq_error": {**_TEXT, "description": "Dead letters: the error message (≤ 2000 chars)."},
    "dlq_trace": {**_TEXT, "description": "Dead letters: the exception as formatted by "
                  "Python's traceback.format_exception_only (≤ 2000 chars)."},
    "dlq_original": {**_TEXT, "description": "Dead letters: where the message was, "
                     "<topic>/<partition>@<offset>."},
    "dlq_group": {**_TEXT, "description": "Dead letters: the consumer group that refused it."},
    "dlq_at": {**_TEXT, "format": "date-time", "description": "Dead letters: when it was "
               "parked (ISO 8601, UTC)."},
}
"""Every Kafka header the bus writes (all values UTF-8 text), with its meaning."""

_RELAYED = ("event_id", "schema_id", "recorded_at")
_OPTIONAL = frozenset({"effective_date", "correlation_id", "causation_id", "fact"})


@dataclass(frozen=True)
class _Payload:
    """What a dataset's messages carry: the schema group, key and headers in order."""

    group: str
    key: str
    headers: tuple[str, ...]
    records: tuple[str, ...] | None = None
    """The group's records on this topic; None: every one."""
    action: str = "receive"
    """What an outside application does with the topic: receive (nervenbahn writes it) or
    send (nervenbahn reads it: the fund's decisions)."""

    def names(self) -> list[str]:
        """The records on the topic, sorted."""
        every = schema_names(self.group)
        return every if self.records is None else [n for n in every if n in self.records]


_PAYLOADS: dict[str, _Payload] = {
    "case-events": _Payload(
        "case", "The case id, a UUID as UTF-8 text: a case's events stay in order.",
        ("event_type", *_RELAYED, "effective_date", "correlation_id", "causation_id",
         "producer", "relay_epoch"),
    ),
    "case-facts": _Payload(
        "reporting", "The case pseudonym (keyed hash) as UTF-8 text: a case's facts stay in "
        "order.", ("event_type", "fact", *_RELAYED, "effective_date", "producer", "relay_epoch"),
    ),
    "payment-orders": _Payload(
        "payments", "The payment run id, a UUID as UTF-8 text: a run's events stay in order.",
        ("event_type", *_RELAYED, "producer", "relay_epoch"),
    ),
    "checkpoints": _Payload(
        "audit", "The checkpoint sequence number as decimal UTF-8 text.", (),
    ),
    "applications": _Payload(
        "benefits", "The application id, a UUID as UTF-8 text: an application's events stay "
        "in order.",
        ("event_type", *_RELAYED, "effective_date", "correlation_id", "causation_id",
         "producer", "relay_epoch"),
        records=tuple(cls.__name__ for cls in APPLICATION_EVENT_TYPES),
    ),
    "decisions": _Payload(
        "benefits", "The application id decided on, a UUID as UTF-8 text (written by the "
        "fund's application; nervenbahn reads it, idempotent by decision_id, and a claim "
        "paid by claim_id and payment file).",
        (), records=("FundDecision", "ClaimPaid"), action="send",
    ),
    "claims": _Payload(
        "benefits", "The application id the EL was decided on, a UUID as UTF-8 text: an "
        "application's claim and its corrections stay in order (pay each claim_id once).",
        ("event_type", *_RELAYED, "effective_date", "correlation_id", "causation_id",
         "producer", "relay_epoch"),
        records=("ReimbursementClaim",),
    ),
}
"""By dataset (`TopicSpec.dataset`): what its messages are."""


@dataclass(frozen=True)
class PublishedSchema:
    """One released version of a record on one topic, as `schemas list` shows it."""

    subject: str
    record: str
    """The full Avro record name (e.g. ch.nervenbahn.casework.CaseOpened)."""
    version: int
    """The released version (schemas/versions/<Record>/v<N>.avsc)."""
    schema: dict[str, Any]
    schema_id: int | None = None
    """The registry's id of exactly this schema under `subject`; None: not registered."""
    catalogue_id: int | None = None
    """Its id in the committed id catalogue (every installation's); None: not catalogued."""


def published_schemas(
    settings: KafkaSettings, registry: SchemaRegistry | None = None
) -> list[PublishedSchema]:
    """Every released version of every record on every topic of the installation, by subject
    and version; with `registry`, each with the id it has there (matched by content: the
    registry's version numbers need not be the released ones)."""
    found: list[PublishedSchema] = []
    catalogue = load_catalogue()
    for spec in installation_topics(settings):
        payload = _PAYLOADS[spec.dataset]
        group = payload.group
        for name in payload.names():
            record = f"{SCHEMA_GROUPS[group].namespace}.{name}"
            subject = f"{spec.name}-{record}"
            registered = registry.versions(subject) if registry is not None else []
            for version, schema in released_versions(name):
                schema_id = next((r.schema_id for r in registered if r.schema == schema), None)
                entry = catalogue.entry(record, version)
                found.append(PublishedSchema(subject, record, version, schema, schema_id,
                                             entry.schema_id if entry is not None else None))
    return sorted(found, key=lambda p: (p.subject, p.version))


def asyncapi_document(
    settings: KafkaSettings,
    schema_ids: Mapping[str, int] | None = None,
    registry_url: str | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of every topic this installation uses (JSON-ready); with
    `registry_url`, the schema registry's address as the Kafka server binding's
    `schemaRegistryUrl` (a client needs it to decode any message)."""
    ids = schema_ids or {}
    catalogue = load_catalogue()
    specs = installation_topics(settings)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in specs:
        payload = _PAYLOADS[spec.dataset]
        names = payload.names()
        for name in names:
            messages[name] = _message(spec, payload, name, ids, catalogue)
        _add_channel(channels, operations, spec, payload.key, names, payload.action)
    messages["DeadLetter"] = _dead_letter_message()
    dead_letters = _dead_letter_pattern(settings)
    _add_channel(channels, operations, dead_letters, "The original key.", ["DeadLetter"],
                 "receive")
    channels[_channel_id(dead_letters)] |= {
        "address": f"{settings.topic_prefix}.{DLQ_DOMAIN}.{{group}}.v1",
        "parameters": {"group": {"description": "The consumer group's name as a topic "
                                 "segment (bus.topics.dead_letter_segment)."}},
    }
    del channels[_channel_id(dead_letters)]["bindings"]["kafka"]["topic"]
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": _info(settings),
        "defaultContentType": "application/octet-stream",
        "servers": _servers(settings, registry_url),
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "securitySchemes": _security_schemes(settings)},
    }


def _info(settings: KafkaSettings) -> dict[str, Any]:
    return {
        "title": "nervenbahn bus",
        "version": "1",
        "description": (
            "The topics of a nervenbahn installation (topic prefix "
            f"`{settings.topic_prefix}`). Values are Avro in the Confluent wire format (magic "
            "byte 0, 4-byte schema id, Avro binary); subjects follow TopicRecordNameStrategy. "
            "Personal data is sealed per person; only the core can open it."
        ),
    }


def _servers(settings: KafkaSettings, registry_url: str | None) -> dict[str, Any]:
    """The installation's cluster as its Kafka settings describe it: TLS or not, the one
    way a client authenticates (SASL mechanism, or a client certificate), and where the schema
    registry answers, if known; never a secret."""
    tls = settings.security_protocol in ("SSL", "SASL_SSL")
    scheme = _kafka_security(settings)
    server: dict[str, Any] = {
        "host": ",".join(settings.bootstrap_servers) or "{bootstrap}",
        "protocol": "kafka-secure" if tls else "kafka",
        "description": _server_description(settings),
        "bindings": {"kafka": {"schemaRegistryVendor": "confluent",
                               "bindingVersion": _KAFKA_BINDING}},
        "x-schema-registry": {
            "description": "`serve` answers the Confluent schema-registry API under /registry "
            "(`nervenbahn registry serve`: at its root).",
            "security": [{"$ref": f"#/components/securitySchemes/{_REGISTRY_SCHEME}"}],
        },
    }
    if registry_url is not None:
        server["bindings"]["kafka"]["schemaRegistryUrl"] = registry_url
    if not settings.bootstrap_servers:
        server["variables"] = {"bootstrap": {"description": "host:port of the cluster's "
                                             "brokers (NERVENBAHN_KAFKA is not set here)"}}
    if scheme is not None:
        server["security"] = [{"$ref": f"#/components/securitySchemes/{scheme[0]}"}]
    return {"installation": server}


def _server_description(settings: KafkaSettings) -> str:
    protocol = settings.security_protocol
    said = {
        "PLAINTEXT": "No TLS, no authentication (PLAINTEXT).",
        "SSL": "TLS (SSL): the client verifies the brokers against the installation's CA.",
        "SASL_PLAINTEXT": f"SASL {settings.sasl_mechanism} without TLS (SASL_PLAINTEXT).",
        "SASL_SSL": f"SASL {settings.sasl_mechanism} over TLS (SASL_SSL): the client verifies "
        "the brokers against the installation's CA.",
    }[protocol]
    if settings.ssl_certfile is not None:
        said += " The client presents a certificate (mutual TLS)."
    return f"The installation's brokers (NERVENBAHN_KAFKA). {said}"


_SASL_SCHEMES = {"PLAIN": ("saslPlain", "plain"), "SCRAM-SHA-256": ("saslScram256", "scramSha256"),
                 "SCRAM-SHA-512": ("saslScram512", "scramSha512")}
_REGISTRY_SCHEME = "schemaRegistryBasic"


def _kafka_security(settings: KafkaSettings) -> tuple[str, dict[str, Any]] | None:
    """The scheme a client authenticates to the brokers with (name, AsyncAPI security scheme):
    the SASL mechanism, else a client certificate; None when it does not authenticate."""
    if settings.sasl_mechanism is not None:
        name, kind = _SASL_SCHEMES[settings.sasl_mechanism]
        over = "TLS" if settings.security_protocol == "SASL_SSL" else "a connection without TLS"
        return name, {"type": kind, "description": f"SASL {settings.sasl_mechanism} over "
                      f"{over}: the user name and password the operator issued the application."}
    if settings.ssl_certfile is not None:
        return "mutualTls", {"type": "X509", "description": "A client certificate (mutual "
                             "TLS) signed by a CA the cluster trusts, issued by the operator."}
    return None


def _security_schemes(settings: KafkaSettings) -> dict[str, Any]:
    """The brokers' scheme (if they authenticate clients) and the schema registry's."""
    schemes: dict[str, Any] = dict([scheme] if (scheme := _kafka_security(settings)) else [])
    schemes[_REGISTRY_SCHEME] = {
        "type": "http", "scheme": "basic",
        "description": "The schema registry: HTTP Basic with the consumer's name as user and "
        "an API key of scope bus_reader as password (`nervenbahn apikeys add --consumer NAME "
        "--scope bus_reader`); Confluent clients: basic.auth.credentials.source=USER_INFO.",
    }
    return schemes


def _channel_id(spec: TopicSpec) -> str:
    return f"{spec.domain}.{spec.dataset}.v{spec.major}"


def _add_channel(
    channels: dict[str, Any], operations: dict[str, Any], spec: TopicSpec, key: str,
    names: list[str], action: str,
) -> None:
    """One channel per topic with its Kafka binding, and the outside application's operation
    on it (`action`: receive from it, or send to it)."""
    channel_id = _channel_id(spec)
    channel: dict[str, Any] = {
        "address": spec.name,
        "description": spec.description,
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
        "bindings": {"kafka": _topic_binding(spec)},
        "x-key": key,
        "x-personal-data": spec.carries_personal_data,
    }
    channels[channel_id] = channel
    operations[f"{action}.{channel_id}"] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"} for name in names],
    }


def _topic_binding(spec: TopicSpec) -> dict[str, Any]:
    configuration: dict[str, Any] = {}
    if "cleanup.policy" in spec.config:
        configuration["cleanup.policy"] = [spec.config["cleanup.policy"]]
    if "retention.ms" in spec.config:
        configuration["retention.ms"] = int(spec.config["retention.ms"])
    binding: dict[str, Any] = {
        "topic": spec.name, "partitions": spec.partitions, "bindingVersion": _KAFKA_BINDING,
    }
    if configuration:
        binding["topicConfiguration"] = configuration
    return binding


def _message(
    spec: TopicSpec, payload: _Payload, name: str, ids: Mapping[str, int],
    catalogue: SchemaCatalogue,
) -> dict:
    """One record type on one topic: its Avro payload, subject, schema ids, headers and key."""
    fullname = f"{SCHEMA_GROUPS[payload.group].namespace}.{name}"
    subject = f"{spec.name}-{fullname}"
    message: dict[str, Any] = {
        "name": name,
        "title": fullname,
        "contentType": "application/octet-stream",
        "payload": {"schemaFormat": AVRO_SCHEMA_FORMAT, "schema": load_schema(payload.group, name)},
        "bindings": {"kafka": {
            "key": {"type": "string", "description": payload.key},
            "schemaIdLocation": "payload",
            "schemaIdPayloadEncoding": "confluent",
            "schemaLookupStrategy": "TopicRecordNameStrategy",
            "bindingVersion": _KAFKA_BINDING,
        }},
        "x-subject": subject,
    }
    versions = [version for version, _ in released_versions(name)]
    if versions:
        message["x-schema-version"] = versions[-1]
    catalogued = [(v, e.schema_id) for v in versions if (e := catalogue.entry(fullname, v))]
    if catalogued:
        message["x-schema-versions"] = [{"version": v, "id": i} for v, i in catalogued]
        if catalogued[-1][0] == versions[-1]:
            message["x-schema-id"] = catalogued[-1][1]
    if subject in ids:
        message["x-schema-id"] = ids[subject]
    if payload.headers:
        message["headers"] = _headers(payload.headers)
    if "correlation_id" in payload.headers:
        message["correlationId"] = {"location": "$message.header#/correlation_id"}
    return message


def _headers(names: tuple[str, ...]) -> dict[str, Any]:
    """The JSON Schema of a message's Kafka headers (every value UTF-8 text)."""
    return {
        "type": "object",
        "properties": {name: HEADERS[name] for name in names},
        "required": [name for name in names if name not in _OPTIONAL],
    }


def _dead_letter_pattern(settings: KafkaSettings) -> TopicSpec:
    """The dead-letter topics of every consumer group, as one channel with a parameter."""
    return TopicSpec(
        name=f"{settings.topic_prefix}.{DLQ_DOMAIN}.group.v1",
        partitions=1,
        config={"cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000)},
        carries_personal_data="sealed",
        description="Messages a consumer group refused, one topic per group, kept 30 days: the "
        "original key, value and headers, and the dlq_* headers saying why.",
    )


def _dead_letter_message() -> dict[str, Any]:
    dlq = tuple(name for name in HEADERS if name.startswith("dlq_"))
    return {
        "name": "DeadLetter",
        "title": "A refused message",
        "summary": "The original value (any message of the original topic), unchanged.",
        "contentType": "application/octet-stream",
        "headers": _headers(dlq),
    }
