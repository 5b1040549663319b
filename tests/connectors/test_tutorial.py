"""docs/connectors.md runs: its `tutorial` blocks, extracted and executed in order in an empty
folder outside the repository, against a real SQLite store and the real broker.

A block with `file=PATH` is written to PATH; a `sh` block runs in bash (`set -eu`) with this
environment's `nervenbahn`, `pip` and `pytest` first on the path, as the reader's activated
virtualenv would have them; a `python` block is executed in this process (one namespace for
all). The tutorial's `pip install` runs offline here: `--no-deps` (nervenbahn, the only
dependency, is installed) and `--no-build-isolation` (this environment's setuptools); the
package it installed is uninstalled afterwards.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.connectors.conftest import run_ok

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "connectors.md"
BLOCK = re.compile(r"^```(\w+) tutorial(?: file=(\S+))?\n(.*?)^```\n", re.M | re.S)
BIN = Path(sys.executable).parent
OFFLINE_PIP = f"{sys.executable} -m pip install --quiet --no-deps --no-build-isolation"


def tutorial_blocks() -> list[tuple[str, str | None, str]]:
    """(language, file or None, code) of each tutorial block, in order."""
    return [(m.group(1), m.group(2), m.group(3)) for m in BLOCK.finditer(TUTORIAL.read_text())]


def test_the_tutorial_has_code_for_every_step() -> None:
    blocks = tutorial_blocks()
    files = {name for _, name, _ in blocks if name}
    assert "front_office/src/front_office/__init__.py" in files
    assert "front_office/tests/test_front_office.py" in files
    assert "front-office/connectors.toml" in files
    commands = "".join(code for language, name, code in blocks if language == "sh")
    for step in ("connector new front_office", "pip install -e ./front_office",
                 "connectors run front_office", "pytest"):
        assert step in commands


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
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    namespace: dict[str, object] = {"__name__": "tutorial"}
    started = time.perf_counter()
    try:
        for number, (language, name, code) in enumerate(tutorial_blocks(), 1):
            where = f"{TUTORIAL.name} block {number}"
            if name is not None:
                (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / name).write_text(code, encoding="utf-8")
            elif language == "sh":
                shell(code.replace("pip install", OFFLINE_PIP), where)
            elif language == "python":
                exec(compile(code, where, "exec"), namespace)
    finally:
        run_ok([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes",
                "front-office-connector"])
    assert time.perf_counter() - started < 120
    assert (tmp_path / "front-office" / "connectors" / "state.db").exists()


def shell(code: str, where: str) -> None:
    """Run a `sh` block in bash in the current folder; a failure shows its output."""
    result = subprocess.run(["bash", "-c", "set -eu\n" + code], capture_output=True,
                            text=True, timeout=240, check=False)
    output = result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0, f"{where}:\n{code}\n{output}"
