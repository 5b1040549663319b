"""Plain HTTP for tests of a running `serve`: a status and its JSON body, whatever the status;
the environment of a `nervenbahn serve` subprocess of a test's own, and that subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bus.broker import free_port
from bus.kafka_settings import KafkaSettings
from tests.bus.waiting import wait_until


def serve_environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    """This process's environment without any NERVENBAHN_ variable, plus a SQLite store and key
    folder in `tmp_path` and `variables`: a `nervenbahn` subprocess with its own store."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("NERVENBAHN_")},
        "NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'store.db'}",
        "NERVENBAHN_KEY_DIR": str(tmp_path / "keys"),
        **variables,
    }


def bus_variables(kafka: KafkaSettings) -> dict[str, str]:
    """The variables that put a `nervenbahn` subprocess on the test's broker and topics."""
    return {
        "NERVENBAHN_KAFKA": ",".join(kafka.bootstrap_servers),
        "NERVENBAHN_KAFKA_PROFILE": kafka.profile,
        "NERVENBAHN_TOPIC_PREFIX": kafka.topic_prefix,
    }


@dataclass(frozen=True)
class Served:
    """A running `nervenbahn serve` subprocess and its base URL."""

    url: str
    process: subprocess.Popen[bytes]

    def stderr(self) -> str:
        """The end of what it wrote to stderr (read once it has ended)."""
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")[-3000:]


@contextmanager
def serving(environment: dict[str, str], *, until: str = "/health/live",
            within: float = 90.0) -> Iterator[Served]:
    """`nervenbahn serve` in `environment` on a free port until the block ends (SIGTERM, if
    still alive); yielded once `until` answers 200 (or it failed, with its stderr)."""
    url = f"http://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "nervenbahn", "serve", "--port", url.rpartition(":")[2]],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    served = Served(url, process)
    try:
        wait_until(lambda: process.poll() is not None or _answers(url + until), within=within,
                   what=f"serve to answer {until}")
        assert process.poll() is None, served.stderr()
        yield served
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=60)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError:  # listening, not ready yet
        return False
    except OSError:  # not listening yet
        return False


def get_json(url: str, key: str | None = None) -> tuple[int, Any]:
    """GET `url` (with the API key `key`, if given): the status and the decoded JSON body."""
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
