"""Why a client cannot reach a TLS broker, said plainly.

kafka-python reports a broker whose certificate it does not trust only as "Unable to bootstrap
from [...]" after its bootstrap timeout (the verification error goes to its log). When that
happens with TLS configured, `tls_diagnosed` repeats the handshake once with the same CA,
certificate and key, and raises `BrokerUnavailableError` with what went wrong and which
variable to look at.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from kafka import errors as kerr

from bus.kafka_errors import BrokerUnavailableError
from bus.kafka_settings import KafkaSettings

__all__ = ["tls_diagnosed", "tls_handshake_problem"]

_HANDSHAKE_TIMEOUT_S = 3.0
_NO_BROKER: tuple[type[BaseException], ...] = tuple(
    cls for cls in (getattr(kerr, "NoBrokersAvailable", None), kerr.KafkaTimeoutError)
    if isinstance(cls, type)
)
"""What kafka-python raises when it bootstraps from no broker (NoBrokersAvailable is 2.x's)."""


def tls_handshake_problem(settings: KafkaSettings) -> str | None:
    """Why a TLS handshake with the first bootstrap server fails with these settings; None if
    it succeeds, TLS is not configured, or the server cannot be reached at all."""
    if settings.security_protocol not in ("SSL", "SASL_SSL") or not settings.bootstrap_servers:
        return None
    server = settings.bootstrap_servers[0]
    host, _, port = server.rpartition(":")
    host = host.strip("[]")
    try:
        context = _client_context(settings)
        with socket.create_connection((host, int(port)), timeout=_HANDSHAKE_TIMEOUT_S) as raw, \
                context.wrap_socket(raw, server_hostname=host):
            return None
    except ssl.SSLCertVerificationError as exc:
        return (f"the broker at {server} presented a certificate this client does not trust "
                f"({exc.verify_message}): set NERVENBAHN_KAFKA_SSL_CA_FILE to the CA that "
                "signed it (and check that it names the host in NERVENBAHN_KAFKA)")
    except ssl.SSLError as exc:
        return (f"the TLS handshake with the broker at {server} failed ({exc.reason or exc}): "
                "check NERVENBAHN_KAFKA_SECURITY_PROTOCOL and the NERVENBAHN_KAFKA_SSL_* files")
    except OSError:
        return None


@contextmanager
def tls_diagnosed(settings: KafkaSettings) -> Iterator[None]:
    """Run a client's creation; if it finds no broker and TLS is the reason, say so."""
    try:
        yield
    except _NO_BROKER as exc:
        problem = tls_handshake_problem(settings)
        if problem is None:
            raise
        raise BrokerUnavailableError(problem) from exc


def _client_context(settings: KafkaSettings) -> ssl.SSLContext:
    """The TLS context kafka-python builds from the same settings (CA, client certificate)."""
    context = ssl.create_default_context(
        cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
    )
    if settings.ssl_certfile is not None:
        password = settings.ssl_password.get_secret_value() if settings.ssl_password else None
        context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile, password)
    return context
