"""The command line: tables by default, JSON on request, one-line errors and exit codes."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from domain.commands import swiss_today
from nervenbahn.accounts import UserStore
from nervenbahn.demo_web import DEMO_USERS
from tests.cli.conftest import Cli

CASE = "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
ADMINISTRATOR = "admin-so:administrator:so-canton"
"""Who may run `import`, a migration step (docs/import.md)."""
APPLICANT = [
    "--given-name", "Zora", "--family-name", "Quellmatt", "--ahvn13", "756.9217.0769.85",
    "--birth-date", "1984-05-06", "--street", "Aarauerstrasse 7", "--postal-code", "4600",
    "--town", "Olten",
]


def open_assess_grant(cli: Cli) -> None:
    assert cli("case", "open", "--municipality", "2581", "--household-size", "2",
               *APPLICANT, "--case-id", CASE).code == 0
    assert cli("case", "assess", CASE, "--need", "financial", "--employability",
               "employable").code == 0
    granted = cli("--json", "case", "grant", CASE, "--support-from",
                  _first_of_this_month(), "--housing", "1250", "--health-insurance",
                  "380.50", "--income", "0")
    assert granted.code == 0, granted.err
    assert granted.json()["events"] == ["SupportGranted"]


def _first_of_this_month() -> str:

    return swiss_today().replace(day=1).isoformat()


def test_case_lifecycle_shows_budget_and_personal_data(cli: Cli) -> None:
    open_assess_grant(cli)

    shown = cli("case", "show", CASE)

    assert shown.code == 0
    assert "Zora Quellmatt" in shown.out
    assert "supported" in shown.out
    view = cli("--json", "case", "show", CASE).json()
    assert isinstance(view, dict)
    lines = {line["code"]: line["amount"] for line in view["budget"]["lines"]}
    assert view["budget"]["total"] == str(
        sum(__import__("decimal").Decimal(a) for a in lines.values())
    )
    assert lines["housing"] == "1250.00"


def test_history_lists_recorded_time_and_effective_date_without_personal_data(cli: Cli) -> None:
    open_assess_grant(cli)

    entries = cli("--json", "case", "history", CASE).json()
    table = cli("case", "history", CASE)

    assert isinstance(entries, list)
    assert [e["event"] for e in entries] == ["CaseOpened", "AssessmentCompleted", "SupportGranted"]
    assert all(e["recorded_at"] and e["effective_date"] and not e["imported"] for e in entries)
    assert entries[2]["effective_date"] == _first_of_this_month()
    assert "Quellmatt" not in json.dumps(entries) and "Quellmatt" not in table.out
    assert "live" in table.out


def test_show_as_of_replays_only_what_was_recorded_by_then(cli: Cli) -> None:
    open_assess_grant(cli)
    entries = cli("--json", "case", "history", CASE).json()
    assert isinstance(entries, list)

    before_decision = cli("--json", "case", "show", CASE, "--as-of", entries[1]["recorded_at"])
    before_opening = cli("case", "show", CASE, "--as-of", "2000-01-01")

    assert before_decision.json()["phase"] == "assessed"  # type: ignore[index]
    assert before_decision.json()["version"] == 2  # type: ignore[index]
    assert before_opening.code == 1
    assert "not found as of 2000-01-01" in before_opening.err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["case", "grant", CASE, "--support-from", "2026-01-01", "--housing", "12.345",
          "--health-insurance", "1", "--income", "0"], 1, "housing"),
        (["case", "show", "not-a-uuid"], 1, "case_id"),
        (["case", "show", "00000000-0000-4000-8000-000000000000"], 1, "not found"),
        (["case", "close", CASE, "--reason", "bored"], 1, "reason"),
        (["case", "run", "open_case", "{not json"], 1, "not valid JSON"),
        (["case", "run", "no_such_command", "{}"], 1, "unknown command"),
    ],
)
def test_errors_are_one_line_and_a_non_zero_exit(
    cli: Cli, args: list[str], code: int, message: str
) -> None:
    result = cli(*args)

    error_lines = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert result.code == code
    assert len(error_lines) == 1 and message in error_lines[0]
    assert "Traceback" not in result.err + result.out


def test_a_forbidden_transition_names_the_rule_and_records_nothing(cli: Cli) -> None:
    assert cli("case", "open", "--municipality", "2581", "--household-size", "1",
               *APPLICANT, "--case-id", CASE).code == 0

    refused = cli("case", "grant", CASE, "--support-from", _first_of_this_month(),
                  "--housing", "1000", "--health-insurance", "300", "--income", "0")

    assert refused.code == 1
    assert "decision-requires-assessment" in refused.err
    assert len(cli("--json", "case", "history", CASE).json()) == 1  # type: ignore[arg-type]


def test_missing_actor_is_named(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NERVENBAHN_ACTOR")

    result = cli("case", "close", CASE, "--reason", "other")

    assert result.code == 1
    assert "actor" in result.err


def test_unsupported_store_url_exits_with_configuration_error(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NERVENBAHN_STORE", "mysql://somewhere/db")

    result = cli("case", "show", CASE)

    assert result.code == 3
    assert "NERVENBAHN_STORE" in result.err


def legacy_records(case_id: str) -> list[dict[str, Any]]:
    """Two records of one case from the previous system (2025, by a caseworker)."""
    actor = {"user_id": "legacy", "role": "caseworker", "organisation": "so-olten"}
    person = {"given_name": "Ida", "family_name": "Altdaten", "ahvn13": "7569217076985",
              "birth_date": "1970-01-01", "street": "Weg 1", "postal_code": "4600",
              "town": "Olten"}
    return [
        {"recorded_at": "2025-03-03T09:00:00+01:00", "command": "open_case",
         "data": {"case_id": case_id, "municipality_bfs": 2581, "household_size": 1,
                  "applicant": person, "application_date": "2025-03-01", "actor": actor,
                  "correlation_id": "0b8f7a52-4d3e-4a8e-9c1b-2f3e4d5c6b7a"}},
        {"recorded_at": "2025-03-10T10:30:00+01:00", "command": "complete_assessment",
         "data": {"case_id": case_id, "needs": ["financial"], "employability": "employable",
                  "assessment_date": "2025-03-10", "actor": actor,
                  "correlation_id": "0b8f7a52-4d3e-4a8e-9c1b-2f3e4d5c6b7b"}},
    ]


def test_import_keeps_original_times_and_marks_events_imported(cli: Cli, tmp_path: Path) -> None:
    records = legacy_records(CASE)
    path = tmp_path / "legacy.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")

    result = cli("--actor", ADMINISTRATOR, "--json", "import", str(path))
    entries = cli("--json", "case", "history", CASE).json()

    assert result.code == 0 and result.json() == {  # type: ignore[comparison-overlap]
        "records": 2, "events": 2, "cases": 1, "seconds": result.json()["seconds"],  # type: ignore[index]
        "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    assert isinstance(entries, list)
    assert [e["recorded_at"] for e in entries] == [
        "2025-03-03T09:00:00+01:00", "2025-03-10T10:30:00+01:00"
    ]
    assert all(e["imported"] for e in entries)


def test_a_bad_import_line_is_named_and_nothing_is_imported(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "legacy.jsonl"
    good = {"recorded_at": "2025-03-03T09:00:00+01:00", "command": "open_case", "data": {
        "case_id": CASE, "municipality_bfs": 2581, "household_size": 1,
        "applicant": {"given_name": "Ida", "family_name": "Altdaten", "ahvn13": "7569217076985",
                      "birth_date": "1970-01-01", "street": "Weg 1", "postal_code": "4600",
                      "town": "Olten"},
        "actor": {"user_id": "legacy", "role": "caseworker", "organisation": "so-olten"},
        "correlation_id": "0b8f7a52-4d3e-4a8e-9c1b-2f3e4d5c6b7a"}}
    bad = {"recorded_at": "2025-03-04T09:00:00+01:00", "command": "close_case",
           "data": {"case_id": CASE, "reason": "bored", "actor": good["data"]["actor"],  # type: ignore[index]
                    "correlation_id": "0b8f7a52-4d3e-4a8e-9c1b-2f3e4d5c6b7c"}}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")

    result = cli("--actor", ADMINISTRATOR, "import", str(path))

    assert result.code == 1
    assert "line 2" in result.err and "reason" in result.err
    assert cli("case", "show", CASE).code == 1


def test_erased_person_reads_as_erased_and_history_still_replays(cli: Cli) -> None:
    open_assess_grant(cli)
    view = cli("--json", "case", "show", CASE).json()
    assert isinstance(view, dict)
    person_id = view["applicant"]["person_id"]

    erased = cli("person", "erase", person_id, "--yes")
    after = cli("--json", "case", "show", CASE).json()

    assert erased.code == 0 and "destroyed" in erased.out
    assert isinstance(after, dict)
    assert after["applicant"]["family_name"] == "[erased]"
    assert after["phase"] == "supported" and after["version"] == 3


def test_run_executes_a_command_given_as_json(cli: Cli) -> None:
    open_assess_grant(cli)

    result = cli("--json", "case", "run", "complete_review",
                 json.dumps({"case_id": CASE, "outcome": "continue"}))

    assert result.code == 0, result.err
    assert result.json()["events"] == ["ReviewCompleted"]  # type: ignore[index]


def test_demo_seeds_every_region_and_leaves_a_queryable_store(cli: Cli, tmp_path: Path) -> None:
    demo = cli("demo", "--households", "150", "--reset")
    listed = cli("--json", "--actor", "admin:administrator:so-canton", "case", "list",
                 "--limit", "1000")

    assert demo.code == 0, demo.err
    assert "canton" in demo.out
    out = " ".join(demo.out.split())  # rich wraps long lines
    assert "Benefit applications (synthetic)" in out
    assert re.search(r"Benefits: [1-9]\d* commands recorded \([1-9]\d* applications", out), out
    assert isinstance(listed, type(listed)) and listed.code == 0
    rows = listed.json()
    assert isinstance(rows, list) and len(rows) == 150
    assert len({row["social_region"] for row in rows}) == 13
    assert {"intake", "assessed", "supported", "refused", "closed"} <= {r["phase"] for r in rows}
    _signs_in_with_the_printed_accounts(demo.out, tmp_path)
    second = cli("demo", "--households", "10")
    assert second.code == 1 and "--reset" in second.err


def _signs_in_with_the_printed_accounts(out: str, folder: Path) -> None:
    """The demo prints the web app's URL and one account per role whose password works."""
    assert "http://127.0.0.1:8000/" in out
    store = UserStore(folder / "web-users.db")
    try:
        for username, role, organisation, _name in DEMO_USERS:
            line = next(line for line in out.splitlines() if f" {username} " in line)
            password = line.split()[-2] if line.rstrip().endswith("│") else line.split()[-1]
            assert role in line and organisation in line
            assert store.sign_in(username, password, now=datetime.now(UTC)).outcome == "ok"
    finally:
        store.close()


