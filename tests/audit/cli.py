"""Running `nervenbahn` in-process against a test's own store (for the audit tests)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import pytest

from nervenbahn.cli import main
from nervenbahn.cli.session import Session
from nervenbahn.config import Settings, load_settings
from tests.bus.pipeline import open_supported_case

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


def make_installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> tuple[Settings, Invoke, UUID]:
    """A SQLite store in tmp_path with two supported cases (of so-olten), fresh keys, the
    access log at tmp_path/access-log.db, and the CLI on it; the first case's id."""
    store = f"sqlite:///{tmp_path / 'store.db'}"
    settings = load_settings({
        "NERVENBAHN_STORE": store,
        "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NERVENBAHN_AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    })
    invoke = cli_for(store, settings, tmp_path / "access-log.db", monkeypatch, capsys)
    rt = Session()
    try:
        case_id = open_supported_case(rt.service, 1)
        open_supported_case(rt.service, 2)
    finally:
        rt.close()
    return settings, invoke, case_id
