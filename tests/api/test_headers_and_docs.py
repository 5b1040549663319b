"""No answer is cached (`Cache-Control: no-store`), and the API's documentation pages load
nothing from another origin: the Swagger UI comes from the installed package."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from nervenbahn.api.problems import PROBLEM_TYPES
from tests.api.conftest import Keys, ReadModels

OFFICE = "/v1/branch-offices/akso-olten/cases"
OLTEN = "branch_office:akso-olten"
URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")
PAGES = ["/docs", "/docs/oauth2-redirect"]


def _olten_case(client: TestClient, keys: Keys) -> str:
    case_id: str = client.get(OFFICE, headers=keys.of(OLTEN)).json()["cases"][0]["case_id"]
    return case_id


def test_every_answer_says_no_store(client: TestClient, keys: Keys, seeded: ReadModels) -> None:
    case_id = _olten_case(client, keys)
    answers = {
        "personal data": client.get(f"{OFFICE}/{case_id}", headers=keys.of(OLTEN)),
        "a list": client.get(OFFICE, headers=keys.of(OLTEN)),
        "the access log": client.get("/v1/access-log", headers=keys.of("auditor")),
        "a problem": client.get(f"{OFFICE}?limit=0", headers=keys.of(OLTEN)),
        "no key": client.get(OFFICE),
        "the description": client.get("/openapi.json"),
        "the docs": client.get("/docs"),
    }

    assert answers["personal data"].json()["applicant"]["family_name"]
    for what, answer in answers.items():
        assert answer.headers.get("cache-control") == "no-store", what
        assert answer.headers.get("x-content-type-options") == "nosniff", what


@pytest.mark.parametrize("path", PAGES + [f"/problems/{slug}" for slug in PROBLEM_TYPES])
def test_no_page_refers_to_another_origin(client: TestClient, path: str) -> None:
    page = client.get(path)

    assert page.status_code == 200
    foreign = [url for url in URL.findall(page.text)
               if urlsplit(url if "//" not in url[:2] else f"http:{url}").hostname
               not in (None, "testserver")]
    assert foreign == []


def test_the_swagger_ui_loads_from_this_api(client: TestClient) -> None:
    page = client.get("/docs")
    assets = re.findall(r"""(?:src|href)=["']?([^"'\s>]+)""", page.text)

    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(assets)
    for asset in assets:
        loaded = client.get(asset)
        assert loaded.status_code == 200, asset
        assert len(loaded.content) > 1000, asset
    assert "'/openapi.json'" in page.text or '"/openapi.json"' in page.text
    assert '"validatorUrl": null' in page.text