def test_demo_pays_once_proposes_from_the_register_and_verifies_its_chains(
    cli: Cli, tmp_path: Path
) -> None:
    demo = cli("demo", "--households", "60", "--reset")
    runs = cli("--json", "payments", "runs")
    verified = cli("--json", "audit", "verify")

    assert demo.code == 0, demo.err
    out = " ".join(demo.out.split())  # rich wraps long lines
    assert "handover proposal on" in out and "closure proposal (death)" in out
    assert "The same month again: payment run" in out and "nothing recorded" in out
    assert "prepared by pay.office, approved by pay.control (four-eyes)" in out
    assert "pain001-" in out and "hash chains intact" in out
    assert "snapshots recomputed from their events, 0 differ" in out
    assert "a SIMULATION of AKSO's software" in out and "recorded back by the fund" in out
    assert "Backlog of benefit applications" in out
    report_path = Path(re.search(r"26-week trend: (\S+\.html)", out)[1])  # type: ignore[index]
    week = re.search(r"backlog-(\d{4}-W\d{2})\.html", report_path.name)[1]  # type: ignore[index]
    csv_rows = report_path.with_suffix(".csv").read_text().splitlines()
    assert report_path.exists() and any(r.startswith("canton,canton,") and f",{week}," in r
                                        for r in csv_rows), csv_rows[:3]
    assert runs.code == 0, runs.err
    assert isinstance(runs.json(), list) and len(runs.json()) == 1  # type: ignore[arg-type]
    [run] = runs.json()  # type: ignore[misc]
    assert (run["prepared_by"], run["approved_by"]) == ("pay.office", "pay.control")
    assert verified.code == 0, verified.err
    # The demo API's reads are in the installation's access log, which the demo's checkpoint
    # and every later one sign: no false alarm, and tampering with it afterwards is reported.
    report = verified.json()
    assert isinstance(report, dict)
    assert report["access_log"]["records"] >= 1
    assert report["access_log"]["checkpoints_checked"] == 1
    assert cli("audit", "checkpoint").code == 0
    assert cli("audit", "verify").code == 0
    with sqlite3.connect(tmp_path / "access-log.db") as db:
        db.execute("DROP TRIGGER access_log_no_update")
        db.execute("UPDATE access_log SET consumer = 'someone-else' WHERE id = 1")
    tampered = cli("--json", "audit", "verify")
    report = tampered.json()
    assert tampered.code == 4 and isinstance(report, dict)
    assert [b["position"] for b in report["access_log"]["breaks"]] == [1]


