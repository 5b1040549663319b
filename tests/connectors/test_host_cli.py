"""`nervenbahn connectors list|run|status|errors` on a configuration file and a real store."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from connectors._config import load_config
from nervenbahn.cli import main

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "ech0020"
CONFIG = """
[connectors.intake]
kind = "source"
class = "tests.connectors.test_host:ListSource"
[connectors.intake.options]
records = [{ ref = "A", bfs = 2581 }, { ref = "B", bfs = 9999 }]
"""


@pytest.fixture
def configured(tmp_path: Path, master_key: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "connectors.toml").write_text(CONFIG)
    monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("NERVENBAHN_MASTER_KEY", master_key)
    monkeypatch.delenv("NERVENBAHN_CONNECTORS", raising=False)  # default: beside the store
    monkeypatch.setenv("NERVENBAHN_LOG_FORMAT", "console")
    return tmp_path


def test_run_then_status_shows_position_lag_and_the_refused_item(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--json", "connectors", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in listed["connectors"]] == ["intake"]
    assert main(["--json", "connectors", "run", "intake", "--until-idle"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["items"], report["applied"], report["refused"]) == (2, 1, 1)
    assert main(["--json", "connectors", "status"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert (status["position"], status["lag"], status["error_count"]) == ("0001", 0, 1)
    assert main(["connectors", "errors", "intake"]) == 0
    assert "record B" in capsys.readouterr().out


def test_an_unconfigured_name_and_a_bad_table_are_configuration_errors(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["connectors", "run", "nobody"]) == 3
    assert "connectors.nobody: not configured (configured: intake)" in capsys.readouterr().err
    (configured / "connectors.toml").write_text('[connectors.intake]\nkind = "sorce"\n')
    assert main(["connectors", "run", "intake", "--until-idle"]) == 3
    assert "connectors.intake.kind: must be 'source' or 'sink'" in capsys.readouterr().err
    assert main(["--json", "connectors", "status"]) == 0  # status shows it, beside the others
    (status,) = json.loads(capsys.readouterr().out)
    assert status["errors"][0].startswith("configuration: connectors.intake.kind: must be")


def test_a_run_while_another_holds_the_connector_is_one_line_and_exit_75(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lock another process would hold: an flock on the connector's lock file."""
    folder = configured / "connectors"
    folder.mkdir(mode=0o700)
    fd = os.open(folder / "intake.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["connectors", "run", "intake", "--until-idle"]) == 75
    finally:
        os.close(fd)
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["error: connector intake is running in another process"]
    assert main(["connectors", "run", "intake", "--until-idle"]) == 0  # once it is free


def test_the_example_configuration_is_valid() -> None:
    specs = load_config(REPO / "connectors.example.toml")
    assert {spec.kind for spec in specs.values()} == {"sink", "source"}
    for spec in specs.values():
        spec.load()  # the classes exist and accept their options


def test_a_register_delivery_with_a_bad_ahvn13_check_digit_is_refused_input(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a crash (exit 70, "unexpected ValueError"): refused whole like any invalid
    delivery, exit 1, named in the run's output and in `errors`, the file left in the inbox."""
    inbox = configured / "inbox"
    inbox.mkdir()
    delivery = inbox / "bad-check-digit-vn.xml"
    delivery.write_bytes((DATA / "bad-check-digit-vn.xml.bad").read_bytes())
    (configured / "connectors.toml").write_text(
        '[connectors.register]\nkind = "source"\n'
        'class = "connectors.population_register:RegisterSource"\n'
        f'[connectors.register.options]\ninbox = "{inbox}"\norganisation = "so-canton"\n'
    )
    where = (
        "bad-check-digit-vn.xml line 23: element /eCH-0020:delivery/eCH-0020:death/"
        "eCH-0020:deathPerson/eCH-0044:vn: not a valid AHVN13"
    )

    assert main(["connectors", "run", "register", "--until-idle"]) == 1
    ran = capsys.readouterr()
    assert where in " ".join((ran.out + ran.err).split())
    assert "unexpected" not in ran.out + ran.err
    assert main(["--json", "connectors", "status", "register"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert status["error_count"] == 1 and where in status["errors"][0]
    assert main(["connectors", "errors", "register"]) == 0
    listed = capsys.readouterr().out
    assert where in " ".join(listed.split()) and "7569787756757" not in listed
    assert delivery.exists()
