"""`nervenbahn connector new`: a package outside the repository that installs, passes its own
tests with plain `pytest` and runs with `nervenbahn connectors run`, found by its entry point."""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import tomllib
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.scaffold import ScaffoldError, config_entry, write_connector
from nervenbahn.cli import main
from nervenbahn.testing import applicant
from tests.connectors.conftest import REPO, run_ok

BIN = Path(sys.executable).parent


def test_a_new_package_installs_passes_its_tests_and_runs_by_entry_point(
    tmp_path: Path, kafka_broker: str, pip_install: Callable[..., None]
) -> None:
    suffix = uuid.uuid4().hex[:8]  # never the name of a package left installed by a killed run
    source, sink = f"desk_{suffix}", f"outbox_{suffix}"
    work = tmp_path / "work"
    work.mkdir()
    for name, kind in ((source, "source"), (sink, "sink")):
        run_ok([str(BIN / "nervenbahn"), "connector", "new", name, "--kind", kind], cwd=work)
    pip_install(work / source, work / sink)

    # Its own tests, with plain pytest in its folder: no fixture of this repository.
    env = {**os.environ, "NERVENBAHN_TEST_KAFKA": kafka_broker}
    env.pop("PYTHONPATH", None)
    assert "4 passed" in run_ok([str(BIN / "pytest"), "-q", "-p", "no:cacheprovider"],
                                cwd=work / source, env=env)
    assert "3 passed" in run_ok([str(BIN / "pytest"), "-q", "-p", "no:cacheprovider"],
                                cwd=work / sink, env=env)

    # Run as configured by the entry printed by `connector new`, from the work folder.
    (work / "connectors.toml").write_text(config_entry(source, "source"))
    intake = {"reference": "A-1", "municipality_bfs": 2581, "household_size": 1,
              "applicant": applicant()}
    inbox = work / "inbox" / source
    inbox.mkdir(parents=True)
    (inbox / "2026-03-01.jsonl").write_text(json.dumps(intake) + "\n")
    env = {**env, "NERVENBAHN_STORE": "sqlite:///store/store.db",
           "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
           "NERVENBAHN_CONNECTORS": "connectors.toml"}
    nervenbahn = str(BIN / "nervenbahn")
    run_ok([nervenbahn, "init"], cwd=work, env=env)
    listed = run_ok([nervenbahn, "--json", "connectors", "list"], cwd=work, env=env)
    assert f'"class": "{source}:Desk{suffix.capitalize()}Source"' in listed
    ran = run_ok([nervenbahn, "connectors", "run", source, "--until-idle"], cwd=work, env=env)
    assert "1 items: 1 commands applied" in ran


@pytest.mark.parametrize("kind", ["source", "sink"])
def test_the_written_files_are_ruff_clean_even_with_the_longest_name(
    tmp_path: Path, kind: str
) -> None:
    name = "a" * 34 + kind[:4] + "_x"  # 40 characters, the most a name may have
    write_connector(name, kind, tmp_path)
    run_ok([str(BIN / "ruff"), "check", "--no-cache"], cwd=tmp_path / name)


def test_the_package_checks_with_the_projects_ruff_settings(tmp_path: Path) -> None:
    """The same rules and line length; only which imports are first-party differs (in the
    package: the package itself; here: nervenbahn's)."""
    write_connector("front_desk", "sink", tmp_path)
    ours = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]
    theirs = tomllib.loads((tmp_path / "front_desk" / "pyproject.toml").read_text())
    ruff = theirs["tool"]["ruff"]
    for key in ("line-length", "target-version"):
        assert ruff[key] == ours[key]
    for key in ("select", "ignore"):
        assert ruff["lint"][key] == ours["lint"][key]


def test_the_package_declares_its_entry_point_and_the_test_harness(tmp_path: Path) -> None:
    write_connector("front_desk", "source", tmp_path)
    project = tomllib.loads((tmp_path / "front_desk" / "pyproject.toml").read_text())
    assert project["project"]["name"] == "front-desk-connector"
    assert project["project"]["dependencies"] == ["nervenbahn"]
    entry_points = project["project"]["entry-points"]["nervenbahn.connectors"]
    assert entry_points == {"front_desk": "front_desk:FrontDeskSource"}
    assert project["tool"]["pytest"]["ini_options"]["addopts"] == "-p nervenbahn.testing"


def test_the_config_entry_names_the_installed_connector() -> None:
    entry = tomllib.loads(config_entry("front_desk", "source"))["connectors"]["front_desk"]
    assert entry["kind"] == "source"
    assert entry["connector"] == "front_desk"
    assert "class" not in entry
    assert set(entry["options"]) == {"inbox", "actor"}


@pytest.mark.parametrize(
    ("name", "kind", "field", "reason"),
    [
        ("Front-Desk", "source", "name", "not a connector name"),
        ("class", "source", "name", "not a connector name"),
        ("runtime", "sink", "name", "reserved"),
        ("csv", "source", "name", "installed already"),
        ("connectors", "sink", "name", "installed already"),
        ("front_desk", "pipe", "kind", "use source or sink"),
    ],
)
def test_a_bad_name_or_kind_is_refused(
    tmp_path: Path, name: str, kind: str, field: str, reason: str
) -> None:
    with pytest.raises(ScaffoldError, match=reason) as caught:
        write_connector(name, kind, tmp_path)
    assert caught.value.field == field
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "front_desk").mkdir()
    with pytest.raises(ScaffoldError, match="exists already"):
        write_connector("front_desk", "sink", tmp_path)
    assert list((tmp_path / "front_desk").iterdir()) == []


def test_the_command_writes_the_package_and_prints_the_next_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    into = ["--into", str(tmp_path)]
    assert main(["connector", "new", "front_desk", "--kind", "source", *into]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "front_desk" / "src" / "front_desk" / "__init__.py").exists()
    assert f"pip install -e {tmp_path / 'front_desk'}" in out
    assert "[connectors.front_desk]" in out
    assert main(["connector", "new", "front_desk", *into]) == 1
    assert "exists already" in capsys.readouterr().err
