"""Several `nervenbahn serve` processes on one PostgreSQL store and one broker (issue 18): each
instance a process in a folder of its own, as on separate machines behind a load balancer.

`Cluster` builds the shared environment (the store's schema, keys, the API-key file every
instance reads, the broker, a topic prefix of its own) and one `Installation`
(`tests.chaos.harness`) per instance, whose `Serve` starts, kills and stops the process. Two
shapes (`nervenbahn.instances`):

- `shared`: read models in one PostgreSQL schema (NERVENBAHN_PROJECTIONS_STORE), one consumer
  group per read model across the instances;
- `local`: read models in SQLite files in each instance's folder, each instance named
  (`node-<i>`) and in groups of its own.

`round_robin` answers a GET from the instances in turn, as a load balancer would; `answers`
asks every instance the same question, for the "same answer whichever serves it" checks.
Nothing sleeps on hope: waits poll a condition with a deadline.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import cycle
from pathlib import Path
from typing import Any, Literal
from uuid import uuid4

import psycopg
from psycopg import sql

from bus.broker import EmbeddedBroker
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.config import Settings, load_settings
from tests.chaos.harness import Installation, Serve

Shape = Literal["shared", "local"]

SCOPES = {
    "region": Scope("region", "so-olten"),
    "office": Scope("branch_office", "akso-olten"),
    "canton": Scope("canton"),
}
"""The API keys every instance accepts (one registry file, as a mounted secret would be)."""


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Cluster:
    """`size` instances of one installation on `postgres_server_url` and `broker`."""

    root: Path
    broker: EmbeddedBroker
    postgres_server_url: str
    shape: Shape
    size: int = 3
    schema: str = field(default_factory=lambda: f"t_{uuid4().hex[:12]}")
    nodes: list[Installation] = field(default_factory=list)
    serves: list[Serve] = field(default_factory=list)
    api_keys: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        keys_file = self.root / "api-keys.json"
        registry = ApiKeyRegistry(keys_file)
        self.api_keys = {name: registry.add(name, scope, now=datetime.now(UTC))
                         for name, scope in SCOPES.items()}
        common = {
            "NERVENBAHN_STORE": f"{self.postgres_server_url}?schema={self.schema}",
            "NERVENBAHN_MASTER_KEY": _key(),
            "NERVENBAHN_REPORTING_KEY": _key(),
            "NERVENBAHN_AUDIT_SIGNING_KEY": _key(),
            "NERVENBAHN_API_KEYS": str(keys_file),
            "NERVENBAHN_KAFKA": self.broker.bootstrap,
            "NERVENBAHN_TOPIC_PREFIX": f"scale{uuid4().hex[:8]}",
            # about 13 connections per serve at the default pool of 5 (docs/operations.md);
            # three instances beside another test must stay under the server's 100
            "NERVENBAHN_POSTGRES_POOL_SIZE": "2",
        }
        if self.shape == "shared":
            common["NERVENBAHN_PROJECTIONS_STORE"] = (
                f"{self.postgres_server_url}?schema={self.schema}_rm")
        for i in range(1, self.size + 1):
            self.add_node(common, i)

    def add_node(self, common: dict[str, str] | None = None, i: int | None = None) -> Serve:
        """One more instance (folder `instance-<i>`, not started); its `Serve`."""
        common = common or self.common
        i = i or len(self.nodes) + 1
        folder = self.root / f"instance-{i}"
        folder.mkdir(exist_ok=True, mode=0o700)
        env = {**common, "NERVENBAHN_ACCESS_LOG": str(folder / "access-log.db")}
        if self.shape == "local":
            env["NERVENBAHN_INSTANCE"] = f"node-{i}"
        node = Installation(folder, self.broker, env=env)
        self.nodes.append(node)
        self.serves.append(node.serve(f"instance-{i}"))
        return self.serves[-1]

    @property
    def common(self) -> dict[str, str]:
        """The variables every instance shares (the first instance's, without its own)."""
        own = ("NERVENBAHN_ACCESS_LOG", "NERVENBAHN_INSTANCE")
        return {k: v for k, v in self.nodes[0].env.items()
                if k.startswith("NERVENBAHN_") and k not in own}

    @property
    def settings(self) -> Settings:
        """The settings of the first instance (the store, the keys, the bus)."""
        return self.nodes[0].settings

    def start(self, within: float = 120.0) -> None:
        """Start every instance not running yet and wait until each is ready."""
        for serve in self.serves:
            if serve.process is None or serve.process.poll() is not None:
                serve.start()
        for serve in self.serves:
            serve.wait_ready(within)

    def stop(self) -> None:
        """Stop every instance (SIGTERM, SIGKILL after 30 s)."""
        for serve in self.serves:
            serve.stop()

    def drop(self) -> None:
        """Drop the store's (and the shared read models') schemas."""
        with psycopg.connect(self.postgres_server_url, autocommit=True) as admin:
            for schema in (self.schema, f"{self.schema}_rm"):
                admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
                              .format(sql.Identifier(schema)))

    def running(self) -> list[Serve]:
        """The instances whose process runs."""
        return [s for s in self.serves if s.process is not None and s.process.poll() is None]

    def get(self, serve: Serve, path: str, key: str = "region") -> Any:
        """GET `path` from one instance with the API key `key`; the JSON body."""
        request = urllib.request.Request(f"http://127.0.0.1:{serve.port}{path}",
                                         headers={"X-API-Key": self.api_keys[key]})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def answers(self, path: str, key: str = "region") -> list[Any]:
        """The same GET asked of every running instance, in order."""
        return [self.get(serve, path, key) for serve in self.running()]

    def round_robin(self) -> Iterator[Serve]:
        """The running instances in turn, for ever (a load balancer's rotation)."""
        return cycle(self.running())


@contextmanager
def cluster(root: Path, broker: EmbeddedBroker, postgres_server_url: str, shape: Shape,
            size: int = 3) -> Iterator[Cluster]:
    """A started cluster of `size` ready instances; stopped and its schemas dropped after."""
    made = Cluster(root, broker, postgres_server_url, shape, size)
    try:
        made.start()
        yield made
    finally:
        made.stop()
        made.drop()


def settings_of(env: dict[str, str]) -> Settings:
    """Settings from an instance's environment (its NERVENBAHN_* variables only)."""
    return load_settings({k: v for k, v in env.items() if k.startswith("NERVENBAHN_")})