def test_region_read_model_is_rebuilt_and_agrees_with_the_cases(cli: Cli) -> None:
    assert cli("demo", "--households", "120", "--reset", "--no-bus").code == 0
    rows = cli("--json", "case", "list", "--limit", "1000").json()
    assert isinstance(rows, list)

    rebuilt = cli("--json", "projections", "rebuild", "region")
    caseload = cli("--json", "region", "caseload", "so-olten").json()
    worklist = cli("--json", "region", "worklist", "so-olten", "--today", "2026-09-30")

    assert rebuilt.code == 0, rebuilt.err
    expected: dict[str, int] = {}
    for row in rows:
        if row["social_region"] == "so-olten":
            expected[row["phase"]] = expected.get(row["phase"], 0) + 1
    assert caseload == expected
    assert worklist.code == 0
    assert all(item["overdue"] == (item["due"] < "2026-09-30") for item in worklist.json())  # type: ignore[union-attr]


def test_querying_a_read_model_before_it_is_built_says_how_to_build_it(cli: Cli) -> None:
    result = cli("region", "caseload", "so-olten")

    assert result.code == 1
    assert "projections rebuild region" in result.err


def test_case_open_records_the_household_structure_and_refuses_an_unknown_code(
    cli: Cli,
) -> None:
    refused = cli("case", "open", "--municipality", "2581", "--household-size", "2",
                  "--household-structure", "flat_share", *APPLICANT, "--case-id", CASE)
    assert refused.code == 1
    assert "household_structure" in refused.err

    assert cli("case", "open", "--municipality", "2581", "--household-size", "2",
               "--household-structure", "single_parent", *APPLICANT,
               "--case-id", CASE).code == 0

    (opened,) = cli("--json", "case", "history", CASE).json()  # type: ignore[misc]
    assert opened["details"]["household_structure"] == "single_parent"
