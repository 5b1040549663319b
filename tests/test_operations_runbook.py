"""docs/operations.md runs: its `runbook` blocks, in order, in one shell, against the real
PostgreSQL server and the test broker; its systemd unit passes `systemd-analyze verify` and is
started the way systemd would start it (ExecStartPre, then ExecStart with its EnvironmentFile
and WorkingDirectory), then stopped with its KillSignal within its TimeoutStopSec.

The only substitutions are the ones the page announces: the paths under /etc, /var and /opt
(a scratch folder and this virtualenv), the database host and role (the test server), the
schema, the restore database and the topic prefix (names of this test's own), the broker
addresses and replication factor (the one test broker) and the port.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from configparser import ConfigParser
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import nervenbahn.cli as cli
from bus.broker import free_port

RUNBOOK = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
BLOCK = re.compile(r"^```(\w+) runbook(?: file=(\S+))?\n(.*?)^```\n", re.M | re.S)
UNIT = "/etc/systemd/system/nervenbahn.service"


RECORD_SOMETHING = """
NERVENBAHN_ACTOR=cw-olten-01:caseworker:so-olten /opt/nervenbahn/.venv/bin/nervenbahn \\
  case open --municipality 2581 --household-size 1 --given-name Anna --family-name Muster \\
  --ahvn13 756.9217.0769.85 \\
  --birth-date 1980-02-03 --street 'Hauptgasse 1' --postal-code 4600 --town Olten > /dev/null
NERVENBAHN_ACTOR=ops:auditor:canton /opt/nervenbahn/.venv/bin/nervenbahn audit checkpoint \\
  > /dev/null
"""
"""Not in the runbook: a case and a signed checkpoint, recorded while `serve` runs (the
environment file sourced), so that the restored backup has a chain and a checkpoint to prove."""


def runbook_blocks() -> list[tuple[str, str | None, str]]:
    """(language, file or None, text) of each runbook block, in order."""
    return [(m.group(1), m.group(2), m.group(3)) for m in BLOCK.finditer(RUNBOOK.read_text())]


def test_the_runbook_covers_what_production_needs() -> None:
    blocks = runbook_blocks()
    files = {name for _, name, _ in blocks if name}
    commands = "\n".join(text for _, name, text in blocks if name is None)
    assert {UNIT, "/etc/nervenbahn/nervenbahn.env"} <= files
    for needed in ("openssl rand", "nervenbahn init", "topics create", "/health/ready",
                   "apikeys add", "pg_dump", "pg_restore", ".backup", "audit verify"):
        assert needed in commands, needed


@pytest.fixture
def scratch_names(postgres_server_url: str) -> Iterator[dict[str, str]]:
    """A schema and a restore database of this test's own, dropped afterwards."""
    names = {"schema": f"nb_ops_{uuid.uuid4().hex[:8]}",
             "database": f"nb_restore_{uuid.uuid4().hex[:8]}"}
    yield names
    with psycopg.connect(postgres_server_url, autocommit=True, connect_timeout=3) as conn:
        for schema in (names["schema"], f"{names['schema']}_read"):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(names["database"])))


def _substitutions(root: Path, names: dict[str, str], broker: str, port: int) -> list[
        tuple[str, str]]:
    bin_dir = str(Path(sys.executable).parent)
    return [
        ("/opt/nervenbahn/.venv/bin", bin_dir),
        ("/etc/", f"{root}/etc/"),
        ("/var/", f"{root}/var/"),
        ("nervenbahn@db.internal:5432/nervenbahn_restore_check",
         f"postgres@127.0.0.1:5432/{names['database']}"),
        ("nervenbahn@db.internal:5432/nervenbahn", "postgres@127.0.0.1:5432/test"),
        ("--host=db.internal --username=nervenbahn", "--host=127.0.0.1 --username=postgres"),
        ("nervenbahn_restore_check", names["database"]),
        ("nb_prod", names["schema"]),
        ("kafka-1.internal:9092,kafka-2.internal:9092,kafka-3.internal:9092",
         f"{broker}\nNERVENBAHN_KAFKA_PROFILE=embedded"),  # the test broker's timings
        ("NERVENBAHN_KAFKA_REPLICATION_FACTOR=3", "NERVENBAHN_KAFKA_REPLICATION_FACTOR=1"),
        ("NERVENBAHN_TOPIC_PREFIX=nervenbahn",
         "NERVENBAHN_TOPIC_PREFIX=" + names["schema"].replace("_", "-")),
        ("127.0.0.1:8000", f"127.0.0.1:{port}"),
        ("--port 8000", f"--port {port}"),
    ]


