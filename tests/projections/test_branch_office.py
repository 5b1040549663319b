"""The branch office's read model: only its municipalities, sealed personal data."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.application.cases import CaseService
from domain.reference import load_reference_data
from nervenbahn.container import build_service, close_service
from nervenbahn.synthetic import synthetic_history
from projections.branch_office import BranchOfficeProjection, office_case, office_cases
from projections.framework import open_projection_store, rebuild
from tests.bus.pipeline import command, store_settings

ALL_BFS = sorted(load_reference_data().municipalities)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CaseService, Path]]:
    """A store with 150 synthetic households and the branch-office read model built from it."""
    folder = tmp_path_factory.mktemp("office")
    import base64
    import secrets

    key = base64.b64encode(secrets.token_bytes(32)).decode()
    service = build_service(store_settings(folder, key))
    lines = [json.dumps(r) for r in synthetic_history(load_reference_data(), 150, 11)]
    service.import_records(lines)
    path = folder / "office.db"
    rebuild(BranchOfficeProjection(), service, path)
    yield service, path
    close_service(service)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    scope=st.sets(st.sampled_from(ALL_BFS), max_size=12),
    phase=st.sampled_from([None, "intake", "assessed", "supported", "refused", "closed"]),
    offset=st.integers(0, 40),
)
def test_an_office_never_sees_a_case_outside_its_municipalities(
    seeded: tuple[CaseService, Path], scope: set[int], phase: str | None, offset: int
) -> None:
    _, path = seeded
    with sqlite3.connect(path) as db:
        listed = office_cases(db, scope, phase=phase, offset=offset)
        some = db.execute("SELECT case_id, municipality_bfs FROM office_cases LIMIT 30").fetchall()
        single = {case_id: office_case(db, scope, case_id) for case_id, _ in some}

    assert all(case.municipality_bfs in scope for case in listed)
    visible = {case_id for case_id, case in single.items() if case is not None}
    assert visible == {case_id for case_id, bfs in some if bfs in scope}


def test_a_handover_moves_the_case_to_the_other_offices_view(
    tmp_path: Path, master_key: str
) -> None:
    service = build_service(store_settings(tmp_path, master_key))
    person = {
        "given_name": "Ida",
        "family_name": "Wanderer",
        "ahvn13": "756.9217.0769.85",
        "birth_date": "1970-01-01",
        "street": "Weg 1",
        "postal_code": "4600",
        "town": "Olten",
    }
    case_id = str(
        service.execute(
            command("open_case", municipality_bfs=2581, household_size=1, applicant=person)
        ).case_id
    )
    service.execute(command("hand_over_case", case_id=case_id, to_municipality_bfs=2601))
    path = tmp_path / "office.db"
    rebuild(BranchOfficeProjection(), service, path)

    with sqlite3.connect(path) as db:
        olten, solothurn = office_case(db, {2581}, case_id), office_case(db, {2601}, case_id)

    assert olten is None
    assert solothurn is not None and solothurn.social_region == "so-solothurn"


def test_the_read_model_keeps_personal_data_sealed_and_erasure_reaches_it(
    tmp_path: Path, master_key: str
) -> None:
    service = build_service(store_settings(tmp_path, master_key))
    person = {
        "given_name": "Qwertzuiop",
        "family_name": "Asdfghjkl",
        "ahvn13": "756.9217.0769.85",
        "birth_date": "1970-01-01",
        "street": "Weg 1",
        "postal_code": "4600",
        "town": "Olten",
    }
    case_id = str(
        service.execute(
            command("open_case", municipality_bfs=2581, household_size=1, applicant=person)
        ).case_id
    )
    path = tmp_path / "office.db"
    rebuild(BranchOfficeProjection(), service, path)
    with sqlite3.connect(path) as db:
        case = office_case(db, {2581}, case_id)
    assert case is not None

    opened = service.vault.decrypt(case.applicant_sealed)
    assert b"Qwertzuiop" not in path.read_bytes()
    assert opened.to_plain()["family_name"] == "Asdfghjkl"
    service.erase_person(opened.person_id)
    assert service.vault.decrypt(case.applicant_sealed).to_plain()["family_name"] == "[erased]"


def test_a_read_model_from_before_migration_2_lists_pages_from_the_covering_index(
    seeded: tuple[CaseService, Path], tmp_path: Path
) -> None:
    """Migration 2 replaces the municipality index by one that holds what a page is ordered
    by: a read model built before it is migrated when opened, its pages are still the office's
    cases newest first, cut where asked, and the page is chosen from the index alone."""
    path = _as_left_by(1, seeded[1], tmp_path, "DROP INDEX office_cases_listed; "
                       "DROP INDEX office_cases_opened; CREATE INDEX "
                       "office_cases_by_municipality ON office_cases (municipality_bfs);")

    open_projection_store(BranchOfficeProjection(), path).close()  # migration 2

    with sqlite3.connect(path) as db:
        listed = db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        indexes = {row[0] for row in listed}
        assert "office_cases_listed" in indexes and "office_cases_by_municipality" not in indexes
        rows = db.execute("SELECT case_id, municipality_bfs, phase, opened_on FROM office_cases")
        every = sorted(rows.fetchall(), key=lambda row: row[0])
        every.sort(key=lambda row: row[3], reverse=True)  # newest first, then by case id
        scope = set(ALL_BFS[::2])
        for phase in (None, "supported", "closed"):
            expected = [r[0] for r in every if r[1] in scope and phase in (None, r[2])]
            assert len(expected) > 12, phase  # more than a page
            for offset in (0, 7, len(expected) - 3):
                page = office_cases(db, scope, phase=phase, limit=10, offset=offset)
                assert [case.case_id for case in page] == expected[offset : offset + 10]
        plan = " ".join(row[3] for row in db.execute(
            "EXPLAIN QUERY PLAN SELECT case_id FROM office_cases WHERE municipality_bfs IN (1, 2) "
            "AND phase = 'closed' ORDER BY opened_on DESC, case_id LIMIT 5"))
    assert "COVERING INDEX office_cases_listed" in plan


def test_a_page_of_several_municipalities_is_the_merge_of_their_first_cases(
    seeded: tuple[CaseService, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 3 orders each municipality's cases as a page lists them: a read model from
    before it is migrated when opened; a page of several municipalities is then merged from
    each one's first cases (every municipality an index range of its own), and a page deeper
    than the merge is for comes from all of the office's cases at once; both list exactly the
    office's cases newest first, then by case id."""
    path = _as_left_by(2, seeded[1], tmp_path, "DROP INDEX office_cases_opened; "
                       "DROP INDEX office_cases_listed; CREATE INDEX office_cases_listed "
                       "ON office_cases (municipality_bfs, phase, opened_on, case_id);")

    open_projection_store(BranchOfficeProjection(), path).close()  # migration 3
    monkeypatch.setattr("projections.branch_office._MERGED_UP_TO", 12)  # both ways, small data

    with sqlite3.connect(path) as db:
        every = sorted(db.execute(
            "SELECT case_id, municipality_bfs, phase, opened_on FROM office_cases"
        ).fetchall())
        every.sort(key=lambda row: row[3], reverse=True)  # newest first, then by case id
        # The three municipalities with the most cases: each holds much of every page.
        scope = {bfs for bfs, _ in Counter(r[1] for r in every).most_common(3)}
        common = Counter(r[2] for r in every if r[1] in scope).most_common(1)[0][0]
        pages = {None: ((0, 5), (3, 6), (5, 7), (8, 5)), common: ((0, 3), (2, 3), (3, 4))}
        for phase, cuts in pages.items():
            expected = [r[0] for r in every if r[1] in scope and phase in (None, r[2])]
            assert len(expected) > 7, phase
            for offset, limit in (*cuts, (len(expected) - 3, 10)):
                page = office_cases(db, scope, phase=phase, limit=limit, offset=offset)
                assert [case.case_id for case in page] == expected[offset : offset + limit]
        assert len([r for r in every if r[1] in scope]) > 12  # deeper than the merge goes
        merged = " ".join(row[3] for row in db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM (SELECT case_id, opened_on FROM office_cases "
            "WHERE municipality_bfs = 1 ORDER BY opened_on DESC, case_id LIMIT 5)"))
    assert "COVERING INDEX office_cases_opened" in merged
    assert "TEMP B-TREE" not in merged


