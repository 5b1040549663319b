"""How the bus reaches Kafka: brokers, topic naming, producer and consumer settings.

The installation's values come from the environment, read by the settings module
(`nervenbahn.config`, its Kafka section: `NERVENBAHN_KAFKA`, `NERVENBAHN_KAFKA_PROFILE`,
`NERVENBAHN_TOPIC_PREFIX`, `NERVENBAHN_KAFKA_PARTITIONS`,
`NERVENBAHN_KAFKA_MAX_POLL_INTERVAL_MS`); the bus never reads the environment itself. No
brokers means the embedded broker; the profile (`production` or `embedded`) chooses the timing
defaults.

The `embedded` profile exists because the embedded broker (Tansu) holds a consumer group's
JoinGroup for about half the **session timeout** before it answers (measured: 45 s session →
23 s, 10 s → 5 s, 3 s → 2 s; the rebalance timeout, i.e. `max_poll_interval_ms`, made no
difference). Kafka's 45 s default would make every consumer start take 23 s. The embedded
profile therefore uses a 3 s session (a group of one joins in ~2 s, a second member is in
within ~3 s, a member that dies is replaced within ~6 s) and keeps `max_poll_interval_ms` at
10 s so that a slow handler is not thrown out of its group. Tansu also answers a waiting fetch
only when `fetch_max_wait_ms` ends, not when a message arrives: with Kafka's 500 ms a message
takes ~250 ms to reach a consumer, with the embedded 50 ms ~25 ms.
Tansu also wedges a group whose elected leader leaves between its JoinGroup answer and its
SyncGroup: every later JoinGroup names the departed member as leader, the SyncGroup of whoever
joins waits for assignments that never come and fails with REBALANCE_IN_PROGRESS, round after
round (a sink run until idle that closed 1 s into its join left its group like that; the next
run waited 10 min 38 s for partitions before it was stopped, and a new group name worked at
once). kafka-python's `close()` sends LeaveGroup as soon as the broker gave it a member id, join
in flight or not, so a consumer closing mid-join (`bus.consumer.Consumer.close`) first lets the
join complete, for at most `join_wait_ms`, and leaves as a member with a generation. The same
bound is how long a run until idle waits for its partitions before it calls the group stuck.
Per profile: embedded 15 s (a group of one joins in ~2 s; with other members the broker answers
within the 10 s rebalance timeout, then the SyncGroup); production 60 s (a new group on Kafka
waits `group.initial.rebalance.delay.ms`, 3 s; Tansu with the 45 s session takes ~23 s).
Tansu, finally, creates a topic it does not hold whenever a client asks for its metadata (with 4
partitions, whatever `allow_auto_topic_creation` says). After it came back empty, the
consumers polling the case topic re-created it with 4 partitions before the relay could create
it with NERVENBAHN_KAFKA_PARTITIONS, and a consumer learns of a new partition count only at its
next metadata refresh (`metadata_max_age_ms`, Kafka's default 5 minutes): one read model missed
two of four partitions for that long. The embedded profile refreshes every 3 s.
`production` uses Kafka's defaults.

Secured clusters: `security_protocol` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) with the CA,
client certificate and key files for TLS, and a SASL mechanism (PLAIN, SCRAM-SHA-256/512) with
user name and password, go to every producer, consumer and admin client alike. The password and
the key's password are `SecretStr`: they leave the settings only inside the client kwargs. A
combination a client would only fail on at its first connection (a SASL mechanism over a
protocol without SASL, TLS files over a protocol without TLS, a missing password, a file that is
not there) is refused here, naming the field. Tested against the embedded broker behind a TLS
terminator (`EmbeddedBroker(tls=...)`, see bus/tls_terminator.py for why Tansu 0.6.0 cannot
serve TLS itself), mutual TLS with an encrypted client key included; SASL is not tested here
(docs/operations.md, "Secured cluster").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bus.kafka_errors import KafkaConfigError

__all__ = [
    "NO_BROKER_HINT",
    "PROFILE_DEFAULTS",
    "Acks",
    "Compression",
    "KafkaSettings",
    "Profile",
    "SaslMechanism",
    "SecurityProtocol",
]

NO_BROKER_HINT = (
    "set NERVENBAHN_KAFKA=host:port[,host:port]; for the embedded broker a running `nervenbahn "
    "serve` owns (its address: serve's banner, or servers.installation.host in its GET "
    "/asyncapi.json) set NERVENBAHN_KAFKA=<that address> with NERVENBAHN_KAFKA_PROFILE=embedded; "
    "or start one with `nervenbahn broker` and export the NERVENBAHN_KAFKA=… line it prints"
)
"""How to name a broker, for every error that found none: setting NERVENBAHN_KAFKA alone
selects the production profile, whose timings the embedded broker (Tansu) makes slow."""

Profile = Literal["production", "embedded"]
"""`production`: Kafka's client defaults. `embedded`: short timeouts for the embedded broker."""

