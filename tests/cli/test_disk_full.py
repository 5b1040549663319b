"""A full disk, for real: `nervenbahn init` with its key folder on a full tmpfs (mounted in a
user namespace of its own, so no privilege is needed) exits 74 with one line and leaves no
key file, empty or not; once there is room, `init` and a command reading the keys work. And
a command that only reads keys never creates one (issue 12, finding 6: `audit verify` on a
full disk left an empty signing key that broke every later `audit verify`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nervenbahn.cli import EXIT_NO_SPACE, EXIT_NOT_INITIALISED
from tests.cli.conftest import Cli

pytestmark = pytest.mark.keys_not_created

DRIVER = r'''
import contextlib, errno, io, json, os, subprocess, sys
from pathlib import Path

mount = Path(sys.argv[1])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=700", "tmpfs", str(mount)],
               check=True)
os.environ["NERVENBAHN_KEY_DIR"] = str(mount / "keys")
filler = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
try:
    while True:
        os.write(filler, bytes(4096))
except OSError as exc:
    assert exc.errno == errno.ENOSPC, exc
finally:
    os.close(filler)

from nervenbahn.cli import main

def run(*args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(args))
    return [code, [line for line in err.getvalue().splitlines() if not line.startswith("{")]]

def key_files():
    return {str(p.relative_to(mount)): p.stat().st_size
            for p in sorted((mount / "keys").rglob("*")) if p.is_file()}

outcome = {"full": run("init"), "files_when_full": key_files()}
os.unlink(mount / "filler")
outcome["with_room"] = run("init")
outcome["files"] = key_files()
outcome["reading"] = run("audit", "public-key")
print(json.dumps(outcome))
'''


def _unshare() -> list[str]:
    """The command that runs a program as root of its own user and mount namespace, or skip."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        pytest.skip("needs Linux and util-linux's unshare to mount a small tmpfs")
    command = [unshare, "--user", "--map-root-user", "--mount"]
    probe = subprocess.run([*command, "true"], capture_output=True, check=False, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"user namespaces are not allowed here: {probe.stderr.decode().strip()}")
    return command


@pytest.mark.slow
def test_init_on_a_full_disk_exits_74_leaves_no_key_and_works_once_there_is_room(
    tmp_path: Path,
) -> None:
    command = _unshare()
    mount = tmp_path / "small-disk"
    mount.mkdir()
    env = {**os.environ, "NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'store.db'}",
           "NERVENBAHN_LOG_FORMAT": "json"}

    done = subprocess.run([*command, sys.executable, "-c", DRIVER, str(mount)], env=env,
                          cwd=Path(__file__).parents[2], capture_output=True, text=True,
                          check=False, timeout=120)

    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    code, lines = outcome["full"]
    assert code == EXIT_NO_SPACE and len(lines) == 1, lines
    assert lines[0].startswith("error: no space left on device")
    assert outcome["files_when_full"] == {}  # no empty key file, no temporary file
    assert outcome["with_room"] == [0, []]
    assert sorted(Path(name).name for name in outcome["files"]) == [
        "master.key", "reporting.key", "signing.key", "store"]
    assert all(size > 0 for size in outcome["files"].values())
    assert outcome["reading"][0] == 0, outcome["reading"]


@pytest.mark.parametrize("command", [("audit", "verify"), ("audit", "public-key")])
def test_a_command_that_reads_the_signing_key_never_creates_it(
    cli: Cli, tmp_path: Path, command: tuple[str, ...]
) -> None:
    keys = Path(os.environ["NERVENBAHN_KEY_DIR"])
    before = sorted(tmp_path.rglob("*"))

    done = cli(*command)

    assert done.code == EXIT_NOT_INITIALISED, done.err
    assert "run `nervenbahn init`" in done.err
    assert not keys.exists() and sorted(tmp_path.rglob("*")) == before
