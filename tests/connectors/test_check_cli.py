"""`nervenbahn connectors check|describe|list` and `run --all` (issue 20, point 3): a connector's
configuration checked without running it, what it takes shown, and one connector's mistake
stopping only that connector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nervenbahn.cli import main
from nervenbahn.cli.connectors import EXIT_MISCONFIGURED

LIST_SOURCE = "tests.connectors.test_host:ListSource"
GOOD = f"""
[connectors.intake]
kind = "source"
class = "{LIST_SOURCE}"
description = "Records in the file"
[connectors.intake.options]
records = [{{ ref = "A", bfs = 2581 }}]
"""
MISSPELT = f"""
[connectors.misspelt]
kind = "source"
class = "{LIST_SOURCE}"
[connectors.misspelt.options]
recrods = []
"""
GONE = """
[connectors.gone]
kind = "sink"
class = "connectors.nowhere:OutboxSink"
"""
TYPO = """
[connectors.typo]
kind = "sorce"
class = "connectors.nowhere:Source"
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A connectors file and a store that does not exist yet (no key either)."""
    monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{tmp_path / 'store' / 'store.db'}")
    monkeypatch.setenv("NERVENBAHN_CONNECTORS", str(tmp_path / "connectors.toml"))
    monkeypatch.delenv("NERVENBAHN_MASTER_KEY", raising=False)
    monkeypatch.setenv("NERVENBAHN_LOG_FORMAT", "console")
    return tmp_path


def test_check_builds_each_connector_and_names_what_is_wrong_without_a_store(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "connectors.toml").write_text(GOOD + MISSPELT + GONE + TYPO)
    assert main(["connectors", "check"]) == 3
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("error  gone: connectors.gone.class: cannot import "
                               "'connectors.nowhere': ModuleNotFoundError")
    assert lines[1:] == [
        f"ok     intake (source, {LIST_SOURCE})",
        "error  misspelt: connectors.misspelt.options.records: required",
        "       connectors.misspelt.options.recrods: unknown option (declared: records)",
        "error  typo: connectors.typo.kind: must be 'source' or 'sink', not 'sorce'",
    ]
    assert main(["connectors", "check", "intake"]) == 0
    assert capsys.readouterr().out == f"ok     intake (source, {LIST_SOURCE})\n"
    assert not (folder / "store").exists()  # no store opened, no broker asked


def test_check_as_json_and_of_a_name_not_configured(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "connectors.toml").write_text(GOOD + MISSPELT)
    assert main(["--json", "connectors", "check", "misspelt"]) == 3
    (checked,) = json.loads(capsys.readouterr().out)["connectors"]
    assert checked["name"] == "misspelt" and checked["ok"] is False
    assert "connectors.misspelt.options.recrods: unknown option" in checked["error"]
    assert main(["connectors", "check", "nobody"]) == 3
    assert "connectors.nobody: not configured (configured: intake, misspelt)" in (
        capsys.readouterr().err
    )


def test_list_shows_a_class_that_does_not_import_as_an_error(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "240")  # the table's cells wrap at 80 (no terminal in CI)
    (folder / "connectors.toml").write_text(GOOD + GONE + TYPO)
    assert main(["--json", "connectors", "list"]) == 0
    listed = {c["name"]: c for c in json.loads(capsys.readouterr().out)["connectors"]}
    assert listed["intake"]["problem"] is None and listed["intake"]["kind"] == "source"
    assert listed["gone"]["problem"].startswith("connectors.gone.class: cannot import")
    assert listed["gone"]["class"] == "connectors.nowhere:OutboxSink"
    assert listed["typo"]["problem"].startswith("connectors.typo.kind: must be")
    assert main(["connectors", "list"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "cannot import" in shown and "Records in the file" in shown


def test_describe_shows_kind_class_topic_and_the_declared_options(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "connectors.toml").write_text(
        '[connectors.payments]\nkind = "sink"\nclass = "connectors.payments.sink:Pain001Sink"\n'
        '[connectors.payments.options]\ndebtor_nam = "typo: describe still works"\n'
    )
    assert main(["--json", "connectors", "describe", "payments"]) == 0
    about = json.loads(capsys.readouterr().out)
    assert (about["kind"], about["class_path"], about["dataset"]) == (
        "sink", "connectors.payments.sink:Pain001Sink", "payment-orders")
    assert about["topic"].endswith(".payments.payment-orders.v1")
    options = {o["name"]: o for o in about["options"]}
    assert list(options) == ["debtor_name", "debtor_iban", "debtor_bic", "outbox", "remittance"]
    assert options["debtor_iban"]["required"] is True and options["debtor_iban"]["type"] == "str"
    assert (options["remittance"]["default"], options["remittance"]["required"]) == (
        "Sozialhilfe", False)
    assert options["debtor_bic"]["type"] == "str | None"
    assert "BIC" in options["debtor_bic"]["description"]
    assert main(["connectors", "describe", "payments"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "connector payments: sink, class connectors.payments.sink:Pain001Sink" in text
    assert "remittance" in text and "'Sozialhilfe'" in text

    (folder / "connectors.toml").write_text(  # a connector that declares no options
        '[connectors.bare]\nkind = "source"\nclass = "tests.connectors.test_options:BareSource"\n'
    )
    assert main(["connectors", "describe", "bare"]) == 0
    out = capsys.readouterr().out
    assert "options: none" in out and "A source that declares no options" in out


@pytest.fixture
def stored(folder: Path, master_key: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NERVENBAHN_MASTER_KEY", master_key)
    return folder


def test_run_all_runs_the_good_connectors_and_reports_the_bad_ones(
    stored: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (stored / "connectors.toml").write_text(GOOD + MISSPELT + TYPO)
    # the worst exit of the three: two misconfigured (3), one ok
    assert main(["--json", "connectors", "run", "--all", "--until-idle"]) == EXIT_MISCONFIGURED
    outcomes = {o["name"]: o for o in json.loads(capsys.readouterr().out)}
    assert list(outcomes) == ["intake", "misspelt", "typo"]
    assert [o["exit"] for o in outcomes.values()] == [0, EXIT_MISCONFIGURED, EXIT_MISCONFIGURED]
    assert outcomes["intake"]["ok"] is True and outcomes["intake"]["report"]["applied"] == 1
    assert outcomes["misspelt"]["ok"] is False
    assert "connectors.misspelt.options.recrods: unknown option" in outcomes["misspelt"]["summary"]
    assert outcomes["typo"]["summary"].startswith("not run: connectors.typo.kind: must be")
    assert main(["--json", "connectors", "status", "intake"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert (status["position"], status["lag"]) == ("0000", 0)  # it ran: one case opened

    (stored / "connectors.toml").write_text(GOOD)
    assert main(["connectors", "run", "--all", "--until-idle"]) == 0
    assert capsys.readouterr().out.startswith("connector intake: (source) 0 items")


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (["--all"], "--all: runs the connectors one after the other: use it with --until-idle"),
        (["intake", "--all", "--until-idle"], "NAME: name one connector, or run them all"),
        ([], "NAME: name one connector, or run them all with --all"),
    ],
)
def test_run_takes_one_name_or_all_until_idle(
    stored: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], reason: str
) -> None:
    (stored / "connectors.toml").write_text(GOOD)
    assert main(["connectors", "run", *arguments]) == 1
    assert reason in capsys.readouterr().err