Compression = Literal["none", "gzip"]
"""Codecs that need no extra library (lz4 and zstd would)."""

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
"""How clients reach the brokers: in the clear or over TLS, with or without SASL."""

SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
"""How a client proves its name over SASL (PLAIN only ever over TLS in production)."""

Acks = Literal["all", 1, 0]
"""How many replicas confirm a write: all in-sync replicas, the leader only, or none."""

PROFILE_DEFAULTS: Mapping[Profile, Mapping[str, int]] = {
    # Apache Kafka's own client defaults (3.x / 4.x).
    "production": {
        "max_poll_interval_ms": 300_000,
        "session_timeout_ms": 45_000,
        "heartbeat_interval_ms": 3_000,
        "fetch_max_wait_ms": 500,
        "request_timeout_ms": 30_000,
        "bootstrap_timeout_ms": 30_000,
        "metadata_max_age_ms": 300_000,
        "join_wait_ms": 60_000,
    },
    # The embedded Tansu broker: JoinGroup waits about session_timeout_ms / 2, and a fetch
    # waiting for data is not answered when data arrives, only when fetch_max_wait_ms ends;
    # a leader that leaves before its SyncGroup wedges the group (join_wait_ms: see above).
    "embedded": {
        "max_poll_interval_ms": 10_000,
        "session_timeout_ms": 3_000,
        "heartbeat_interval_ms": 1_000,
        "fetch_max_wait_ms": 50,
        "request_timeout_ms": 10_000,
        "bootstrap_timeout_ms": 10_000,
        "metadata_max_age_ms": 3_000,
        "join_wait_ms": 15_000,
    },
}
"""Consumer and client timings per profile; a value set explicitly wins."""

_SEGMENT = re.compile(r"[a-z][a-z0-9-]{0,62}")
_SERVER = re.compile(r"(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})")


