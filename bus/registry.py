"""Port: the schema registry that gives every event schema a global id.

Producers put the id in each message (Confluent wire format); consumers look the writer
schema up by it. A subject (`<topic>-<record name>`, TopicRecordNameStrategy) holds the
versions of one event type's schema on one topic; a new version is accepted only if it is
BACKWARD_TRANSITIVE compatible with all earlier ones (see `bus.compatibility`).

Adapters: the embedded registry in the event store's own database (`bus.registry_sql`, with a
module per database: `bus.registry_sqlite`, `bus.registry_postgres`) and `bus.registry_http`
(a Confluent-compatible registry over HTTP).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, NamedTuple, Self

from bus.compatibility import SchemaProblem

__all__ = ["SchemaRegistry", "SchemaVersion"]


class SchemaVersion(NamedTuple):
    """One registered version of a subject."""

    version: int
    schema_id: int
    schema: dict[str, Any]


class SchemaRegistry(ABC):
    """Where schemas are registered and looked up by id."""

    @abstractmethod
    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """The id of `schema` under `subject`, registering it as the next version if new.

        Idempotent: the same schema gets the same id again. A changed schema becomes a new
        version only if it is compatible (BACKWARD_TRANSITIVE) with every earlier version of
        the subject; otherwise IncompatibleSchemaError names the subject and the field.
        """

    @abstractmethod
    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        """The schema registered with `schema_id`; SchemaNotFoundError if there is none."""

    @abstractmethod
    def versions(self, subject: str) -> list[SchemaVersion]:
        """Every version of `subject`, oldest first; empty if the subject is unknown."""

    @abstractmethod
    def subjects(self) -> list[str]:
        """Every subject with at least one version, sorted."""

    @abstractmethod
    def check_compatibility(self, subject: str, schema: dict[str, Any]) -> list[SchemaProblem]:
        """Why `register` would refuse `schema` as the next version of `subject`; [] if not."""

    def close(self) -> None:  # noqa: B027 - optional hook, most adapters hold a connection
        """Release connections; the registry is not used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
