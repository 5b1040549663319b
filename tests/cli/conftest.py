"""Run the CLI in-process against a store of the test's own."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

import nervenbahn.cli
from nervenbahn.cli import main, report


@dataclass
class Outcome:
    """What one CLI invocation did."""

    code: int
    out: str
    err: str

    def json(self) -> object:
        """stdout parsed as JSON."""
        return json.loads(self.out)


Cli = Callable[..., Outcome]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Invoke `nervenbahn ARGS…` with a SQLite store in tmp_path and JSON logs on stderr."""
    monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("NERVENBAHN_ACTOR", "cw-olten-01:caseworker:so-olten")
    monkeypatch.setenv("NERVENBAHN_LOG_FORMAT", "json")
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> Outcome:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


@pytest.fixture
def report_wired(monkeypatch: pytest.MonkeyPatch) -> None:
    """`report` as the root CLI wires it (`app.add_typer(report.app, name="report")`)."""
    groups = nervenbahn.cli.app.registered_groups
    if not any(group.name == "report" for group in groups):
        wired = typer.models.TyperInfo(report.app, name="report")
        monkeypatch.setattr(nervenbahn.cli.app, "registered_groups", [*groups, wired])