class KafkaSettings(BaseModel):
    """Where the brokers are and how the bus's clients talk to them.

    An empty `bootstrap_servers` means "no external Kafka": the composition root starts the
    embedded broker and continues with `with_bootstrap(broker.bootstrap)`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: tuple[str, ...] = ()
    client_id_prefix: str = "nervenbahn"
    topic_prefix: str = "nervenbahn"
    partitions: int = Field(default=4, ge=1, le=1000)
    replication_factor: int = Field(default=1, ge=1, le=10)
    profile: Profile = "production"
    # producer
    acks: Acks = "all"
    enable_idempotence: bool = True
    linger_ms: int = Field(default=5, ge=0, le=60_000)
    compression: Compression = "none"
    # consumer and client timings (defaults from PROFILE_DEFAULTS[profile])
    max_poll_interval_ms: int = Field(ge=1_000)
    session_timeout_ms: int = Field(ge=1_000)
    heartbeat_interval_ms: int = Field(ge=100)
    fetch_max_wait_ms: int = Field(ge=0)
    request_timeout_ms: int = Field(ge=1_000)
    bootstrap_timeout_ms: int = Field(ge=100)
    metadata_max_age_ms: int = Field(ge=100)
    join_wait_ms: int = Field(ge=0)
    """How long a closing consumer lets a join in flight complete before it leaves (and a run
    until idle waits for its partitions); ours, not a kafka-python setting."""
    # security
    security_protocol: SecurityProtocol = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_password: SecretStr | None = None
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        """Fill the timings the caller did not set from the profile's defaults."""
        if not isinstance(data, Mapping):
            return data
        profile = data.get("profile", "production")
        defaults = PROFILE_DEFAULTS.get(profile, PROFILE_DEFAULTS["production"])
        return {**defaults, **{k: v for k, v in data.items() if v is not None}}

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers_are_host_port(cls, servers: tuple[str, ...]) -> tuple[str, ...]:
        for server in servers:
            match = _SERVER.fullmatch(server)
            if match is None or not 1 <= int(match["port"]) <= 65535:
                raise ValueError(f"{server!r} is not host:port (port 1 to 65535)")
        return servers

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_one_segment(cls, prefix: str) -> str:
        if not _SEGMENT.fullmatch(prefix):
            raise ValueError(
                f"{prefix!r} must be lower-case letters, digits and '-', starting with a letter "
                "(at most 63 characters, no dots)"
            )
        return prefix

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _file_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{path} does not exist or is not a file")
        return path

    @model_validator(mode="after")
    def _secured_consistently(self) -> KafkaSettings:
        """Refuse what a client would only fail on at its first connection (fields named)."""
        problem = _security_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        if self.enable_idempotence and self.acks != "all":
            raise ValueError("enable_idempotence needs acks='all'")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be below session_timeout_ms")
        if self.fetch_max_wait_ms >= self.request_timeout_ms:
            raise ValueError("fetch_max_wait_ms must be below request_timeout_ms")
        return self

    @property
    def embedded(self) -> bool:
        """True when no brokers are configured: the embedded broker is to be started."""
        return not self.bootstrap_servers

    def with_bootstrap(self, *servers: str) -> KafkaSettings:
        """The same settings pointing at `servers` (e.g. the embedded broker once started)."""
        return KafkaSettings.model_validate(
            {**self.model_dump(), "bootstrap_servers": servers}
        )

    def producer_kwargs(
        self, client_id: str = "producer", *, transactional_id: str | None = None
    ) -> dict[str, Any]:
        """Keyword arguments for `kafka.KafkaProducer`: idempotent, acks from the settings.

        `client_id` names the producer in broker logs; it is prefixed with `client_id_prefix`.
        A producer never has the broker create a topic it sends to (with the broker's default
        partitions): a broker that came back empty got the case topic back with 4 partitions
        from the relay's first send, where NERVENBAHN_KAFKA_PARTITIONS said 2, and a
        consumer kept its old assignment and never read the other two. Topics are created by
        `bus.topics.ensure_topics`, which the relay calls before it republishes.
        """
        kwargs = {
            **self._client_kwargs(client_id),
            "allow_auto_create_topics": False,
            "acks": self.acks,
            "enable_idempotence": self.enable_idempotence,
            "linger_ms": self.linger_ms,
            "compression_type": None if self.compression == "none" else self.compression,
        }
        if transactional_id is not None:
            kwargs["transactional_id"] = transactional_id
        return kwargs

    def consumer_kwargs(
        self, group_id: str | None, client_id: str = "consumer"
    ) -> dict[str, Any]:
        """Keyword arguments for `kafka.KafkaConsumer` in consumer group `group_id` (or none).

        Offsets are never committed automatically (the consumer decides when a message is
        done), and a group without a position starts at the earliest message. On the broker
        the group is `broker_group(group_id)`: two installations sharing a cluster (each with
        its topic prefix) never share a group.
        """
        return {
            **self._client_kwargs(client_id if group_id is None else f"{group_id}-{client_id}"),
            "group_id": None if group_id is None else self.broker_group(group_id),
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "allow_auto_create_topics": False,
            "max_poll_interval_ms": self.max_poll_interval_ms,
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "fetch_max_wait_ms": self.fetch_max_wait_ms,
        }

    def broker_group(self, group_id: str) -> str:
        """The broker's name of our consumer group `group_id`: `<topic prefix>.<group id>`
        (a group with the same name in another installation on the cluster is another group;
        our own records of a group, its offsets and dead-letter topic, keep `group_id`)."""
        return f"{self.topic_prefix}.{group_id}"

    def admin_kwargs(self, client_id: str = "admin") -> dict[str, Any]:
        """Keyword arguments for `kafka.KafkaAdminClient`."""
        return self._client_kwargs(client_id)

    def _client_kwargs(self, client_id: str) -> dict[str, Any]:
        if not self.bootstrap_servers:
            raise KafkaConfigError(f"no Kafka brokers configured: {NO_BROKER_HINT}")
        # Every Kafka client of ours is made from these: the one place to say (once a
        # process) that kafka-python checksums in pure Python. Imported here: kafka is not
        # imported by a CLI start that reads the settings only.
        from bus.checksums import warn_if_checksums_in_python

        warn_if_checksums_in_python()
        return {
            "bootstrap_servers": list(self.bootstrap_servers),
            "client_id": f"{self.client_id_prefix}-{client_id}",
            "request_timeout_ms": self.request_timeout_ms,
            "bootstrap_timeout_ms": self.bootstrap_timeout_ms,
            "metadata_max_age_ms": self.metadata_max_age_ms,
            **self._security_kwargs(),
        }

    def _security_kwargs(self) -> dict[str, Any]:
        """kafka-python's TLS and SASL arguments; none at all for PLAINTEXT."""
        if self.security_protocol == "PLAINTEXT":
            return {}
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            files = {"ssl_cafile": self.ssl_cafile, "ssl_certfile": self.ssl_certfile,
                     "ssl_keyfile": self.ssl_keyfile}
            kwargs |= {name: str(path) for name, path in files.items() if path is not None}
            if self.ssl_password is not None:
                kwargs["ssl_password"] = self.ssl_password.get_secret_value()
        if self.sasl_mechanism is not None:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        return kwargs


