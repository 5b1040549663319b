"""docs/connectors.md runs: its `tutorial` blocks, extracted and executed in order in a scratch
folder, against a real SQLite store and the real broker."""

from __future__ import annotations

import base64
import re
import secrets
import sys
import time
import uuid
from pathlib import Path

import pytest

import connectors

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "connectors.md"
BLOCK = re.compile(r"^```(\w+) tutorial(?: file=(\S+))?\n(.*?)^```\n", re.M | re.S)


def tutorial_blocks() -> list[tuple[str, str | None, str]]:
    """(language, file or None, code) of each tutorial block, in order."""
    return [(m.group(1), m.group(2), m.group(3)) for m in BLOCK.finditer(TUTORIAL.read_text())]


def test_the_tutorial_has_code_for_every_step() -> None:
    blocks = tutorial_blocks()
    files = {name for _, name, _ in blocks if name}
    assert "connectors/front_office/__init__.py" in files
    assert "front-office/connectors.toml" in files
    assert sum(1 for _, name, _ in blocks if name is None) >= 6


def test_the_tutorial_runs_as_written(
    tmp_path: Path, kafka_broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {
        "NERVENBAHN_STORE": "sqlite:///front-office/store.db",
        "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NERVENBAHN_KAFKA": kafka_broker,
        "NERVENBAHN_KAFKA_PROFILE": "embedded",
        "NERVENBAHN_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}",
        "NERVENBAHN_CONNECTORS": "front-office/connectors.toml",
        "NERVENBAHN_LOG_FORMAT": "console",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # The tutorial's package lives in the scratch folder's connectors/.
    packages = [*connectors.__path__, str(tmp_path / "connectors")]
    monkeypatch.setattr(connectors, "__path__", packages)
    namespace: dict[str, object] = {"__name__": "tutorial"}
    started = time.perf_counter()
    try:
        for number, (language, name, code) in enumerate(tutorial_blocks(), 1):
            if name is not None:
                (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / name).write_text(code, encoding="utf-8")
            elif language == "python":
                exec(compile(code, f"{TUTORIAL.name} block {number}", "exec"), namespace)
    finally:
        sys.modules.pop("connectors.front_office", None)
    assert time.perf_counter() - started < 60
    assert (tmp_path / "front-office" / "connectors" / "state.db").exists()
