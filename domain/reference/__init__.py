"""Versioned reference data: Solothurn's social regions and the SKOS basic-needs amounts.

The data files in `data/` carry their sources; this module only reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib import resources
from typing import Any

from domain.errors import ReferenceDataError

__all__ = [
    "BenefitDocument",
    "BranchOffice",
    "Municipality",
    "ReferenceData",
    "SkosRate",
    "SkosTable",
    "SocialRegion",
    "load_benefit_checklists",
    "load_branch_offices",
    "load_reference_data",
]


@dataclass(frozen=True)
class Municipality:
    """A political municipality, by its BFS number."""

    bfs: int
    name: str
    region_id: str


@dataclass(frozen=True)
class SocialRegion:
    """A Sozialregion: the social service responsible for its municipalities' cases."""

    id: str
    name: str
    municipality_bfs: tuple[int, ...]


@dataclass(frozen=True)
class SkosRate:
    """The monthly basic needs of a one-person household from a date on."""

    valid_from: date
    one_person: Decimal
    confirmed: bool
    source: str
    """Whose amount: "canton SO" (the amount Solothurn applies) or "SKOS recommendation"
    (no Solothurn amount known for the year); shown in every basic-needs line's basis."""
    cited: str = ""
    """The data file's sources for the amount (its `source_keys`)."""
    decision: str | None = None
    """The Regierungsrat decision that set Solothurn's amount (e.g. "RRB 2023/59"); None where
    none is recorded in the data file (`so_decision_note` says why)."""


@dataclass(frozen=True)
class SkosTable:
    """SKOS basic needs (Grundbedarf) by date and household size."""

    rates: tuple[SkosRate, ...]
    factors: dict[int, Decimal]
    additional_person_step: Decimal
    rounding_increment: Decimal

    def rate_on(self, on: date) -> SkosRate:
        """The rate in force on the given date."""
        in_force = [rate for rate in self.rates if rate.valid_from <= on]
        if not in_force:
            raise ReferenceDataError(f"no SKOS basic-needs amount is known for {on.isoformat()}")
        return max(in_force, key=lambda rate: rate.valid_from)

    def factor(self, household_size: int) -> Decimal:
        """The equivalence factor for a household of the given size."""
        if household_size < 1:
            raise ReferenceDataError("household size must be at least 1")
        largest = max(self.factors)
        if household_size <= largest:
            return self.factors[household_size]
        return self.factors[largest] + self.additional_person_step * (household_size - largest)

    def basic_needs(self, on: date, household_size: int) -> Decimal:
        """Monthly basic needs in CHF for the household, rounded as the guidelines do."""
        raw = self.rate_on(on).one_person * self.factor(household_size)
        steps = (raw / self.rounding_increment).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return (steps * self.rounding_increment).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class ReferenceData:
    """All reference data a command may need, loaded once."""

    regions: dict[str, SocialRegion]
    municipalities: dict[int, Municipality]
    skos: SkosTable
    version: str

    def municipality(self, bfs: int) -> Municipality:
        """The municipality with this BFS number, or ReferenceDataError."""
        try:
            return self.municipalities[bfs]
        except KeyError:
            raise ReferenceDataError(
                f"municipality_bfs: {bfs} is not a municipality of canton Solothurn "
                f"(reference data {self.version})"
            ) from None

    def region(self, region_id: str) -> SocialRegion:
        """The social region with this id, or ReferenceDataError."""
        try:
            return self.regions[region_id]
        except KeyError:
            raise ReferenceDataError(f"social region {region_id!r} does not exist") from None


def _read(name: str) -> dict[str, Any]:
    text = resources.files("domain.reference").joinpath("data", name).read_text("utf-8")
    return dict(json.loads(text))


def _rate(year: dict[str, Any]) -> SkosRate:
    """Canton Solothurn's applied amount where known, else the SKOS recommendation."""
    applied = year.get("so_applied_one_person_chf")
    if applied is not None:
        return SkosRate(
            valid_from=date.fromisoformat(year["valid_from"]),
            one_person=Decimal(applied),
            confirmed=bool(year.get("so_applied_confirmed", False)),
            source="canton SO",
            cited=str(year.get("so_source", "")),
            decision=year.get("so_decision"),
        )
    return SkosRate(
        valid_from=date.fromisoformat(year["valid_from"]),
        one_person=Decimal(year["one_person_chf"]),
        confirmed=bool(year.get("confirmed", False)),
        source="SKOS recommendation",
        cited=str(year.get("source", "")),
        decision=year.get("so_decision"),
    )


def _skos_table(raw: dict[str, Any]) -> SkosTable:
    rates = tuple(_rate(year) for year in raw["years"])
    return SkosTable(
        rates=rates,
        factors={int(size): Decimal(f) for size, f in raw["household_size_factors"].items()},
        additional_person_step=Decimal(raw["additional_person_step"]),
        rounding_increment=Decimal(raw.get("rounding_increment_chf", "1.00")),
    )


@cache
def load_reference_data() -> ReferenceData:
    """Load the reference data shipped with this package."""
    regions_raw = _read("so_social_regions.json")
    regions: dict[str, SocialRegion] = {}
    municipalities: dict[int, Municipality] = {}
    for region in regions_raw["social_regions"]:
        bfs_numbers = tuple(int(m["bfs"]) for m in region["municipalities"])
        regions[region["id"]] = SocialRegion(region["id"], region["name"], bfs_numbers)
        for m in region["municipalities"]:
            municipalities[int(m["bfs"])] = Municipality(int(m["bfs"]), m["name"], region["id"])
    return ReferenceData(
        regions=regions,
        municipalities=municipalities,
        skos=_skos_table(_read("skos_basic_needs.json")),
        version=str(regions_raw["version"]),
    )


@dataclass(frozen=True)
class BranchOffice:
    """An AKSO branch office (Zweigstelle) and the municipalities it serves."""

    id: str
    name: str
    seat_bfs: int
    municipalities: frozenset[int]


@cache
def load_branch_offices() -> dict[str, BranchOffice]:
    """The AKSO branch offices by id, from the versioned data file (with its sources)."""
    raw = _read("akso_branch_offices.json")
    return {
        office["id"]: BranchOffice(
            id=office["id"],
            name=office["name"],
            seat_bfs=int(office["seat_bfs"]),
            municipalities=frozenset(int(bfs) for bfs in office["municipalities"]),
        )
        for office in raw["branch_offices"]
    }


@dataclass(frozen=True)
class BenefitDocument:
    """A document a benefit application needs (`benefit_checklists.json`)."""

    code: str
    name: str


@cache
def load_benefit_checklists() -> dict[str, tuple[BenefitDocument, ...]]:
    """The documents every application of a benefit kind needs, by kind (`el_ahv`, `el_iv`,
    `ipv`), from the versioned data file (with its sources)."""
    raw = _read("benefit_checklists.json")
    return {
        kind: tuple(BenefitDocument(doc["code"], doc["name"]) for doc in documents)
        for kind, documents in raw["checklists"].items()
    }
