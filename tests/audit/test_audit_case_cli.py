"""`nervenbahn audit state|budget|diff|case` on a real SQLite store holding the retroactive
case: the hand-computed table through the CLI, the report file, and clear errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from nervenbahn.cli import main
from tests.audit.test_report import Tables
from tests.domain.bitemporal_case import EXPECTED, MONTHS, record_story_in_sqlite

KNOWN_DAYS = {"30 April": "2026-04-30", "31 May": "2026-05-31", "30 June": "2026-06-30"}


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Outcome]


@pytest.fixture(scope="module")
def story_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], UUID]:
    """The retroactive case in a SQLite store of this module's own."""
    return record_story_in_sqlite(tmp_path_factory.mktemp("audit-cli"))


@pytest.fixture
def cli(
    story_store: tuple[dict[str, str], UUID],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    env, _ = story_store
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NERVENBAHN_LOG_FORMAT", "json")
    monkeypatch.setenv("NERVENBAHN_ACTOR", "fk.meier:auditor:so-finanzkontrolle")
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> Outcome:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


@pytest.mark.parametrize("known", list(KNOWN_DAYS))
def test_budget_as_known_at_through_the_cli_matches_the_hand_computed_table(
    cli: Cli, story_store: tuple[dict[str, str], UUID], known: str
) -> None:
    _, case_id = story_store
    amounts = []
    for month in MONTHS:
        outcome = cli("--json", "audit", "budget", str(case_id), "--month", f"{month:%Y-%m}",
                      "--as-known-at", KNOWN_DAYS[known])
        assert outcome.code == 0, outcome.err
        amounts.append(Decimal(outcome.json()["amount"]))
    assert amounts == EXPECTED[known]


def test_budget_answer_lists_segments_and_the_events_it_rests_on(
    cli: Cli, story_store: tuple[dict[str, str], UUID]
) -> None:
    _, case_id = story_store
    answer = cli("--json", "audit", "budget", str(case_id), "--month", "2026-03",
                 "--as-known-at", "2026-06-30").json()
    assert [(s["first_day"], s["last_day"], s["monthly_total"]) for s in answer["segments"]] == [
        ("2026-03-01", "2026-03-10", "2411.00"), ("2026-03-11", "2026-03-31", "1811.00"),
    ]
    assert [(r["version"], r["event"]) for r in answer["rests_on"]] == [
        (3, "SupportGranted"), (4, "BudgetChanged"), (5, "BudgetChanged"),
    ]
    readable = cli("audit", "budget", str(case_id), "--month", "2026-03",
                   "--as-known-at", "2026-06-30")
    assert readable.code == 0 and "CHF 2004.55" in readable.out


def test_diff_through_the_cli(cli: Cli, story_store: tuple[dict[str, str], UUID]) -> None:
    _, case_id = story_store
    outcome = cli("--json", "audit", "diff", str(case_id), "--month", "2026-03",
                  "--known-at", "2026-05-31", "--compared-to", "2026-06-30")
    assert outcome.code == 0, outcome.err
    diff = outcome.json()
    # 2004.55 − 2204.55 (see tests/domain/bitemporal_case.py): the rent, 1000 − 1200
    assert (diff["before"], diff["after"], diff["difference"]) == ("2204.55", "2004.55", "-200.00")
    assert {line["code"]: line["difference"] for line in diff["lines"]}["housing"] == "-200.00"
    assert [(e["event"], e["effective_date"], e["actor"]["user_id"])
            for e in diff["caused_by"]] == [("BudgetChanged", "2026-02-01", "anna.keller")]


def test_state_as_of_through_the_cli(cli: Cli, story_store: tuple[dict[str, str], UUID]) -> None:
    _, case_id = story_store
    then = cli("--json", "audit", "state", str(case_id), "--as-of", "2026-05-31").json()
    later = cli("--json", "audit", "state", str(case_id), "--as-of", "2026-06-30").json()
    assert (then["phase"], then["version"], then["closure"]) == ("supported", 4, None)
    assert (later["phase"], later["closure"]["closed_on"]) == ("closed", "2026-05-20")
    assert "applicant" not in then and "Muster" not in json.dumps(then)


def test_audit_case_writes_the_html_report(
    cli: Cli, story_store: tuple[dict[str, str], UUID], tmp_path: Path
) -> None:
    _, case_id = story_store
    path = tmp_path / "reports" / "case.html"
    outcome = cli("--json", "audit", "case", str(case_id), "--as-of", "2026-05-31",
                  "--out", str(path))
    assert outcome.code == 0, outcome.err
    summary = outcome.json()
    assert (summary["report"], summary["events"], summary["months"]) == (str(path), 6, 5)
    assert summary["verified"] is True  # the store's chains recomputed; no checkpoint yet
    tables = Tables(path.read_text(encoding="utf-8")).tables
    amounts = [Decimal(r[2].removeprefix("CHF ").replace("'", "")) for r in tables["months"][1:]]
    assert amounts == EXPECTED["31 May"][:5]
    assert len(tables["timeline"]) == 1 + 6
    assert tables["verification"][1][1] == "intakt"


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["budget", "{id}", "--month", "2026-3", "--as-known-at", "2026-06-30"], "month"),
        (["budget", "{id}", "--month", "2026-03", "--as-known-at", "30.6.2026"], "as_known_at"),
        (["budget", "not-a-uuid", "--month", "2026-03", "--as-known-at", "2026-06-30"],
         "case_id"),
        (["diff", "{id}", "--month", "2026-03", "--known-at", "2026-06-30",
          "--compared-to", "2026-05-31"], "compared_to"),
        (["state", "{id}", "--as-of", "yesterday"], "as_of"),
        (["case", "{id}", "--as-of", "2026-05-31", "--public-key", "nope"], "public_key"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(
    cli: Cli, story_store: tuple[dict[str, str], UUID], args: list[str], names: str
) -> None:
    _, case_id = story_store
    outcome = cli("audit", *(a.replace("{id}", str(case_id)) for a in args))
    assert outcome.code == 1
    line = outcome.err.strip().splitlines()[-1]
    assert line.startswith("error: ") and f"{names}:" in line


def test_an_unknown_case_or_a_time_before_it_is_not_found(
    cli: Cli, story_store: tuple[dict[str, str], UUID]
) -> None:
    _, case_id = story_store
    unknown = cli("audit", "state", str(uuid4()), "--as-of", "2026-05-31")
    before = cli("audit", "budget", str(case_id), "--month", "2026-01",
                 "--as-known-at", "2026-01-04")
    for outcome in (unknown, before):
        assert outcome.code == 1
        assert "not found" in outcome.err


def test_audit_case_writes_french_on_request_and_refuses_another_language(
    cli: Cli, story_store: tuple[dict[str, str], UUID], tmp_path: Path
) -> None:
    _, case_id = story_store
    path = tmp_path / "rapport.html"
    french = cli("audit", "case", str(case_id), "--as-of", "2026-05-31", "--out", str(path),
                 "--language", "fr")
    english = cli("audit", "case", str(case_id), "--as-of", "2026-05-31", "--out",
                  str(tmp_path / "report.html"), "--language", "en")
    assert french.code == 0, french.err
    html = path.read_text(encoding="utf-8")
    assert '<html lang="fr">' in html and "Rapport d&#x27;audit" in html
    assert "Paiements en regard du droit" in html  # the payments store was read (no runs)
    assert english.code == 2 and "--language" in english.err
    assert not (tmp_path / "report.html").exists()
