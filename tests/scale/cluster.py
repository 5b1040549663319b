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
For the kill scenarios it looks at each place where read models lie (`processed`: the event
ids a group recorded as applied; `check_read_models`: lost and extra ids and the rows against a
rebuild from the store into a scratch file or schema; `dead_letters`), finds the instance that
publishes (`publishing`), kills one mid-batch (`kill_mid_batch`) and counts (`tally`, one
`Figures` row). Nothing sleeps on hope: waits poll a condition with a deadline.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from itertools import cycle
from pathlib import Path
from typing import Any, Literal
from uuid import UUID, uuid4

import psycopg
from psycopg import sql

from bus.broker import EmbeddedBroker
from bus.topics import dead_letter_topic, topic_message_counts
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.config import Settings, load_settings
from nervenbahn.datasets import CASE_EVENTS
from nervenbahn.datasets import dataset as dataset_spec
from nervenbahn.instances import group_suffix
from nervenbahn.paths import read_model_target
from projections import PROJECTIONS, Projection
from projections.framework import rebuild
from projections.storage import (
    PostgresReadModels,
    ReadModelTarget,
    read_model_built,
    read_model_connection,
)
from schemas.sql import placeholder
from tests.bus.waiting import wait_until
from tests.chaos.harness import (
    READY_WITHIN_S,
    SETTLE_WITHIN_S,
    Installation,
    Serve,
    recorded_ids,
    wait_for,
)

Shape = Literal["shared", "local"]

SCOPES = {
    "region": Scope("region", "so-olten"),
    "office": Scope("branch_office", "akso-olten"),
    "canton": Scope("canton"),
}
"""The API keys every instance accepts (one registry file, as a mounted secret would be)."""


