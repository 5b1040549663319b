"""Scope enforcement: an office sees its municipalities' cases and nothing else, whatever it
asks; anything out of scope answers byte for byte like something that does not exist."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import get_args
from uuid import uuid4

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain.reference import load_branch_offices, load_reference_data
from nervenbahn.api import create_app
from nervenbahn.api.models import Phase
from nervenbahn.container import build_service, close_service
from tests.api.conftest import AppOn, Keys, ReadModels, build_read_models, make_context
from tests.bus.pipeline import command, store_settings

OFFICES = load_branch_offices()
OFFICE_IDS = sorted(OFFICES)
REGION_IDS = sorted(load_reference_data().regions)
NOT_AN_OFFICE = "akso-atlantis"


def office_of(bfs: int) -> str:
    """The branch office that serves a municipality."""
    return next(office.id for office in OFFICES.values() if bfs in office.municipalities)


def all_cases(models: ReadModels) -> dict[str, int]:
    """Every case of the read model and its municipality."""
    with sqlite3.connect(models.branch_office_db) as db:
        return dict(db.execute("SELECT case_id, municipality_bfs FROM office_cases"))


def same_answer(a: httpx.Response, b: httpx.Response) -> bool:
    """Status, content type and body identical, byte for byte."""
    return (a.status_code, a.headers["content-type"], a.content) == (
        b.status_code, b.headers["content-type"], b.content
    )


@pytest.fixture
def nowhere(keys: Keys, tmp_path: Path, seeded: ReadModels) -> Iterator[TestClient]:
    """The API where no branch office, social region or case exists: every office or region
    path is a genuinely missing resource there (asked with the key of that very office)."""
    context = make_context(seeded, keys, tmp_path / "nowhere")
    reference = dataclasses.replace(context.reference, regions={})
    nothing = dataclasses.replace(context, branch_offices={}, reference=reference)
    with TestClient(create_app(nothing), raise_server_exceptions=False) as client:
        yield client
    context.close()


@pytest.fixture
def empty(app_on: AppOn, tmp_path: Path,
          master_key: str) -> TestClient:
    """The API on read models without any case (the offices and regions exist)."""
    service = build_service(store_settings(tmp_path / "empty", master_key))
    client = app_on(build_read_models(service, tmp_path / "empty"))
    close_service(service)
    return client


lists = st.fixed_dictionaries(
    {},
    optional={
        "phase": st.sampled_from(get_args(Phase)),
        "limit": st.integers(1, 500),
        "offset": st.integers(0, 200),
    },
)
details = st.tuples(st.booleans(), st.integers(0, 10_000))   # (one of its own?, which)
queries = st.one_of(st.tuples(st.just("list"), lists), st.tuples(st.just("detail"), details))


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key_office=st.sampled_from(OFFICE_IDS),
    path_office=st.one_of(st.none(), st.sampled_from([*OFFICE_IDS, NOT_AN_OFFICE])),
    query=queries,
)
def test_no_query_by_an_office_returns_a_case_outside_its_municipalities(
    client: TestClient, empty: TestClient, nowhere: TestClient, keys: Keys,
    seeded: ReadModels, key_office: str, path_office: str | None,
    query: tuple[str, object],
) -> None:
    cases = all_cases(seeded)
    office = path_office or key_office               # mostly its own path, often another
    mine = OFFICES[key_office].municipalities
    kind, arg = query
    if isinstance(arg, dict):
        path, params = f"/v1/branch-offices/{office}/cases", arg
    else:
        own, n = arg
        pool = sorted(c for c, bfs in cases.items() if bfs in mine) if own else []
        pool = pool or [*sorted(cases), str(uuid4())]
        path, params = f"/v1/branch-offices/{office}/cases/{pool[n % len(pool)]}", {}

    answer = client.get(path, params=params, headers=keys.of(f"branch_office:{key_office}"))

    event(f"{kind} {answer.status_code}")
    if answer.status_code == 200:
        body = answer.json()
        shown = body["cases"] if kind == "list" else [body]
        assert office == key_office
        assert all(case["municipality_bfs"] in mine for case in shown)
        assert all(cases[case["case_id"]] in mine for case in shown)
        return
    assert answer.status_code == 404
    if office != key_office:                         # another office's path (or no office)
        own = keys.of(f"branch_office:{office}") if office in OFFICES else keys.of(
            f"branch_office:{key_office}")
        assert same_answer(answer, nowhere.get(path, params=params, headers=own))
    else:                                            # a case outside its municipalities
        assert kind == "detail"
        assert cases.get(path.rsplit("/", 1)[1]) not in mine
        assert same_answer(answer, empty.get(path, headers=keys.of(f"branch_office:{office}")))


def test_each_case_is_listed_and_readable_by_its_own_office_only(
    client: TestClient, keys: Keys, seeded: ReadModels
) -> None:
    cases = all_cases(seeded)
    listed: dict[str, set[str]] = {}
    for office in OFFICE_IDS:
        answer = client.get(f"/v1/branch-offices/{office}/cases", params={"limit": 500},
                            headers=keys.of(f"branch_office:{office}"))
        listed[office] = {case["case_id"] for case in answer.json()["cases"]}

    assert set().union(*listed.values()) == set(cases)        # every case has one office
    assert sum(len(ids) for ids in listed.values()) == len(cases)   # and only one
    for office, ids in listed.items():
        assert all(cases[case_id] in OFFICES[office].municipalities for case_id in ids)
        other = OFFICE_IDS[(OFFICE_IDS.index(office) + 1) % len(OFFICE_IDS)]
        for case_id in ids:
            path = f"/v1/branch-offices/{office}/cases/{case_id}"
            assert client.get(path, headers=keys.of(f"branch_office:{office}")).status_code == 200
            assert client.get(path, headers=keys.of(f"branch_office:{other}")).status_code == 404


def _scoped_out(seeded: ReadModels) -> list[tuple[str, str, str]]:
    """(what, path, key scope) of requests out of the key's scope."""
    cases = all_cases(seeded)
    olten_case = next(c for c, bfs in cases.items() if office_of(bfs) == "akso-olten")
    return [
        ("another office's list", "/v1/branch-offices/akso-olten/cases",
         "branch_office:akso-solothurn"),
        ("another office's case", f"/v1/branch-offices/akso-olten/cases/{olten_case}",
         "branch_office:akso-solothurn"),
        ("a region key on an office", f"/v1/branch-offices/akso-olten/cases/{olten_case}",
         "region:so-olten"),
        ("the canton on an office", "/v1/branch-offices/akso-olten/cases", "canton"),
        ("an auditor on an office", "/v1/branch-offices/akso-olten/cases", "auditor"),
        ("another region's caseload", "/v1/regions/so-olten/caseload", "region:so-solothurn"),
        ("an office on a region", "/v1/regions/so-olten/worklist",
         "branch_office:akso-olten"),
        ("the canton on a region", "/v1/regions/so-olten/caseload", "canton"),
    ]