def test_a_merged_page_reaches_deep_into_the_municipality_that_holds_it(
    tmp_path: Path,
) -> None:
    """One municipality holds every case of the page: the merge must take that many of its
    cases (offset + limit), not a page's worth of each."""
    path = tmp_path / "office.db"
    open_projection_store(BranchOfficeProjection(), path).close()
    with sqlite3.connect(path) as db:
        for n in range(20):  # 2601's cases all newer than 2581's; two share a day
            bfs, day = (2601, f"2026-02-{n + 1:02d}") if n < 10 else (2581, f"2025-01-{n:02d}")
            db.execute(
                "INSERT INTO office_cases VALUES (?, ?, 'so-olten', 'intake', 1, ?, NULL, NULL, "
                "'p', '{}', 1)", (f"case-{n:02d}", bfs, "2026-02-01" if n == 1 else day))
        newest_first = [f"case-{n:02d}" for n in (9, 8, 7, 6, 5, 4, 3, 2, 0, 1)]
        newest_first += [f"case-{n:02d}" for n in range(19, 9, -1)]

        for offset, limit in ((0, 5), (5, 5), (3, 9), (8, 4), (12, 8)):
            page = office_cases(db, {2581, 2601}, limit=limit, offset=offset)
            assert [case.case_id for case in page] == newest_first[offset : offset + limit]
        named_twice = office_cases(db, [2601, 2581, 2601], limit=12)  # a caller's list
        assert [case.case_id for case in named_twice] == newest_first[:12]


def _as_left_by(migration: int, built: Path, folder: Path, script: str) -> Path:
    """A copy of the read model at `built`, turned back by `script` into what `migration`
    left (its schema version too)."""
    path = folder / "office.db"
    with sqlite3.connect(built) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
        copy.executescript(f"{script} UPDATE schema_versions SET version = {migration} "
                           "WHERE component = 'read_model_branch_office';")
    return path
