"""Kafka settings: reading the environment, profile defaults, and the clients' arguments."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from pydantic import ValidationError

from bus.kafka_errors import KafkaConfigError
from bus.kafka_settings import PROFILE_DEFAULTS, KafkaSettings
from bus.topics import TopicSpec, ensure_topics, topic_name
from nervenbahn.config import KafkaSettingsError, load_kafka_settings
from tests.bus.waiting import wait_until

EMBEDDED = dict(PROFILE_DEFAULTS["embedded"])
PRODUCTION = dict(PROFILE_DEFAULTS["production"])

ENVIRONMENTS: list[tuple[dict[str, str], dict[str, Any]]] = [
    ({}, {"bootstrap_servers": (), "embedded": True, "profile": "embedded", **EMBEDDED}),
    (
        {"NERVENBAHN_KAFKA": "kafka-1:9092, kafka-2:9093"},
        {"bootstrap_servers": ("kafka-1:9092", "kafka-2:9093"), "embedded": False,
         "profile": "production", **PRODUCTION},
    ),
    (
        {"NERVENBAHN_KAFKA": "127.0.0.1:9092", "NERVENBAHN_KAFKA_PROFILE": "embedded"},
        {"profile": "embedded", **EMBEDDED},
    ),
    ({"NERVENBAHN_KAFKA_PROFILE": "production"}, {"profile": "production", "embedded": True}),
    ({"NERVENBAHN_KAFKA": "[::1]:9092"}, {"bootstrap_servers": ("[::1]:9092",)}),
    ({"NERVENBAHN_KAFKA": ""}, {"bootstrap_servers": (), "profile": "embedded"}),
    ({}, {"topic_prefix": "nervenbahn", "partitions": 4, "replication_factor": 1}),
    ({"NERVENBAHN_TOPIC_PREFIX": "staging-2"}, {"topic_prefix": "staging-2"}),
    ({"NERVENBAHN_KAFKA_PARTITIONS": "12"}, {"partitions": 12}),
    ({"NERVENBAHN_KAFKA_REPLICATION_FACTOR": "3"}, {"replication_factor": 3}),
    (
        {"NERVENBAHN_KAFKA_MAX_POLL_INTERVAL_MS": "3000"},
        {"max_poll_interval_ms": 3000, "session_timeout_ms": EMBEDDED["session_timeout_ms"]},
    ),
    (
        {"NERVENBAHN_KAFKA": "k:9092", "NERVENBAHN_KAFKA_MAX_POLL_INTERVAL_MS": " 600000 "},
        {"max_poll_interval_ms": 600_000, "profile": "production"},
    ),
]


@pytest.mark.parametrize(("environ", "expected"), ENVIRONMENTS)
def test_environment_is_read_into_settings(
    environ: dict[str, str], expected: dict[str, Any]
) -> None:
    settings = load_kafka_settings(environ)

    assert {key: getattr(settings, key) for key in expected} == expected


BAD_ENVIRONMENTS = [
    ({"NERVENBAHN_KAFKA": "kafka-1"}, "NERVENBAHN_KAFKA: 'kafka-1' is not host:port"),
    ({"NERVENBAHN_KAFKA": "k:9092,k:99999"}, "NERVENBAHN_KAFKA: 'k:99999' is not host:port"),
    ({"NERVENBAHN_KAFKA": "tcp://k:9092"}, "NERVENBAHN_KAFKA: "),
    ({"NERVENBAHN_KAFKA_PROFILE": "fast"}, "NERVENBAHN_KAFKA_PROFILE: use production or"),
    ({"NERVENBAHN_TOPIC_PREFIX": "Acme"}, "NERVENBAHN_TOPIC_PREFIX: 'Acme' must be lower-case"),
    ({"NERVENBAHN_TOPIC_PREFIX": "a.b"}, "NERVENBAHN_TOPIC_PREFIX: 'a.b' must be"),
    ({"NERVENBAHN_KAFKA_PARTITIONS": "four"}, "NERVENBAHN_KAFKA_PARTITIONS: 'four' is not a"),
    ({"NERVENBAHN_KAFKA_PARTITIONS": "0"}, "NERVENBAHN_KAFKA_PARTITIONS: "),
    ({"NERVENBAHN_KAFKA_REPLICATION_FACTOR": "three"},
     "NERVENBAHN_KAFKA_REPLICATION_FACTOR: 'three' is not a"),
    ({"NERVENBAHN_KAFKA_REPLICATION_FACTOR": "11"}, "NERVENBAHN_KAFKA_REPLICATION_FACTOR: "),
    ({"NERVENBAHN_KAFKA_MAX_POLL_INTERVAL_MS": "-1"}, "NERVENBAHN_KAFKA_MAX_POLL_INTERVAL_MS: "),
    ({"NERVENBAHN_KAFKA_MAX_POLL_INTERVAL_MS": "10"}, "NERVENBAHN_KAFKA_MAX_POLL_INTERVAL_MS: "),
]


@pytest.mark.parametrize(("environ", "message"), BAD_ENVIRONMENTS)
def test_malformed_environment_names_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(KafkaConfigError) as caught:
        load_kafka_settings(environ)

    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("profile", ["production", "embedded"])
def test_profile_chooses_the_timing_defaults(profile: str) -> None:
    settings = KafkaSettings(bootstrap_servers=["k:9092"], profile=profile)  # type: ignore[arg-type]

    timings = {key: getattr(settings, key) for key in PROFILE_DEFAULTS[profile]}  # type: ignore[index]
    assert timings == PROFILE_DEFAULTS[profile]  # type: ignore[index]


def test_production_profile_uses_kafkas_client_defaults() -> None:
    settings = KafkaSettings(bootstrap_servers=["k:9092"])

    assert settings.profile == "production"
    assert (settings.max_poll_interval_ms, settings.session_timeout_ms,
            settings.heartbeat_interval_ms) == (300_000, 45_000, 3_000)


def test_explicit_timing_wins_over_the_profile() -> None:
    settings = KafkaSettings(profile="embedded", session_timeout_ms=6000)

    assert settings.session_timeout_ms == 6000
    assert settings.heartbeat_interval_ms == EMBEDDED["heartbeat_interval_ms"]


@pytest.mark.parametrize(
    "fields",
    [
        {"acks": 1},  # idempotence needs acks=all
        {"profile": "embedded", "heartbeat_interval_ms": 3000},  # not below the session
        {"fetch_max_wait_ms": 30_000},  # not below the request timeout
        {"compression": "lz4"},  # needs an extra library
        {"partitions": 0},
        {"unknown": 1},
    ],
)
def test_inconsistent_settings_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        KafkaSettings(**fields)


def test_settings_are_frozen_and_with_bootstrap_copies() -> None:
    settings = KafkaSettings(profile="embedded", topic_prefix="acme", max_poll_interval_ms=4000)

    with pytest.raises(ValidationError):
        settings.topic_prefix = "other"  # type: ignore[misc]
    moved = settings.with_bootstrap("127.0.0.1:1234")
    assert moved.bootstrap_servers == ("127.0.0.1:1234",)
    assert moved.model_dump(exclude={"bootstrap_servers"}) == settings.model_dump(
        exclude={"bootstrap_servers"}
    )
    assert settings.embedded and not moved.embedded


def test_producer_kwargs_are_idempotent_and_acknowledged_by_all() -> None:
    settings = KafkaSettings(bootstrap_servers=["a:1", "b:2"], profile="embedded")

    assert settings.producer_kwargs("relay") == {
        "bootstrap_servers": ["a:1", "b:2"],
        "client_id": "nervenbahn-relay",
        "request_timeout_ms": EMBEDDED["request_timeout_ms"],
        "bootstrap_timeout_ms": EMBEDDED["bootstrap_timeout_ms"],
        "metadata_max_age_ms": EMBEDDED["metadata_max_age_ms"],
        "allow_auto_create_topics": False,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "compression_type": None,
    }


def test_producer_kwargs_carry_compression_and_transactional_id() -> None:
    settings = KafkaSettings(bootstrap_servers=["a:1"], compression="gzip")

    kwargs = settings.producer_kwargs(client_id="tx", transactional_id="nervenbahn-relay-1")

    assert kwargs["compression_type"] == "gzip"
    assert kwargs["transactional_id"] == "nervenbahn-relay-1"


def test_consumer_kwargs_carry_the_profile_timings_and_commit_nothing_by_themselves() -> None:
    settings = KafkaSettings(bootstrap_servers=["a:1"], profile="embedded")

    assert settings.consumer_kwargs(group_id="reporting") == {
        "bootstrap_servers": ["a:1"],
        "client_id": "nervenbahn-reporting-consumer",
        "request_timeout_ms": EMBEDDED["request_timeout_ms"],
        "bootstrap_timeout_ms": EMBEDDED["bootstrap_timeout_ms"],
        "metadata_max_age_ms": EMBEDDED["metadata_max_age_ms"],
        "group_id": "nervenbahn.reporting",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "allow_auto_create_topics": False,
        "max_poll_interval_ms": EMBEDDED["max_poll_interval_ms"],
        "session_timeout_ms": EMBEDDED["session_timeout_ms"],
        "heartbeat_interval_ms": EMBEDDED["heartbeat_interval_ms"],
        "fetch_max_wait_ms": EMBEDDED["fetch_max_wait_ms"],
    }
    assert settings.consumer_kwargs(None)["group_id"] is None


def test_installations_sharing_a_cluster_never_share_a_consumer_group() -> None:
    staging = KafkaSettings(bootstrap_servers=["a:1"], topic_prefix="staging")
    production = KafkaSettings(bootstrap_servers=["a:1"], topic_prefix="production")

    groups = {settings.consumer_kwargs(group_id="projection-region")["group_id"]
              for settings in (staging, production)}

    assert groups == {"staging.projection-region", "production.projection-region"}


def test_admin_kwargs_name_the_admin_client() -> None:
    settings = KafkaSettings(bootstrap_servers=["a:1"], client_id_prefix="acme")

    assert settings.admin_kwargs() == {
        "bootstrap_servers": ["a:1"],
        "client_id": "acme-admin",
        "request_timeout_ms": PRODUCTION["request_timeout_ms"],
        "bootstrap_timeout_ms": PRODUCTION["bootstrap_timeout_ms"],
        "metadata_max_age_ms": PRODUCTION["metadata_max_age_ms"],
    }


def test_client_kwargs_without_brokers_say_how_to_get_one() -> None:
    with pytest.raises(KafkaConfigError, match="NERVENBAHN_KAFKA"):
        KafkaSettings().producer_kwargs()


def test_real_clients_accept_the_kwargs(kafka_settings: KafkaSettings) -> None:
    clients = [
        KafkaProducer(**kafka_settings.producer_kwargs("check")),
        KafkaConsumer(**kafka_settings.consumer_kwargs(group_id="check")),
        KafkaAdminClient(**kafka_settings.admin_kwargs()),
    ]
    for client in clients:
        client.close()


@pytest.mark.slow
def test_embedded_profile_lets_two_members_split_four_partitions_quickly(
    kafka_settings: KafkaSettings,
) -> None:
    topic = topic_name(kafka_settings, "test", "group-join")
    ensure_topics(kafka_settings, [TopicSpec(topic, partitions=4)])
    first, second = _Member(kafka_settings, topic), _Member(kafka_settings, topic)
    try:
        started = time.monotonic()
        first.start()
        wait_until(lambda: len(first.partitions) == 4, within=10, what="one member owns all")
        second.start()
        wait_until(lambda: (len(first.partitions), len(second.partitions)) == (2, 2),
                   within=10, what="two members own two partitions each")
        assert time.monotonic() - started < 10
        assert first.partitions | second.partitions == {0, 1, 2, 3}
    finally:
        first.halt()
        second.halt()


class _Member(threading.Thread):
    """A group member polling in a thread of its own (as every real consumer does)."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        super().__init__(daemon=True)
        self._consumer = KafkaConsumer(**settings.consumer_kwargs(group_id="join-check"))
        self._consumer.subscribe([topic])
        self._halted = threading.Event()
        self.partitions: set[int] = set()

    def run(self) -> None:
        while not self._halted.is_set():
            self._consumer.poll(timeout_ms=200)
            self.partitions = {tp.partition for tp in self._consumer.assignment()}
        self._consumer.close()

    def halt(self) -> None:
        self._halted.set()
        if self.is_alive():
            self.join(timeout=10)
        else:
            self._consumer.close()