def _security_problem(settings: KafkaSettings) -> str | None:
    """What is wrong with the TLS and SASL fields together, naming the fields; None if fine."""
    protocol = settings.security_protocol
    sasl = protocol.startswith("SASL_")
    tls = protocol in ("SSL", "SASL_SSL")
    if settings.sasl_mechanism is not None and not sasl:
        return (f"sasl_mechanism {settings.sasl_mechanism} needs security_protocol "
                f"SASL_PLAINTEXT or SASL_SSL, not {protocol}")
    if sasl and settings.sasl_mechanism is None:
        return (f"security_protocol {protocol} needs sasl_mechanism "
                "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
    if sasl and not settings.sasl_username:
        return f"security_protocol {protocol} needs sasl_username"
    if sasl and not (settings.sasl_password and settings.sasl_password.get_secret_value()):
        return f"security_protocol {protocol} needs sasl_password"
    if not sasl and (settings.sasl_username or settings.sasl_password):
        return ("sasl_username and sasl_password need security_protocol SASL_PLAINTEXT or "
                f"SASL_SSL, not {protocol}")
    ssl_files = [name for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password")
                 if getattr(settings, name) is not None]
    if ssl_files and not tls:
        return f"{ssl_files[0]} needs security_protocol SSL or SASL_SSL, not {protocol}"
    if settings.ssl_keyfile is not None and settings.ssl_certfile is None:
        return "ssl_keyfile needs ssl_certfile (the client certificate it belongs to)"
    if settings.ssl_password is not None and settings.ssl_keyfile is None:
        return "ssl_password needs ssl_keyfile (the key it unlocks)"
    return None
