"""Reference data: Solothurn's social regions and the SKOS basic-needs table.

Expectations are read from the data files themselves (or from the published SKOS tables the
files cite), never from the loader under test.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from domain.errors import ReferenceDataError
from domain.reference import ReferenceData, SkosRate, SkosTable, load_reference_data

from .case_desk import (
    BETTLACH,
    GRENCHEN,
    OLTEN,
    REGIONS_FILE,
    SKOS_FILE,
    SOLOTHURN,
    expected_basic_needs,
)

REGIONS_RAW: dict[str, Any] = json.loads(REGIONS_FILE.read_text("utf-8"))
SKOS_RAW: dict[str, Any] = json.loads(SKOS_FILE.read_text("utf-8"))
YEARS: list[dict[str, Any]] = SKOS_RAW["years"]


def _valid_from(year: dict[str, Any]) -> date:
    return date.fromisoformat(year["valid_from"])


def _applied(year: dict[str, Any]) -> Decimal:
    """Canton Solothurn's amount where the file knows it, else the SKOS recommendation."""
    return Decimal(year.get("so_applied_one_person_chf") or year["one_person_chf"])


# --- social regions --------------------------------------------------------------------------


def test_canton_solothurn_has_13_social_regions(reference: ReferenceData) -> None:
    assert len(REGIONS_RAW["social_regions"]) == 13
    assert len(reference.regions) == 13


def test_every_municipality_belongs_to_exactly_one_region(reference: ReferenceData) -> None:
    listed = Counter(
        int(m["bfs"]) for region in REGIONS_RAW["social_regions"] for m in region["municipalities"]
    )

    assert [bfs for bfs, times in listed.items() if times > 1] == []
    assert set(reference.municipalities) == set(listed)
    for region in reference.regions.values():
        for bfs in region.municipality_bfs:
            assert reference.municipality(bfs).region_id == region.id


def test_the_104_municipalities_of_2026_are_listed(reference: ReferenceData) -> None:
    assert len(reference.municipalities) == 104
    assert all(2401 <= bfs <= 2622 for bfs in reference.municipalities)


@pytest.mark.parametrize("merged_away", [2456, 2520, 2529])
def test_municipalities_merged_away_are_gone(reference: ReferenceData, merged_away: int) -> None:
    with pytest.raises(ReferenceDataError, match=f"municipality_bfs: {merged_away}"):
        reference.municipality(merged_away)


def test_every_region_has_a_name_and_at_least_one_municipality(reference: ReferenceData) -> None:
    for region_id, region in reference.regions.items():
        assert region.id == region_id
        assert region.name.startswith("Sozialregion ")
        assert region.municipality_bfs


@pytest.mark.parametrize(
    ("bfs", "region_id"),
    [(SOLOTHURN, "so-solothurn"), (BETTLACH, "so-oberer-leberberg"),
     (GRENCHEN, "so-oberer-leberberg"), (OLTEN, "so-olten")],
)
def test_municipalities_used_by_the_tests_are_where_the_tests_assume(
    reference: ReferenceData, bfs: int, region_id: str
) -> None:
    assert reference.municipality(bfs).region_id == region_id
    assert reference.region(region_id).id == region_id


def test_unknown_municipality_and_region_are_reference_data_errors(
    reference: ReferenceData,
) -> None:
    with pytest.raises(ReferenceDataError, match=r"municipality_bfs: 351 .*canton Solothurn"):
        reference.municipality(351)
    with pytest.raises(ReferenceDataError, match="so-nowhere"):
        reference.region("so-nowhere")


def test_reference_data_is_loaded_once() -> None:
    assert load_reference_data() is load_reference_data()
    assert load_reference_data().version == REGIONS_RAW["version"]


# --- SKOS basic needs ------------------------------------------------------------------------


def _lookup_dates() -> list[date]:
    days: list[date] = []
    for year in YEARS:
        start = _valid_from(year)
        days += [start, start + timedelta(days=180)]
        if start != _valid_from(YEARS[0]):
            days.append(start - timedelta(days=1))
    return [*days, _valid_from(YEARS[-1]) + timedelta(days=2000)]


@pytest.mark.parametrize("on", _lookup_dates(), ids=str)
def test_skos_rate_is_the_one_in_force_on_the_date(reference: ReferenceData, on: date) -> None:
    in_force = max((y for y in YEARS if _valid_from(y) <= on), key=_valid_from)

    rate = reference.skos.rate_on(on)

    assert rate.valid_from == _valid_from(in_force)
    assert rate.one_person == _applied(in_force)