def _substituted(text: str, substitutions: list[tuple[str, str]]) -> str:
    for old, new in substitutions:
        text = text.replace(old, new)
    return text


def _unit_start(unit: Path) -> str:
    """The shell lines starting the unit's service as systemd would, in the background."""
    parser = ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(unit)
    service = parser["Service"]
    environment = shlex.quote(service["EnvironmentFile"])
    folder = shlex.quote(service["WorkingDirectory"])
    return "\n".join([
        f"install -d -m 0700 {folder}",
        f"(cd {folder} && set -a && . {environment} && set +a && {service['ExecStartPre']})",
        f"(cd {folder} && set -a && . {environment} && set +a && exec {service['ExecStart']}) "
        "> serve.out 2> serve.err &",
        "SERVE_PID=$!",
    ])


def _unit_stop(unit: Path) -> str:
    parser = ConfigParser(interpolation=None, strict=False)
    parser.read(unit)
    service = parser["Service"]
    signal = service["KillSignal"].removeprefix("SIG")
    return (f"kill -{signal} $SERVE_PID\n"
            f"timeout {service['TimeoutStopSec']} tail --pid=$SERVE_PID -f /dev/null\n"
            "wait $SERVE_PID; echo \"serve exited $?\"\n")


@pytest.mark.skipif(not shutil.which("systemd-analyze") or not shutil.which("pg_dump"),
                    reason="systemd-analyze and the PostgreSQL client tools are needed")
# A `serve` on PostgreSQL (about 22 connections) beside scale_out.py's three (66) and the rest
# exceeded PostgreSQL's 100: "too many clients already", 503s in scale_out's reads.
@pytest.mark.xdist_group("scale")
def test_the_runbook_runs_as_written(
    tmp_path: Path, kafka_broker: str, scratch_names: dict[str, str]
) -> None:
    substitutions = _substitutions(tmp_path, scratch_names, kafka_broker, free_port())
    script = ["set -euo pipefail"]
    unit: Path | None = None
    for _language, name, text in runbook_blocks():
        body = _substituted(text, substitutions)
        if name is None:
            script.append(body)
            if "/health/ready" in body:  # so that the backup holds a case to verify
                script.append(_substituted(RECORD_SOMETHING, substitutions))
            continue
        path = Path(_substituted(name, substitutions))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
        if name == UNIT:
            unit = path
            script.append(_unit_start(path))
    assert unit is not None
    script.append(_unit_stop(unit))

    verified = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                              capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr

    (tmp_path / "runbook.sh").write_text("\n".join(script), encoding="utf-8")  # to rerun by hand
    done = subprocess.run(["bash", "runbook.sh"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)

    report = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, report
    assert '"status":"ready"' in done.stdout, report
    assert "nervenbahn_ready 1.0" in done.stdout, report
    assert "open incidents: 0" in done.stdout and "Incidents (0)" in done.stdout, report
    assert "nothing to create" in done.stdout and "its keys are" in done.stdout, report
    assert re.search(r"verified: every chain, snapshot and checkpoint holds \(1 signed",
                     done.stdout), report
    assert re.search(r"events:nervenbah\S*\s+│ [1-9]", done.stdout), report
    assert "serve exited 0" in done.stdout, report
    dump = tmp_path / "var" / "backups" / "nervenbahn" / "store.dump"
    assert dump.stat().st_size > 0


def test_the_exit_code_table_is_the_clis() -> None:
    section = RUNBOOK.read_text().split("## Exit codes", 1)[1]
    documented = {name: int(code) for code, name in
                  re.findall(r"^\| (\d+) \| `(EXIT_\w+)` \|", section, re.M)}
    constants = {name: value for name, value in vars(cli).items()
                 if name.startswith("EXIT_") and isinstance(value, int)}
    assert documented == constants
