"""`nervenbahn connector new`: the written connectors pass their own tests as written."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from connectors.scaffold import ScaffoldError, config_entry, write_connector
from nervenbahn.cli import main

REPO = Path(__file__).resolve().parents[2]
RUN_GENERATED = (
    "import sys, connectors, pytest; connectors.__path__.append(sys.argv[1]); "
    "sys.exit(pytest.main(sys.argv[2:]))"
)


def test_written_connectors_pass_their_generated_tests(tmp_path: Path, kafka_broker: str) -> None:
    written = [
        *write_connector("front_desk", "source", tmp_path),
        *write_connector("event_outbox", "sink", tmp_path),
    ]
    tests = [str(path) for path in written if path.name.startswith("test_")]
    assert len(tests) == 2
    # The generated package lives outside the repository: add its folder to `connectors`; the
    # repository's fixtures (kafka_settings) come from tests/conftest.py as a plugin.
    result = subprocess.run(
        [sys.executable, "-c", RUN_GENERATED, str(tmp_path / "connectors"), *tests,
         "-p", "tests.conftest", "-q", "-p", "no:cacheprovider", f"--rootdir={tmp_path}"],
        cwd=REPO,
        env={**os.environ, "NERVENBAHN_TEST_KAFKA": kafka_broker, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "4 passed" in result.stdout


def test_the_config_entry_is_valid_configuration() -> None:
    entry = tomllib.loads(config_entry("front_desk", "source"))["connectors"]["front_desk"]
    assert entry["kind"] == "source"
    assert entry["class"] == "connectors.front_desk:FrontDeskSource"
    assert set(entry["options"]) == {"inbox", "actor"}


@pytest.mark.parametrize(
    ("name", "kind", "field", "reason"),
    [
        ("Front-Desk", "source", "name", "not a connector name"),
        ("class", "source", "name", "not a connector name"),
        ("runtime", "sink", "name", "reserved"),
        ("front_desk", "pipe", "kind", "use source or sink"),
    ],
)
def test_a_bad_name_or_kind_is_refused(
    tmp_path: Path, name: str, kind: str, field: str, reason: str
) -> None:
    with pytest.raises(ScaffoldError, match=reason) as caught:
        write_connector(name, kind, tmp_path)
    assert caught.value.field == field
    assert not (tmp_path / "connectors").exists()


def test_an_existing_connector_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "connectors" / "front_desk").mkdir(parents=True)
    with pytest.raises(ScaffoldError, match="exists already"):
        write_connector("front_desk", "sink", tmp_path)
    assert list((tmp_path / "connectors" / "front_desk").iterdir()) == []


def test_the_command_writes_and_prints_the_config_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    into = ["--into", str(tmp_path)]
    assert main(["connector", "new", "front_desk", "--kind", "source", *into]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "connectors" / "front_desk" / "__init__.py").exists()
    assert "[connectors.front_desk]" in out
    assert main(["connector", "new", "front_desk", *into]) == 1
    assert "exists already" in capsys.readouterr().err
