"""Running `nervenbahn` in-process against a test's own store (for the audit tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nervenbahn.cli import main
from nervenbahn.config import Settings

Invoke = Callable[..., tuple[int, str, str]]


def cli_for(store: str, settings: Settings, access_log: Path, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> Invoke:
    """`invoke(*args)` -> (exit code, stdout, stderr) with the store, keys and access log set."""
    monkeypatch.setenv("NERVENBAHN_STORE", store)
    monkeypatch.setenv("NERVENBAHN_MASTER_KEY", settings.master_key.get_secret_value())
    monkeypatch.setenv("NERVENBAHN_AUDIT_SIGNING_KEY", settings.signing_key.get_secret_value())
    monkeypatch.setenv("NERVENBAHN_ACTOR", "cw-olten-01:caseworker:so-olten")
    monkeypatch.setenv("NERVENBAHN_LOG_FORMAT", "json")
    monkeypatch.setenv("NERVENBAHN_ACCESS_LOG", str(access_log))
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return invoke
