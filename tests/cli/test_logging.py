"""Logs: one structured line per command, with its outcome, and never any personal data."""

from __future__ import annotations

import json

from tests.cli.conftest import Cli
from tests.cli.test_cli import APPLICANT, CASE

PERSONAL = ["Zora", "Quellmatt", "756.9217.0769.85", "7569217076985", "1984-05-06",
            "Aarauerstrasse"]


def _log_lines(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_each_command_logs_case_command_outcome_and_duration(cli: Cli) -> None:
    opened = cli("case", "open", "--municipality", "2581", "--household-size", "1",
                 *APPLICANT, "--case-id", CASE)
    refused = cli("case", "close", CASE, "--reason", "other", "--date", "1999-01-01")

    accepted = [e for e in _log_lines(opened.err) if e["event"] == "command executed"]
    rejected = [e for e in _log_lines(refused.err) if e["event"] == "command rejected"]
    assert len(accepted) == 1 and len(rejected) == 1
    assert accepted[0]["case_id"] == CASE and accepted[0]["command"] == "open_case"
    assert accepted[0]["outcome"] == "recorded" and accepted[0]["duration_ms"] >= 0  # type: ignore[operator]
    assert rejected[0]["case_id"] == CASE and rejected[0]["outcome"] == "rejected"
    assert rejected[0]["rule"] == "effective-date-order"


def test_no_personal_data_appears_in_any_log_line(cli: Cli) -> None:
    bad_ahvn13 = [a if a != "756.9217.0769.85" else "756.9217.0769.86" for a in APPLICANT]
    invocations = (
        ["case", "open", "--municipality", "2581", "--household-size", "1", *APPLICANT,
         "--case-id", CASE],
        ["case", "assess", CASE, "--need", "financial", "--employability", "employable"],
        ["case", "show", CASE],
        ["case", "history", CASE],
        # invalid input carrying personal data must not leak it into the logs either
        ["case", "open", "--municipality", "2581", "--household-size", "1", *bad_ahvn13],
    )
    outcomes = [cli(*args) for args in invocations]
    logs = "\n".join(json.dumps(e) for o in outcomes for e in _log_lines(o.err))

    assert "command executed" in logs
    for value in PERSONAL:
        assert value not in logs, f"{value!r} leaked into the logs"


def test_demo_logs_carry_no_personal_data(cli: Cli) -> None:
    demo = cli("demo", "--households", "40", "--reset", "--no-bus")
    listed = cli("--json", "case", "list", "--limit", "1")
    case_id = listed.json()[0]["case_id"]  # type: ignore[index]
    view = cli("--json", "case", "show", case_id).json()
    applicant = view["applicant"]  # type: ignore[index]

    logs = "\n".join(json.dumps(e) for e in _log_lines(demo.err))
    assert "import finished" in logs
    for field in ("family_name", "ahvn13", "street", "birth_date"):
        assert applicant[field] not in logs

