"""`nervenbahn registry serve` as an operator runs it: a process serving the store's registry
at the root path, readers with a `bus_reader` key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from bus.broker import free_port
from bus.registry_sqlite import SQLiteSchemaRegistry
from tests.bus.waiting import wait_until

SCHEMA = {"type": "record", "name": "Probe", "namespace": "ch.nervenbahn",
          "fields": [{"name": "a", "type": "string"}]}


def _nervenbahn(*args: str) -> list[str]:
    return [sys.executable, "-m", "nervenbahn", *args]


def test_registry_serve_answers_bus_readers_at_the_root_path(tmp_path: Path) -> None:
    env = {**os.environ, "NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'store.db'}"}
    env.pop("NERVENBAHN_API_KEYS", None)
    with SQLiteSchemaRegistry(tmp_path / "store.db") as registry:
        schema_id = registry.register("case-events-ch.nervenbahn.Probe", SCHEMA)
    added = subprocess.run(
        _nervenbahn("--json", "apikeys", "add", "--consumer", "vendor-app", "--scope",
                    "bus_reader"),
        env=env, capture_output=True, text=True, check=True,
    )
    key = json.loads(added.stdout)["key"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        _nervenbahn("registry", "serve", "--port", str(port)),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        answer = wait_until(lambda: _get(f"{url}/schemas/ids/{schema_id}", ("vendor-app", key)),
                            what="registry serve to answer")
        assert json.loads(answer.json()["schema"]) == SCHEMA
        refused = httpx.get(f"{url}/subjects")
        assert (refused.status_code, refused.json()["error_code"]) == (401, 40101)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _get(url: str, auth: tuple[str, str]) -> httpx.Response | None:
    try:
        return httpx.get(url, auth=auth)
    except httpx.TransportError:
        return None
