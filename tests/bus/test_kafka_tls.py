"""TLS between the bus's clients and the broker: the embedded broker behind TLS, with a CA and
a server certificate made here (`cryptography`), reached with the settings an installation
gives (NERVENBAHN_KAFKA_SECURITY_PROTOCOL=SSL, NERVENBAHN_KAFKA_SSL_CA_FILE)."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bus.broker import BrokerTls, EmbeddedBroker
from bus.kafka_errors import BrokerStartError, BrokerUnavailableError
from bus.kafka_settings import KafkaSettings
from bus.tls_check import tls_handshake_problem
from bus.topics import catalogue, ensure_topics
from nervenbahn.config import load_kafka_settings
from tests.bus.pipeline import EffectCounter, open_supported_case, pipeline
from tests.bus.test_pipeline import consume_until, relay_all


@dataclass(frozen=True)
class Certificates:
    """A CA of the test's own and a server certificate it signed for 127.0.0.1/localhost."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    """Encrypted with `CLIENT_KEY_PASSWORD`."""


CLIENT_KEY_PASSWORD = "unlock-the-client-key"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _issue(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
           signer: ec.EllipticCurvePrivateKey, *, ca: bool) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue(_name("nervenbahn test CA"), _name("nervenbahn test CA"),
                     ca_key.public_key(), ca_key, ca=True).sign(ca_key, hashes.SHA256())
    server_key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    server_cert = (_issue(_name("localhost"), ca_cert.subject, server_key.public_key(), ca_key,
                          ca=False)
                   .add_extension(x509.SubjectAlternativeName(names), critical=False)
                   .sign(ca_key, hashes.SHA256()))
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _issue(_name("nervenbahn-so-olten"), ca_cert.subject, client_key.public_key(),
                         ca_key, ca=False).sign(ca_key, hashes.SHA256())
    encrypted = serialization.BestAvailableEncryption(CLIENT_KEY_PASSWORD.encode())
    (folder / "client.key").write_bytes(client_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encrypted))
    paths = {}
    for name, cert in (("ca", ca_cert), ("server", server_cert), ("client", client_cert)):
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Certificates(paths["ca"], paths["server"],
                        _write_key(server_key, folder / "server.key"),
                        paths["client"], folder / "client.key")


@pytest.fixture(scope="module")
def tls_broker(
    certificates: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedBroker]:
    tls = BrokerTls(certificates.server_cert, certificates.server_key)
    with EmbeddedBroker(tmp_path_factory.mktemp("tls-broker"), tls=tls,
                        start_timeout=30) as broker:
        yield broker


@pytest.fixture(scope="module")
def mutual_tls_broker(
    certificates: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedBroker]:
    tls = BrokerTls(certificates.server_cert, certificates.server_key, client_ca=certificates.ca)
    with EmbeddedBroker(tmp_path_factory.mktemp("mtls-broker"), tls=tls,
                        start_timeout=30) as broker:
        yield broker


def tls_settings(broker: EmbeddedBroker, **variables: str) -> KafkaSettings:
    return load_kafka_settings({
        "NERVENBAHN_KAFKA": broker.bootstrap,
        "NERVENBAHN_KAFKA_PROFILE": "embedded",
        "NERVENBAHN_KAFKA_SECURITY_PROTOCOL": "SSL",
        **{f"NERVENBAHN_KAFKA_{name.upper()}": value for name, value in variables.items()},
    })


def every_event_relayed_and_consumed(kafka: KafkaSettings, tmp_path: Path,
                                     master_key: str) -> bool:
    """A case's three events go store → relay → broker → group consumer; True if each of them
    took effect in the consumer."""
    with pipeline(tmp_path, master_key, kafka) as line:
        open_supported_case(line.service)
        counter = EffectCounter(tmp_path / "consumer.db")
        relay_all(line)
        consume_until(line, counter, 3)
        return {(case, version) for _, _, case, version in counter.rows()} == line.recorded()


def test_relay_publishes_and_a_consumer_reads_over_tls(
    tls_broker: EmbeddedBroker, certificates: Certificates, tmp_path: Path, master_key: str
) -> None:
    kafka = tls_settings(tls_broker, ssl_ca_file=str(certificates.ca))
    assert every_event_relayed_and_consumed(kafka, tmp_path, master_key)
    assert tls_handshake_problem(kafka) is None


def test_a_client_certificate_with_an_encrypted_key_reaches_a_mutual_tls_broker(
    mutual_tls_broker: EmbeddedBroker, certificates: Certificates, tmp_path: Path,
    master_key: str,
) -> None:
    (tmp_path / "key-password").write_text(CLIENT_KEY_PASSWORD + "\n")
    kafka = tls_settings(
        mutual_tls_broker, ssl_ca_file=str(certificates.ca),
        ssl_cert_file=str(certificates.client_cert), ssl_key_file=str(certificates.client_key),
        ssl_key_password_file=str(tmp_path / "key-password"),
    )
    assert every_event_relayed_and_consumed(kafka, tmp_path, master_key)


def test_a_client_without_a_certificate_is_refused_by_a_mutual_tls_broker(
    mutual_tls_broker: EmbeddedBroker, certificates: Certificates
) -> None:
    kafka = tls_settings(mutual_tls_broker, ssl_ca_file=str(certificates.ca)).model_copy(
        update={"bootstrap_timeout_ms": 2_000}
    )

    with pytest.raises(BrokerUnavailableError):
        ensure_topics(kafka, catalogue(kafka))


def test_client_without_the_ca_is_refused_with_a_clear_error(
    tls_broker: EmbeddedBroker,
) -> None:
    kafka = tls_settings(tls_broker).model_copy(update={"bootstrap_timeout_ms": 2_000})

    with pytest.raises(BrokerUnavailableError) as refused:
        ensure_topics(kafka, catalogue(kafka))

    message = str(refused.value)
    assert f"the broker at {tls_broker.bootstrap} presented a certificate" in message
    assert "NERVENBAHN_KAFKA_SSL_CA_FILE" in message


def test_a_ca_that_did_not_sign_the_broker_certificate_is_named_as_the_reason(
    tls_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = _issue(_name("another CA"), _name("another CA"), other_key.public_key(),
                      other_key, ca=True).sign(other_key, hashes.SHA256())
    (tmp_path / "other-ca.pem").write_bytes(other_ca.public_bytes(serialization.Encoding.PEM))
    kafka = tls_settings(tls_broker, ssl_ca_file=str(tmp_path / "other-ca.pem"))

    assert "does not trust" in (tls_handshake_problem(kafka) or "")


def test_plaintext_client_does_not_reach_a_tls_broker(tls_broker: EmbeddedBroker) -> None:
    kafka = KafkaSettings(bootstrap_servers=(tls_broker.bootstrap,), profile="embedded",
                          bootstrap_timeout_ms=2_000)

    with pytest.raises(BrokerUnavailableError):
        ensure_topics(kafka, catalogue(kafka))


def test_a_tls_broker_whose_key_is_missing_does_not_start(
    certificates: Certificates, tmp_path: Path
) -> None:
    tls = BrokerTls(certificates.server_cert, tmp_path / "missing.key")
    broker = EmbeddedBroker(tmp_path / "broker", tls=tls)

    with pytest.raises(BrokerStartError, match=r"cannot serve TLS .*missing\.key"):
        broker.start()

    assert not broker.is_running()
