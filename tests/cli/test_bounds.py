"""Absurd integers and dates on the command line — 2**63, years 0 and 9999, quarter 0000Q1 —
are refused in one line naming the parameter (exit 1 for values the command checks, 2 for
options typer checks), never exit 70."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Cli
from tests.cli.test_cli import CASE, open_assess_grant

BIG = str(2**63)
ADMIN = "admin:administrator:so-canton"

# (arguments, exit code, what the error names)
BAD = [
    (("case", "show", CASE, "--as-of", "9999-12-31"), 1, "as_of"),
    (("case", "show", CASE, "--as-of", "0001-01-01"), 1, "as_of"),
    (("case", "show", CASE, "--as-of", "9999-12-31T23:59:59+14:00"), 1, "as_of"),
    (("case", "list", "--limit", BIG), 2, "--limit"),
    (("case", "list", "--limit", "0"), 2, "--limit"),
    (("audit", "state", CASE, "--as-of", "9999-12-31"), 1, "as_of"),
    (("audit", "budget", CASE, "--month", "9999-12", "--as-known-at", "2026-06-30"), 1,
     "month"),
    (("audit", "budget", CASE, "--month", "0000-01", "--as-known-at", "2026-06-30"), 1,
     "month"),
    (("audit", "budget", CASE, "--month", "2026-03", "--as-known-at", "9999-12-31"), 1,
     "as_known_at"),
    (("audit", "diff", CASE, "--month", "2026-03", "--known-at", "9999-12-31",
      "--compared-to", "2026-06-30"), 1, "known_at"),
    (("audit", "diff", CASE, "--month", "2026-03", "--known-at", "2026-05-31",
      "--compared-to", "0001-01-01"), 1, "compared_to"),
    (("audit", "case", CASE, "--as-of", "9999-12-31", "--no-verify"), 1, "as_of"),
    (("region", "worklist", "so-olten", "--today", "9999-12-31"), 1, "today"),
    (("region", "worklist", "so-olten", "--today", "31.12.2026"), 1, "today"),
    (("report", "quarterly", "0000Q1"), 1, "quarter"),
    (("report", "quarterly", "9999Q4"), 1, "quarter"),
    (("payments", "run", "9999-12"), 1, "month"),
    (("payments", "run", "0000-01"), 1, "month"),
    (("payments", "run", "2026-01", "--execution-date", "9999-12-31"), 1, "execution_date"),
    (("case", "review", CASE, "--outcome", "continue", "--expected-version", BIG), 1,
     "expected_version"),
    (("case", "review", CASE, "--outcome", "continue", "--date", "9999-12-31"), 1,
     "review_date"),
    (("case", "budget", CASE, "--effective", "9999-12-01", "--reason", "income_change",
      "--housing", "1", "--health-insurance", "1", "--income", "0", "--household-size", BIG),
     1, "household_size"),
    (("case", "handover", CASE, "--to-municipality", BIG), 1, "to_municipality_bfs"),
    (("case", "goal", CASE, "--category", "employment", "--title", "Find a job", "--due",
      "9999-12-31"), 1, "due_date"),
    (("demo", "--households", BIG, "--no-bus"), 2, "--households"),
    (("demo", "--seed", BIG, "--no-bus"), 2, "--seed"),
    (("relay", "run", "--batch-size", BIG), 2, "--batch-size"),
    (("serve", "--port", BIG), 2, "--port"),
    (("topics", "create", "--partitions", BIG), 2, "--partitions"),
]


@pytest.mark.parametrize(("args", "code", "name"), BAD, ids=[" ".join(b[0][:2]) + f" {b[2]}"
                                                             for b in BAD])
def test_an_absurd_parameter_is_refused_naming_it(
    cli: Cli, args: tuple[str, ...], code: int, name: str
) -> None:
    open_assess_grant(cli)
    assert cli("projections", "rebuild", "region").code == 0

    refused = cli("--actor", ADMIN, *args)

    assert refused.code == code, refused.err
    assert name in refused.err
    assert "Traceback" not in refused.err and "unexpected" not in refused.err
