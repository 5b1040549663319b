"""Which open cases a person reported by the population register belongs to.

The index never holds an AHVN13 in clear: each household member's AHVN13 (applicant and other
members) is keyed with HMAC-SHA256 under a per-run random key, and only the MAC maps to case
ids. The index is built at the start of a run from the open cases (the source runs in-process
with the CaseService, which opens the sealed personal data) and dropped with the run, so it
never reaches a disk. Erased persons are not indexed. The register's local person id is
matched the same way when it carries a nervenbahn person id (category `LOCAL_ID_CATEGORY`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from domain.case import Case
from domain.personal_data import ErasedPersonalData, normalise_ahvn13

__all__ = ["LOCAL_ID_CATEGORY", "CaseMatch", "PersonIndex"]

LOCAL_ID_CATEGORY = "CH.NERVENBAHN"
"""eCH-0044 personIdCategory under which a register sends our person id as local id."""


@dataclass(frozen=True)
class CaseMatch:
    """An open case a reported person belongs to, and its social region now."""

    case_id: UUID
    social_region: str
    municipality_bfs: int


class PersonIndex:
    """AHVN13 / person id → open cases, keyed by an HMAC that lives as long as the index."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)
        self._cases: dict[str, set[UUID]] = defaultdict(set)
        self._matches: dict[UUID, CaseMatch] = {}

    @classmethod
    def of_open_cases(cls, cases: Iterable[Case]) -> PersonIndex:
        """The index of every member of every case that is not closed."""
        index = cls()
        for case in cases:
            if case.phase != "closed":
                index.add(case)
        return index

    def add(self, case: Case) -> None:
        """Index the case's household members (applicant and other members)."""
        self._matches[case.id] = CaseMatch(case.id, case.social_region, case.municipality_bfs)
        for person in (case.applicant, *case.other_members):
            if isinstance(person, ErasedPersonalData) or person.is_erased:
                continue
            ahvn13 = str(person.ahvn13)
            self._cases[self._mac("vn", normalise_ahvn13(ahvn13))].add(case.id)
            self._cases[self._mac("id", str(person.person_id))].add(case.id)

    def by_ahvn13(self, ahvn13: str) -> list[CaseMatch]:
        """Open cases with a member of this AHVN13 (printed or 13 digits)."""
        return self._found(self._mac("vn", normalise_ahvn13(ahvn13)))

    def by_local_id(self, category: str, person_id: str) -> list[CaseMatch]:
        """Open cases with this member, if the register sent our person id as local id."""
        if category != LOCAL_ID_CATEGORY:
            return []
        try:
            return self._found(self._mac("id", str(UUID(person_id))))
        except ValueError:
            return []

    def _found(self, mac: str) -> list[CaseMatch]:
        return sorted(
            (self._matches[case_id] for case_id in self._cases.get(mac, ())),
            key=lambda m: str(m.case_id),
        )

    def _mac(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"PersonIndex(cases={len(self._matches)})"
