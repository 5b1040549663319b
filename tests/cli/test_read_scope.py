"""CLI reads are scoped like writes and logged like the API's: a caseworker of another region
gets the answer of a missing case and leaves no access-log entry; an allowed read is in the
access log (`audit access --person`) before anything is shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.cli.test_cli import CASE, open_assess_grant

MISSING = "0b7e4a52-9d3c-4c1e-8f00-5a6b7c8d9e0f"
BBL = "cw-bbl-01:caseworker:so-bbl"
OLTEN = "cw-olten-01:caseworker:so-olten"
ADMIN = "admin:administrator:so-canton"
AUDITOR = "fk.meier:auditor:so-finanzkontrolle"
PERSONAL = ["Zora", "Quellmatt", "756.9217.0769.85", "1984-05-06", "Aarauerstrasse"]

READS = [
    ("case", "show", "{id}"),
    ("case", "show", "{id}", "--as-of", "2099-01-01"),
    ("case", "history", "{id}"),
    ("audit", "state", "{id}", "--as-of", "2099-01-01"),
    ("audit", "budget", "{id}", "--month", "2026-01", "--as-known-at", "2099-01-01"),
    ("audit", "diff", "{id}", "--month", "2026-01", "--known-at", "2026-01-01",
     "--compared-to", "2099-01-01"),
    ("audit", "case", "{id}", "--as-of", "2099-01-01", "--no-verify", "--out", "{out}"),
    ("payments", "orders", "{id}"),
]


def _read(cli: Cli, actor: str, args: tuple[str, ...], case_id: str, tmp_path: Path) -> object:
    out = str(tmp_path / f"report-{case_id}.html")
    return cli("--actor", actor, *(a.format(id=case_id, out=out) for a in args))


@pytest.mark.parametrize("args", READS, ids=[" ".join(r[:2]) for r in READS])
def test_a_case_of_another_region_reads_like_a_missing_case_and_is_not_logged(
    cli: Cli, tmp_path: Path, args: tuple[str, ...]
) -> None:
    open_assess_grant(cli)

    other = _read(cli, BBL, args, CASE, tmp_path)
    missing = _read(cli, BBL, args, MISSING, tmp_path)

    assert other.code == missing.code == 1  # type: ignore[attr-defined]
    assert other.out == missing.out == ""  # type: ignore[attr-defined]
    assert other.err.replace(CASE, MISSING) == missing.err  # type: ignore[attr-defined]
    assert "not found" in other.err  # type: ignore[attr-defined]
    assert not (tmp_path / f"report-{CASE}.html").exists()
    assert not (tmp_path / "access-log.db").exists()


def test_an_allowed_read_is_in_the_access_log_before_it_is_shown(cli: Cli) -> None:
    open_assess_grant(cli)

    shown = cli("--json", "--actor", OLTEN, "case", "show", CASE)
    person = shown.json()["applicant"]["person_id"]  # type: ignore[index]
    refused = cli("--actor", BBL, "case", "show", CASE)
    logged = cli("--json", "--actor", AUDITOR, "audit", "access", "--person", person)

    assert shown.code == 0 and refused.code == 1
    entries = logged.json()["entries"]  # type: ignore[index]
    assert [(e["consumer"], e["scope"], e["case_id"], e["endpoint"]) for e in entries] == [
        ("cli:cw-olten-01", "caseworker:so-olten", CASE, "nervenbahn case show")]
    assert {"given_name", "family_name", "ahvn13", "birth_date", "street"} <= set(
        entries[0]["fields"])


def test_every_case_read_is_logged_under_its_command(cli: Cli, tmp_path: Path) -> None:
    open_assess_grant(cli)
    person = cli("--json", "case", "show", CASE).json()["applicant"]["person_id"]  # type: ignore[index]

    codes = [_read(cli, ADMIN, args, CASE, tmp_path).code  # type: ignore[attr-defined]
             for args in READS[1:]]
    entries = cli("--json", "--actor", AUDITOR, "audit", "access", "--person",
                  person).json()["entries"]  # type: ignore[index]

    assert codes == [0] * len(READS[1:])
    assert [e["endpoint"] for e in entries] == [
        "nervenbahn case show", "nervenbahn case show --as-of", "nervenbahn case history",
        "nervenbahn audit state", "nervenbahn audit budget", "nervenbahn audit diff",
        "nervenbahn audit case", "nervenbahn payments orders"]
    assert {e["consumer"] for e in entries[1:]} == {"cli:admin"}


def test_a_read_that_cannot_be_logged_shows_nothing(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_assess_grant(cli)
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("NERVENBAHN_ACCESS_LOG", str(tmp_path / "not-a-folder" / "log.db"))

    shown = cli("case", "show", CASE)

    assert shown.code == 3 and shown.out == ""
    assert "NERVENBAHN_ACCESS_LOG" in shown.err and "not shown" in shown.err
    for value in PERSONAL:
        assert value not in shown.err


def test_auditors_read_canton_wide_without_personal_data_and_record_nothing(cli: Cli) -> None:
    open_assess_grant(cli)

    state = cli("--actor", AUDITOR, "audit", "state", CASE, "--as-of", "2099-01-01")
    history = cli("--actor", AUDITOR, "case", "history", CASE)
    shown = cli("--actor", AUDITOR, "case", "show", CASE)
    review = cli("--actor", AUDITOR, "case", "review", CASE, "--outcome", "continue")

    assert state.code == 0 and history.code == 0
    assert shown.code == 1 and "auditor" in shown.err and shown.out == ""
    assert review.code == 1 and "actor.role" in review.err


def test_lists_and_region_figures_keep_to_the_actors_region(cli: Cli) -> None:
    open_assess_grant(cli)
    assert cli("projections", "rebuild", "region").code == 0

    own = cli("--json", "--actor", OLTEN, "case", "list").json()
    other = cli("--json", "--actor", BBL, "case", "list").json()
    asked = cli("--actor", BBL, "case", "list", "--region", "so-olten")
    worklist = cli("--actor", BBL, "region", "worklist", "so-olten")
    caseload = cli("--actor", BBL, "region", "caseload", "so-olten")
    canton = cli("--json", "--actor", ADMIN, "region", "caseload", "so-olten")

    assert [row["case_id"] for row in own] == [CASE]  # type: ignore[attr-defined]
    assert other == []
    for refused in (asked, worklist, caseload):
        assert refused.code == 1 and "so-bbl may not read the cases of so-olten" in refused.err
    assert canton.json() == {"supported": 1}


@pytest.mark.parametrize("command", [("audit", "access", "--case", CASE),
                                     ("audit", "access-purge")])
def test_caseworkers_do_not_read_the_access_log(cli: Cli, command: tuple[str, ...]) -> None:
    open_assess_grant(cli)
    assert cli("case", "show", CASE).code == 0

    refused = cli("--actor", OLTEN, *command)
    allowed = cli("--actor", ADMIN, *command)

    assert refused.code == 1 and refused.out == "" and "actor.role" in refused.err
    assert allowed.code == 0, allowed.err
