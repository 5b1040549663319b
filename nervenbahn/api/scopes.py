"""Scopes: what a consumer's API key lets it read.

- a branch office (Zweigstelle): the cases of the municipalities it serves;
- a social region: its caseload and work list;
- the canton: aggregate figures only;
- an auditor: the access log;
- a bus reader (an application subscribing to the bus's topics): the schema registry served
  over HTTP, read only (`nervenbahn.api.registry`).

A scope is written `branch_office:akso-olten`, `region:so-olten`, `canton`, `auditor` or
`bus_reader`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from nervenbahn.api.errors import InvalidScopeError

__all__ = ["Scope", "ScopeKind", "parse_scope"]

ScopeKind = Literal["branch_office", "region", "canton", "auditor", "bus_reader"]
_KINDS: tuple[str, ...] = get_args(ScopeKind)
_WITH_ID = frozenset({"branch_office", "region"})


@dataclass(frozen=True)
class Scope:
    """One scope: its kind, and for a branch office or social region, which one."""

    kind: ScopeKind
    id: str | None = None

    def __str__(self) -> str:
        return self.kind if self.id is None else f"{self.kind}:{self.id}"

    def to_json(self) -> dict[str, str]:
        """The scope as stored in the API-key file."""
        return {"kind": self.kind} if self.id is None else {"kind": self.kind, "id": self.id}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Scope:
        """A scope as stored in the API-key file (shape checked, ids not)."""
        kind, scope_id = raw.get("kind"), raw.get("id")
        if kind not in _KINDS:
            raise InvalidScopeError(f"unknown scope kind {kind!r}; use one of {', '.join(_KINDS)}")
        if (kind in _WITH_ID) != isinstance(scope_id, str) or scope_id == "":
            need = "needs an id" if kind in _WITH_ID else "takes no id"
            raise InvalidScopeError(f"scope {kind!r} {need}")
        return cls(kind, scope_id)


def parse_scope(
    text: str, *, branch_offices: Collection[str], regions: Collection[str]
) -> Scope:
    """Parse `branch_office:ID`, `region:ID`, `canton`, `auditor` or `bus_reader`; ids must
    exist."""
    kind, _, scope_id = text.strip().partition(":")
    scope = Scope.from_json({"kind": kind, "id": scope_id} if scope_id else {"kind": kind})
    known = {"branch_office": branch_offices, "region": regions}.get(scope.kind)
    if known is not None and scope.id not in known:
        what = "branch office" if scope.kind == "branch_office" else "social region"
        raise InvalidScopeError(f"{what} {scope.id!r} does not exist in the reference data")
    return scope