# --- TLS and SASL --------------------------------------------------------------------------


def _secured(tmp_path: Path, **variables: str) -> KafkaSettings:
    (tmp_path / "ca.pem").write_text("ca")
    return load_kafka_settings({
        "NERVENBAHN_KAFKA": "kafka-1.example:9093",
        **{f"NERVENBAHN_KAFKA_{name.upper()}": value.format(tmp=tmp_path)
           for name, value in variables.items()},
    })


def test_plaintext_adds_no_security_arguments(tmp_path: Path) -> None:
    settings = _secured(tmp_path)

    assert "security_protocol" not in settings.admin_kwargs()


def test_tls_and_scram_reach_every_client(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("s3cret\n")
    (tmp_path / "client.pem").write_text("cert")
    (tmp_path / "client.key").write_text("key")
    settings = _secured(
        tmp_path, security_protocol="SASL_SSL", ssl_ca_file="{tmp}/ca.pem",
        ssl_cert_file="{tmp}/client.pem", ssl_key_file="{tmp}/client.key",
        ssl_key_password="unlock", sasl_mechanism="SCRAM-SHA-512", sasl_username="so-olten",
        sasl_password_file="{tmp}/password",
    )
    expected = {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(tmp_path / "ca.pem"),
        "ssl_certfile": str(tmp_path / "client.pem"),
        "ssl_keyfile": str(tmp_path / "client.key"),
        "ssl_password": "unlock",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "so-olten",
        "sasl_plain_password": "s3cret",
    }

    for kwargs in (settings.producer_kwargs(), settings.consumer_kwargs("g"),
                   settings.admin_kwargs(), settings.with_bootstrap("k:1").admin_kwargs()):
        assert {name: kwargs.get(name) for name in expected} == expected
    assert "s3cret" not in repr(settings) and "unlock" not in repr(settings)
    assert "s3cret" not in str(settings.model_dump())


@pytest.mark.parametrize(("variables", "message"), [
    ({"security_protocol": "TLS"},
     "NERVENBAHN_KAFKA_SECURITY_PROTOCOL: Input should be 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' "
     "or 'SASL_SSL'"),
    ({"sasl_mechanism": "PLAIN"},
     "NERVENBAHN_KAFKA_SASL_MECHANISM PLAIN needs NERVENBAHN_KAFKA_SECURITY_PROTOCOL "
     "SASL_PLAINTEXT or SASL_SSL, not PLAINTEXT"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"},
     "NERVENBAHN_KAFKA_SASL_MECHANISM: Input should be 'PLAIN', 'SCRAM-SHA-256' or "
     "'SCRAM-SHA-512'"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u", "sasl_password": "p"},
     "NERVENBAHN_KAFKA_SECURITY_PROTOCOL SASL_PLAINTEXT needs NERVENBAHN_KAFKA_SASL_MECHANISM"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_password": "p"},
     "NERVENBAHN_KAFKA_SECURITY_PROTOCOL SASL_SSL needs NERVENBAHN_KAFKA_SASL_USERNAME"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
     "NERVENBAHN_KAFKA_SECURITY_PROTOCOL SASL_SSL needs NERVENBAHN_KAFKA_SASL_PASSWORD"),
    ({"sasl_username": "u"},
     "NERVENBAHN_KAFKA_SASL_USERNAME and NERVENBAHN_KAFKA_SASL_PASSWORD need"),
    ({"ssl_ca_file": "{tmp}/ca.pem"},
     "NERVENBAHN_KAFKA_SSL_CA_FILE needs NERVENBAHN_KAFKA_SECURITY_PROTOCOL SSL or SASL_SSL, "
     "not PLAINTEXT"),
    ({"security_protocol": "SSL", "ssl_ca_file": "{tmp}/nope.pem"},
     "NERVENBAHN_KAFKA_SSL_CA_FILE: {tmp}/nope.pem does not exist or is not a file"),
    ({"security_protocol": "SSL", "ssl_cert_file": "{tmp}"},
     "NERVENBAHN_KAFKA_SSL_CERT_FILE: {tmp} does not exist or is not a file"),
    ({"security_protocol": "SSL", "ssl_key_file": "{tmp}/ca.pem"},
     "NERVENBAHN_KAFKA_SSL_KEY_FILE needs NERVENBAHN_KAFKA_SSL_CERT_FILE"),
    ({"security_protocol": "SSL", "ssl_key_password": "p"},
     "NERVENBAHN_KAFKA_SSL_KEY_PASSWORD needs NERVENBAHN_KAFKA_SSL_KEY_FILE"),
])
def test_a_bad_security_combination_is_refused_naming_the_variables(
    tmp_path: Path, variables: dict[str, str], message: str
) -> None:
    with pytest.raises(KafkaSettingsError) as refused:
        _secured(tmp_path, **variables)

    assert str(refused.value).startswith(message.format(tmp=tmp_path))
    assert "'p'" not in str(refused.value)


def test_a_secret_kafka_password_is_never_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(KafkaSettingsError) as refused:
        _secured(tmp_path, security_protocol="SSL", sasl_password="hunter2-secret")

    assert "hunter2-secret" not in str(refused.value)
