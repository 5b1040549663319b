"""Names, addresses and account holders that print as nothing are refused at the CLI, naming
the field: Hangul fillers are letters to Unicode but show nothing; stacked combining marks hide
the letters they sit on."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Cli
from tests.cli.test_cli import APPLICANT, CASE, open_assess_grant


def _with(**changed: str) -> list[str]:
    args = list(APPLICANT)
    for option, value in changed.items():
        args[args.index(f"--{option.replace('_', '-')}") + 1] = value
    return args


@pytest.mark.parametrize(("changed", "field"), [
    ({"given_name": "\u115f"}, "applicant.given_name"),
    ({"family_name": "\uffa0"}, "applicant.family_name"),
    ({"street": "\u3164 1"}, "applicant.street"),
    ({"town": "\u1160"}, "applicant.town"),
    ({"family_name": "Q" + "\u0301\u0300\u0302\u0303" * 2}, "applicant.family_name"),
])
def test_an_invisible_or_stacked_name_is_refused_naming_the_field(
    cli: Cli, changed: dict[str, str], field: str
) -> None:
    opened = cli("case", "open", "--municipality", "2581", "--household-size", "1",
                 *_with(**changed), "--case-id", CASE)
    listed = cli("--json", "case", "list")

    assert opened.code == 1
    assert f"{field}:" in opened.err
    assert listed.code == 0 and CASE not in listed.out


def test_an_invisible_account_holder_is_refused_naming_the_field(cli: Cli) -> None:
    open_assess_grant(cli)

    recorded = cli("payments", "account", CASE, "--iban", "CH93 0076 2011 6238 5295 7",
                   "--holder", "\u3164")

    assert recorded.code == 1
    assert "holder: contains control or invisible characters (U+3164)" in recorded.err