POOL_SIZE = 1
"""Each instance's event-store pools (cases, payments, benefits: eventsourcing opens them at
their size). Counted in pg_stat_activity for one ready `serve`: 31 connections at the default
5, 23 at 2, 20 at 1 (docs/operations.md). Three instances with writers, beside a `serve` of
another test on the other xdist worker, came to a server's default max_connections of 100
("too many clients already"); `.ci/run` raises it to 200, and the instances keep one each."""


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
    named: bool = True
    """In the shape `local`: each instance named `node-<i>` (False: none named, the shape
    that `serve` refuses beside another instance)."""
    schema: str = field(default_factory=lambda: f"t_{uuid4().hex[:12]}")
    nodes: list[Installation] = field(default_factory=list)
    serves: list[Serve] = field(default_factory=list)
    api_keys: dict[str, str] = field(default_factory=dict)
    _scratch_schemas: list[str] = field(default_factory=list)

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
            "NERVENBAHN_POSTGRES_POOL_SIZE": str(POOL_SIZE),
        }
        if self.shape == "shared":
            common["NERVENBAHN_PROJECTIONS_STORE"] = (
                f"{self.postgres_server_url}?schema={self.schema}_rm")
        for i in range(1, self.size + 1):
            self.add_node(common, i)

    def add_node(self, common: dict[str, str] | None = None, i: int | None = None, *,
                 folder: str | None = None, instance: str | None = "") -> Serve:
        """One more instance (not started); its `Serve`, logging to `instance-<i>.log`. It
        runs in `folder` (default `instance-<i>`; the folder of another instance puts both on
        the same SQLite read models). `instance`: its NERVENBAHN_INSTANCE, by default
        `node-<i>` in the shape `local` (unless not `named`) and none in `shared`; None: none
        whatever the shape."""
        common = common or self.common
        i = i or len(self.nodes) + 1
        where = self.root / (folder or f"instance-{i}")
        where.mkdir(exist_ok=True, mode=0o700)
        env = {**common, "NERVENBAHN_ACCESS_LOG": str(where / f"access-log-{i}.db")}
        if instance == "" and self.shape == "local" and self.named:
            instance = f"node-{i}"
        if instance:
            env["NERVENBAHN_INSTANCE"] = instance
        node = Installation(where, self.broker, env=env)
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

    def start(self, serves: Sequence[Serve] | None = None, within: float = 120.0) -> None:
        """Start the instances `serves` (all by default) not running yet and wait until each
        is ready."""
        serves = self.serves if serves is None else serves
        for serve in serves:
            if serve.process is None or serve.process.poll() is not None:
                serve.start()
        for serve in serves:
            serve.wait_ready(within)

    def stop(self) -> None:
        """Stop every instance (SIGTERM, SIGKILL after 30 s)."""
        for serve in self.serves:
            serve.stop()

    def drop(self) -> None:
        """Drop the store's, the shared read models' and the rebuilds' schemas."""
        with psycopg.connect(self.postgres_server_url, autocommit=True) as admin:
            for schema in (self.schema, f"{self.schema}_rm", *self._scratch_schemas):
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

    def live_instances(self) -> list[int]:
        """The process ids of the instances whose announcement on the store is live."""
        with psycopg.connect(self.postgres_server_url) as db:
            rows = db.execute(
                sql.SQL("SELECT pid FROM {}.serve_instances WHERE expires_at > now() ORDER BY "
                        "pid").format(sql.Identifier(self.schema))).fetchall()
        return [int(row[0]) for row in rows]

    def readiness(self, serve: Serve) -> tuple[int | None, list[str]]:
        """GET /health/ready of one instance: its status and the names of the failing checks
        (None and no names while it does not answer yet)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{serve.port}/health/ready",
                                        timeout=5) as answer:
                return answer.status, json.loads(answer.read())["failing"]
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read()).get("failing", [])
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None, []

    def answers(self, path: str, key: str = "region") -> list[Any]:
        """The same GET asked of every running instance, in order."""
        return [self.get(serve, path, key) for serve in self.running()]

    def round_robin(self) -> Iterator[Serve]:
        """The running instances in turn, for ever (a load balancer's rotation)."""
        return cycle(self.running())

    def publishing(self, dataset: str = CASE_EVENTS) -> Serve | None:
        """The running instance whose relay of `dataset` holds the lease (publishes), if one
        does now: the lease names its process."""
        relay = dataset_spec(dataset).relay
        with psycopg.connect(self.postgres_server_url) as db:
            row = db.execute(
                sql.SQL("SELECT holder FROM {}.relay_leases WHERE relay = %s AND expires_at > "
                        "now()").format(sql.Identifier(self.schema)), (relay,)).fetchone()
        pid = int(row[0].split(":")[1]) if row else None
        return next((s for s in self.running() if s.process and s.process.pid == pid), None)

    # --- the read models as each instance holds them ---------------------------------------

    def node_of(self, serve: Serve) -> Installation:
        """The installation (folder, environment) `serve` runs in."""
        return self.nodes[self.serves.index(serve)]

    def read_model(self, node: Installation, name: str) -> ReadModelTarget:
        """Where the instance of `node` keeps the read model `name` (a SQLite file in its
        folder: `serve` runs there, and a PostgreSQL store's folder is relative to it)."""
        target = read_model_target(node.settings, name)
        if isinstance(target, Path) and not target.is_absolute():
            return node.root / target
        return target

    def processed(self, node: Installation, name: str) -> set[UUID]:
        """The event ids the read model `name` of `node` has recorded as applied, by the
        group that feeds it there (empty while it is not built)."""
        group = projection_of(node, name).group
        target = self.read_model(node, name)
        if not read_model_built(target, "processed_events"):
            return set()
        return processed_ids(target, group)

    def applied_between(self, node: Installation, low: int, high: int) -> int:
        """How many events the region read model of `node` has applied, if `low` <= that <
        `high` (some but not all of what is being written: the moment to kill), else 0."""
        applied = len(self.processed(node, "region"))
        return applied if low <= applied < high else 0

    def kill_mid_batch(self, victim: Serve, writers: Sequence[subprocess.Popen[bytes]],
                       node: Installation, low: int, high: int) -> tuple[int, float]:
        """While `writers` run: once the region read model of `node` holds at least `low` and
        fewer than `high` events, SIGKILL `victim`, start it again and wait until it is ready
        and the writers are done (they are killed if anything fails). The events applied at
        the kill, and the seconds the restarted instance took to be ready."""
        try:
            held = wait_until(lambda: self.applied_between(node, low, high), within=120,
                              what="the read models holding some, not all, of the writes")
            victim.kill()
            victim.start()
            ready_after = victim.wait_ready(READY_WITHIN_S)
            assert all(wait_for(w, 300, "a writer done") == 0 for w in writers)
        finally:
            for writer in writers:
                writer.kill()
        return held, ready_after

    def tally(self, row: Figures, today: date) -> tuple[list[ReadModelCheck], dict[str, bool]]:
        """Settle (`settle`), then fill `row` in: events in, lost, applied twice, read models
        equal to a rebuild, answers alike; the checks and each endpoint's alikeness."""
        checks = self.settle()
        row.events_in = self.events_recorded()
        row.lost = sum(check.lost for check in checks)
        row.applied_twice = (sum(check.extra for check in checks)
                             + sum(self.dead_letters(node) for node in self.nodes))
        row.read_models_equal = all(check.tables_equal for check in checks)
        alike = self.answers_alike(today)
        row.answers_equal = all(alike.values())
        return checks, alike

    def check_read_models(self, node: Installation) -> list[ReadModelCheck]:
        """Each read model of `node` (fed from the bus) against a rebuild from the store,
        with the events it lost and those it holds that a rebuild would not."""
        checks = []
        with node.container() as container:
            for name in PROJECTIONS:
                projection = container.projection(name)
                served = self.read_model(node, name)
                fresh = self._scratch(node, name)
                rebuild(projection, container.event_source(projection), fresh)
                applied = processed_ids(served, projection.group)
                expected = processed_ids(fresh, projection.group)
                checks.append(ReadModelCheck(
                    name, len(expected), len(expected - applied), len(applied - expected),
                    dump(projection, served) == dump(projection, fresh)))
        return checks

    def dead_letters(self, node: Installation) -> int:
        """Messages on the dead-letter topics of `node`'s read models' groups: an event a
        consumer refused (applying it a second time violates a key, say) lands there."""
        with node.container() as container:
            topics = [dead_letter_topic(container.kafka, container.projection(name).group)
                      for name in PROJECTIONS]
            counts = topic_message_counts(container.kafka, topics)
        return sum(count or 0 for count in counts.values())

    def holders(self) -> list[Installation]:
        """One instance per place where read models lie: the first in the shape `shared`
        (one schema for all), each in the shape `local`."""
        seen: dict[str, Installation] = {}
        for node in self.nodes:
            seen.setdefault(str(self.read_model(node, "region")), node)
        return list(seen.values())

    def events_recorded(self) -> int:
        """How many events the store holds (the case events every read model is fed)."""
        with self.nodes[0].container() as container:
            return len(recorded_ids(container.service))

    def settle(self, within: float = SETTLE_WITHIN_S) -> list[ReadModelCheck]:
        """Wait (up to `within`) until every place's read models equal a rebuild from the
        store; the checks of each (the last ones, failing if the deadline passed)."""
        recorded = self.events_recorded()
        last: list[ReadModelCheck] = []

        def caught_up() -> bool:
            nodes = self.holders()
            if any(len(self.processed(node, name)) < recorded
                   for node in nodes for name in ("region", "branch_office")):
                return False  # not yet: no need to rebuild to know that
            last[:] = [check for node in nodes for check in self.check_read_models(node)]
            return all(check.ok for check in last)

        try:
            wait_until(caught_up, within=within, what="every read model equal to a rebuild")
        except AssertionError:
            if not last:
                last[:] = [c for node in self.holders() for c in self.check_read_models(node)]
        return list(last)

    def answers_alike(self, today: date) -> dict[str, bool]:
        """Each endpoint of `ENDPOINTS` (for `today`): whether every running instance answers
        it alike."""
        alike = {}
        for path, key in endpoints(today):
            first, *others = self.answers(path, key)
            alike[path] = all(other == first for other in others)
        return alike

    def _scratch(self, node: Installation, name: str) -> ReadModelTarget:
        """A place of its own to rebuild `name` into, beside where `node` keeps it."""
        served = self.read_model(node, name)
        if isinstance(served, Path):
            scratch = node.root / "rebuilt"
            scratch.mkdir(exist_ok=True)
            return scratch / f"{name}-{uuid4().hex[:6]}.db"
        schema = f"{self.schema}_rb{len(self._scratch_schemas)}"
        self._scratch_schemas.append(schema)
        return PostgresReadModels(served.conninfo, schema)


@dataclass(frozen=True)
class ReadModelCheck:
    """One read model of one instance against a rebuild from the store."""

    name: str
    expected: int
    """Events a rebuild applies (recorded as processed under the read model's group)."""
    lost: int
    """Of those, the events the served read model has not applied."""
    extra: int
    """Events the served read model recorded as applied that a rebuild does not know."""
    tables_equal: bool
    """Every table of the read model holds the rows of the rebuild."""

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing extra, the same rows."""
        return self.lost == 0 and self.extra == 0 and self.tables_equal


def endpoints(today: date) -> list[tuple[str, str]]:
    """Questions whose answers come from the read models, with the key that may ask: the
    region's caseload and work list (everything due up to a year from `today`), the branch
    office's case list, the canton's figures of the quarter of `today`."""
    quarter = f"{today.year}Q{(today.month - 1) // 3 + 1}"
    ahead = today.replace(year=today.year + 1)
    return [
        ("/v1/regions/so-olten/caseload", "region"),
        (f"/v1/regions/so-olten/worklist?today={ahead.isoformat()}", "region"),
        ("/v1/branch-offices/akso-olten/cases?limit=500", "office"),
        (f"/v1/canton/quarters/{quarter}", "canton"),
    ]


def projection_of(node: Installation, name: str) -> Projection:
    """The projection `name` as the instance of `node` configures it (its group among them),
    without opening its store (`Container.projection` does the same)."""
    projection = PROJECTIONS[name].from_settings(node.settings)
    projection.group_suffix = group_suffix(node.settings)
    return projection


def processed_ids(target: ReadModelTarget, group: str) -> set[UUID]:
    """The event ids `group` recorded as processed in the read models at `target`."""
    with read_model_connection(target) as db:
        rows = db.execute(
            f"SELECT event_id FROM processed_events WHERE group_id = {placeholder(db)}",
            (group,),
        ).fetchall()
    return {UUID(str(row[0])) for row in rows}


def dump(projection: Projection, target: ReadModelTarget) -> dict[str, list[Any]]:
    """Every row of the projection's own tables at `target`, in a fixed order."""
    with read_model_connection(target) as db:
        return {
            table: sorted(db.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in projection.tables
        }


@contextmanager
def cluster(root: Path, broker: EmbeddedBroker, postgres_server_url: str, shape: Shape,
            size: int = 3, started: int | None = None, *, named: bool = True,
            ) -> Iterator[Cluster]:
    """A cluster of `size` instances (`Cluster`), the first `started` of them (all by
    default) started and ready; stopped and its schemas dropped after."""
    made = Cluster(root, broker, postgres_server_url, shape, size, named)
    try:
        made.start(made.serves[:started])
        yield made
    finally:
        made.stop()
        made.drop()


def settings_of(env: dict[str, str]) -> Settings:
    """Settings from an instance's environment (its NERVENBAHN_* variables only)."""
    return load_settings({k: v for k, v in env.items() if k.startswith("NERVENBAHN_")})


@dataclass
class Figures:
    """One scenario's row of the closing table of tests/scale (`tests/scale/conftest.py`)."""

    scenario: str
    instances: int
    events_in: int = 0
    """Case events recorded in the store."""
    lost: int = 0
    """Events some instance's read models never applied (summed over read models and
    instances with read models of their own)."""
    applied_twice: int = 0
    """Events applied beyond a rebuild's (processed ids a rebuild does not know) plus messages
    the read models' consumers dead-lettered (a second application refused by a key)."""
    answers_equal: bool | None = None
    read_models_equal: bool | None = None
    ready_after_s: float | None = None
    """Seconds from the restart of the instance killed until it was ready again."""
    note: str = ""

    def row(self) -> dict[str, Any]:
        """The row as JSON-able values."""
        return asdict(self)