def test_canton_applied_amount_takes_precedence_over_the_recommendation(
    reference: ReferenceData,
) -> None:
    differing = [y for y in YEARS
                 if y.get("so_applied_one_person_chf") not in (None, y["one_person_chf"])]
    assert differing, "the data file has no year where canton and SKOS differ"
    for year in differing:
        rate = reference.skos.rate_on(_valid_from(year))
        assert rate.one_person == Decimal(year["so_applied_one_person_chf"])
        assert rate.source == "canton SO"
        assert rate.confirmed is bool(year["so_applied_confirmed"])


def test_recommendation_applies_where_the_canton_amount_is_unknown(
    reference: ReferenceData,
) -> None:
    unknown = [y for y in YEARS if y.get("so_applied_one_person_chf") is None]
    for year in unknown:
        rate = reference.skos.rate_on(_valid_from(year))
        assert (rate.one_person, rate.source) == (
            Decimal(year["one_person_chf"]), "SKOS recommendation"
        )


def test_no_rate_before_the_first_year_in_the_table(reference: ReferenceData) -> None:
    first = _valid_from(YEARS[0])
    with pytest.raises(ReferenceDataError, match=(first - timedelta(days=1)).isoformat()):
        reference.skos.rate_on(first - timedelta(days=1))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_equivalence_factors_up_to_five_persons_come_from_the_table(
    reference: ReferenceData, size: int
) -> None:
    assert reference.skos.factor(size) == Decimal(SKOS_RAW["household_size_factors"][str(size)])


@pytest.mark.parametrize("size", [6, 7, 8, 10, 15, 20])
def test_each_person_beyond_five_adds_the_step(reference: ReferenceData, size: int) -> None:
    five = Decimal(SKOS_RAW["household_size_factors"]["5"])
    step = Decimal(SKOS_RAW["additional_person_step"])
    assert reference.skos.factor(size) == five + step * (size - 5)


@pytest.mark.parametrize("size", [0, -1])
def test_household_without_persons_has_no_factor(reference: ReferenceData, size: int) -> None:
    with pytest.raises(ReferenceDataError, match="household size"):
        reference.skos.factor(size)


@pytest.mark.parametrize(
    ("on", "published"),
    [
        # SO applied 986 in 2022 (skos_b22); 1031 from 2023 (so_hb_2023, RRB 2023/59).
        (date(2022, 6, 1), ["986", "1509", "1834", "2110", "2386"]),
        (date(2023, 6, 1), ["1031", "1577", "1918", "2206", "2495"]),
        (date(2024, 6, 1), ["1031", "1577", "1918", "2206", "2495"]),
    ],
)
def test_basic_needs_reproduce_the_published_tables(
    reference: ReferenceData, on: date, published: list[str]
) -> None:
    amounts = [reference.skos.basic_needs(on, size) for size in range(1, 6)]
    assert amounts == [Decimal(p) for p in published]


def test_six_persons_at_1031_get_the_flat_amount_not_the_old_factor(
    reference: ReferenceData,
) -> None:
    assert reference.skos.basic_needs(date(2023, 6, 1), 6) == Decimal("2704.00")


@pytest.mark.parametrize(
    "year", [y for y in YEARS if _applied(y) == Decimal(y["one_person_chf"])],
    ids=lambda y: str(y["year"]),
)
@pytest.mark.parametrize("size", [5, 6, 7, 8, 9])
def test_each_further_person_adds_the_published_flat_amount(
    reference: ReferenceData, year: dict[str, Any], size: int
) -> None:
    on = _valid_from(year)
    step = reference.skos.basic_needs(on, size + 1) - reference.skos.basic_needs(on, size)
    assert step == Decimal(year["additional_person_chf"])


@pytest.mark.parametrize("size", range(1, 21))
@pytest.mark.parametrize("on", [_valid_from(y) for y in YEARS], ids=str)
def test_basic_needs_are_whole_francs_with_two_decimals(
    reference: ReferenceData, on: date, size: int
) -> None:
    amount = reference.skos.basic_needs(on, size)

    assert isinstance(amount, Decimal)
    assert amount.as_tuple().exponent == -2
    assert amount == amount.to_integral_value()
    assert amount == expected_basic_needs(on, size)


@pytest.mark.parametrize(
    ("factor", "expected"),
    [("1.5005", "1501.00"), ("1.5015", "1502.00"), ("1.50049", "1500.00")],
)
def test_half_francs_round_up(factor: str, expected: str) -> None:
    table = SkosTable(
        rates=(SkosRate(date(2025, 1, 1), Decimal("1000.00"), True, "test"),),
        factors={1: Decimal(factor)}, additional_person_step=Decimal("0.2"),
        rounding_increment=Decimal("1.00"),
    )
    assert table.basic_needs(date(2025, 6, 1), 1) == Decimal(expected)
