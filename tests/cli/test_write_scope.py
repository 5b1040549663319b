"""CLI writes are scoped like reads: a command of a caseworker of another region on a case
answers exactly like a command on a case that does not exist — same message, same exit code —
before its version or any rule of the case is looked at, so it tells nothing about the case
(that it exists, its region, its version). A handover moves who may act: the receiving region
from the handover on, the handing-over region until then."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from tests.cli.conftest import Cli
from tests.cli.test_cli import CASE, _first_of_this_month, open_assess_grant

MISSING = "0b7e4a52-9d3c-4c1e-8f00-5a6b7c8d9e0f"
BBL = "cw-bbl-01:caseworker:so-bbl"
OLTEN = "cw-olten-01:caseworker:so-olten"
ADMIN = "admin:administrator:so-canton"
BIBERIST = "2513"
"""The lead municipality of so-bbl."""

WRITES = [
    ("case", "review", "{id}", "--outcome", "continue"),
    ("case", "close", "{id}", "--reason", "employment"),
    ("case", "reopen", "{id}", "--reason", "reapplication"),
    ("case", "budget", "{id}", "--reason", "rent_change", "--housing", "1300",
     "--health-insurance", "380.50", "--income", "0",
     "--effective", _first_of_this_month()),
    ("case", "handover", "{id}", "--to-municipality", BIBERIST),
    ("payments", "account", "{id}", "--iban", "CH93 0076 2011 6238 5295 7",
     "--holder", "Zora Quellmatt"),
    ("case", "run", "complete_review",
     '{{"case_id": "{id}", "outcome": "continue", "expected_version": 3}}'),
]


def _message(err: str) -> str:
    """What the user is told (stderr without the JSON log lines, which differ in their
    correlation id and timings)."""
    return "\n".join(line for line in err.splitlines() if not line.startswith("{"))


def _write(cli: Cli, actor: str, args: tuple[str, ...], case_id: str, *extra: str) -> object:
    return cli("--actor", actor, *(a.format(id=case_id) for a in args), *extra)


def _same_as_missing(cli: Cli, args: tuple[str, ...], *extra: str) -> None:
    other = _write(cli, BBL, args, CASE, *extra)
    missing = _write(cli, BBL, args, MISSING, *extra)
    assert other.code == missing.code == 1, other.err  # type: ignore[attr-defined]
    assert other.out == missing.out == ""  # type: ignore[attr-defined]
    told = _message(other.err)  # type: ignore[attr-defined]
    assert told.replace(CASE, MISSING) == _message(missing.err)  # type: ignore[attr-defined]
    assert "not found" in told and "so-olten" not in told and "responsible" not in told


@pytest.mark.parametrize("args", WRITES, ids=[" ".join(w[:3]) for w in WRITES])
def test_a_write_on_a_case_of_another_region_answers_like_a_missing_case(
    cli: Cli, args: tuple[str, ...]
) -> None:
    open_assess_grant(cli)
    before = cli("--json", "case", "history", CASE).json()

    _same_as_missing(cli, args)

    assert cli("--json", "case", "history", CASE).json() == before


@pytest.mark.parametrize("version", ["1", "3", "4", "99"])
def test_the_expected_version_tells_a_foreign_caseworker_nothing(cli: Cli, version: str) -> None:
    open_assess_grant(cli)  # the case is at version 3

    _same_as_missing(cli, WRITES[0], "--expected-version", version)


def test_the_region_of_the_case_still_acts_and_gets_its_version_conflict(cli: Cli) -> None:
    open_assess_grant(cli)

    stale = cli("--actor", OLTEN, "case", "review", CASE, "--outcome", "continue",
                "--expected-version", "2")
    reviewed = cli("--json", "--actor", OLTEN, "case", "review", CASE, "--outcome", "continue",
                   "--expected-version", "3")
    by_admin = cli("--json", "--actor", ADMIN, "case", "review", CASE, "--outcome", "continue")

    assert stale.code != 0 and "changed by someone else" in stale.err
    assert reviewed.code == 0 and reviewed.json()["version"] == 4  # type: ignore[index]
    assert by_admin.code == 0 and by_admin.json()["version"] == 5  # type: ignore[index]


def test_a_handover_moves_who_may_act_on_the_case(cli: Cli) -> None:
    open_assess_grant(cli)
    review = ("case", "review", "{id}", "--outcome", "continue")

    before_handover = _write(cli, BBL, review, CASE)
    handed = cli("--actor", OLTEN, "case", "handover", CASE, "--to-municipality", BIBERIST)
    by_receiver = _write(cli, BBL, review, CASE)
    account = _write(cli, BBL, WRITES[5], CASE)

    assert before_handover.code == 1 and "not found" in before_handover.err  # type: ignore[attr-defined]
    assert handed.code == 0, handed.err
    assert by_receiver.code == 0, by_receiver.err  # type: ignore[attr-defined]
    assert account.code == 0, account.err  # type: ignore[attr-defined]
    old_region = _write(cli, OLTEN, review, CASE)
    missing = _write(cli, OLTEN, review, MISSING)
    assert old_region.code == missing.code == 1  # type: ignore[attr-defined]
    assert (_message(old_region.err).replace(CASE, MISSING)  # type: ignore[attr-defined]
            == _message(missing.err))  # type: ignore[attr-defined]


def test_an_import_record_on_a_case_of_another_region_reads_like_a_missing_case(
    cli: Cli, tmp_path: Path
) -> None:
    open_assess_grant(cli)
    answers = []
    for case_id in (CASE, MISSING):
        record = {"recorded_at": datetime.now(UTC).isoformat(), "command": "complete_review",
                  "data": {"case_id": case_id, "outcome": "continue", "correlation_id":
                           str(uuid4()), "actor": {"user_id": "cw-bbl-01",
                                                   "role": "caseworker",
                                                   "organisation": "so-bbl"}}}
        path = tmp_path / f"{case_id}.jsonl"
        path.write_text(json.dumps(record) + "\n")
        answers.append(cli("--actor", "admin-so:administrator:so-canton", "import", str(path),
                           "--force", "--reason", "the store is in use"))

    assert answers[0].code == answers[1].code == 1
    told = _message(answers[0].err)
    assert "not found" in told and "so-olten" not in told
    assert told.replace(CASE, MISSING) == _message(answers[1].err)