def test_out_of_scope_answers_byte_for_byte_like_a_missing_resource(
    client: TestClient, nowhere: TestClient, keys: Keys, seeded: ReadModels
) -> None:
    for what, path, scope in _scoped_out(seeded):
        owner = path.split("/")[3]
        own_key = keys.of(f"branch_office:{owner}" if "branch-offices" in path
                          else f"region:{owner}")
        missing = nowhere.get(path, headers=own_key)   # the office/region does not exist

        out_of_scope = client.get(path, headers=keys.of(scope))

        assert missing.status_code == 404, what
        assert same_answer(out_of_scope, missing), what


def test_a_case_outside_the_offices_municipalities_answers_like_an_unknown_case(
    client: TestClient, empty: TestClient, keys: Keys, seeded: ReadModels
) -> None:
    elsewhere = next(c for c, bfs in all_cases(seeded).items() if office_of(bfs) != "akso-olten")
    path = f"/v1/branch-offices/akso-olten/cases/{elsewhere}"
    olten = keys.of("branch_office:akso-olten")

    out_of_scope, unknown = client.get(path, headers=olten), empty.get(path, headers=olten)

    assert unknown.status_code == 404
    assert same_answer(out_of_scope, unknown)


def test_non_auditors_get_not_found_for_the_access_log(client: TestClient, keys: Keys) -> None:
    scopes = ["canton", "region:so-olten", "branch_office:akso-olten"]
    answers = [client.get("/v1/access-log", headers=keys.of(scope)) for scope in scopes]
    unknown_route = client.get("/v1/no-such-thing", headers=keys.of("auditor")).json()

    assert {a.status_code for a in answers} == {404}
    assert all(a.json() == unknown_route | {"instance": "/v1/access-log"} for a in answers)


def test_a_handover_moves_the_case_between_the_two_regions_views(
    tmp_path: Path, master_key: str, app_on: AppOn, keys: Keys
) -> None:
    service = build_service(store_settings(tmp_path, master_key))
    applicant = {"given_name": "Ida", "family_name": "Wanderer", "ahvn13": "756.9217.0769.85",
                 "birth_date": "1970-01-01", "street": "Weg 1", "postal_code": "4600",
                 "town": "Olten"}
    case_id = str(service.execute(command(
        "open_case", municipality_bfs=2581, household_size=1, applicant=applicant,
        application_date="2026-09-20",
    )).case_id)
    client = app_on(build_read_models(service, tmp_path))
    before = _views(client, keys, case_id)

    service.execute(command("hand_over_case", case_id=case_id, to_municipality_bfs=2601))
    build_read_models(service, tmp_path)           # rebuilt in place; the API reads the new one
    after = _views(client, keys, case_id)
    close_service(service)

    assert before == {"so-olten": (1, True), "so-solothurn": (0, False),
                      "akso-olten": True, "akso-solothurn": False}
    assert after == {"so-olten": (0, False), "so-solothurn": (1, True),
                     "akso-olten": False, "akso-solothurn": True}


def _views(client: TestClient, keys: Keys, case_id: str) -> dict[str, object]:
    """Per region: (caseload total, case on the work list); per office: case readable."""
    views: dict[str, object] = {}
    for region in ("so-olten", "so-solothurn"):
        key = keys.of(f"region:{region}")
        load = client.get(f"/v1/regions/{region}/caseload", headers=key).json()
        work = client.get(f"/v1/regions/{region}/worklist", params={"today": "2026-10-01"},
                          headers=key).json()
        views[region] = (load["total"], case_id in {item["case_id"] for item in work["items"]})
    for office in ("akso-olten", "akso-solothurn"):
        answer = client.get(f"/v1/branch-offices/{office}/cases/{case_id}",
                            headers=keys.of(f"branch_office:{office}"))
        views[office] = answer.status_code == 200
    return views
