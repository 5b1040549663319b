"""Errors of the real `nervenbahn` process: one line naming the problem, never a traceback,
never a value of the input (Rich tracebacks once printed local variables — personal data — to
stdout before logging was configured)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from nervenbahn.cli.inputs import MAX_DATA_BYTES, MAX_LINE_BYTES
from nervenbahn.logging import LogFormat, configure_logging, configure_logging_from_environment
from tests.cli.conftest import Cli

PERSONAL = ["Zora", "Quellmatt", "756.9217.0769.85", "Aarauerstrasse"]
APPLICANT = {"given_name": "Zora", "family_name": "Quellmatt", "ahvn13": "756.9217.0769.85",
             "birth_date": "1984-05-06", "street": "Aarauerstrasse 7", "postal_code": "4600",
             "town": "Olten"}


def nervenbahn(
    tmp_path: Path, *args: str, log_format: str = "json"
) -> subprocess.CompletedProcess[str]:
    """Run `python -m nervenbahn ARGS` in tmp_path with a store and HOME of its own (and a
    configured master key: a child process has no `nervenbahn init` fixture)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NERVENBAHN_")}
    env |= {"HOME": str(tmp_path), "NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'store.db'}",
            "NERVENBAHN_MASTER_KEY": base64.b64encode(bytes(range(32))).decode(),
            "NERVENBAHN_ACTOR": "cw-olten-01:caseworker:so-olten",
            "NERVENBAHN_LOG_FORMAT": log_format}
    return subprocess.run([sys.executable, "-m", "nervenbahn", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def _nested(depth: int) -> str:
    """A command whose other member lies `depth` objects deep (written, not encoded: the
    encoder would hit the recursion limit itself)."""
    applicant = json.dumps(APPLICANT)
    inner = '{"x": ' * depth + f'{{"applicant": {applicant}}}' + "}" * depth
    return (f'{{"municipality_bfs": 2581, "household_size": 1, "applicant": {applicant}, '
            f'"other_members": [{inner}]}}')


def _write(path: Path, content: str | bytes) -> str:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, "utf-8")
    return f"@{path}"


BAD_DATA = [
    ("a file that does not exist", lambda tmp: f"@{tmp / 'missing.json'}", "does not exist"),
    ("a directory", lambda tmp: f"@{tmp}", "is a directory"),
    ("JSON nested 100,000 deep", lambda tmp: _write(tmp / "deep.json", _nested(100_000)),
     "nested deeper than"),
    ("JSON nested 200 deep", lambda tmp: _write(tmp / "deep.json", _nested(200)),
     "nested deeper than"),
    ("inline JSON nested deep", lambda tmp: _nested(5_000), "nested deeper than"),
    ("a file that is not UTF-8", lambda tmp: _write(tmp / "latin1.json",
                                                    _nested(1).encode("latin-1") + b"\xff"),
     "is not UTF-8"),
    ("an endless device", lambda tmp: "@/dev/zero", "is not a regular file"),
    ("a FIFO without a writer", lambda tmp: _fifo(tmp / "pipe.json"), "is not a regular file"),
    ("a file one byte over 1 MiB", lambda tmp: _write(
        tmp / "big.json", '{"x": "' + "a" * (MAX_DATA_BYTES - 8) + '"}'),
     "larger than 1 MiB (1048576 bytes)"),
]


def _fifo(path: Path) -> str:
    os.mkfifo(path)
    return f"@{path}"


@pytest.mark.parametrize("log_format", ["json", "console"])
@pytest.mark.parametrize(("what", "data", "reason"), BAD_DATA, ids=[b[0] for b in BAD_DATA])
def test_bad_command_data_is_one_line_naming_it_without_traceback_or_values(
    tmp_path: Path, log_format: str, what: str, data: object, reason: str
) -> None:
    argument = data(tmp_path)  # type: ignore[operator]

    done = nervenbahn(tmp_path, "case", "run", "open_case", argument, log_format=log_format)

    assert done.returncode == 1, (what, done.stdout[-2000:], done.stderr[-2000:])
    assert done.stdout == ""
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "data" in errors[0] and reason in errors[0], done.stderr
    assert "Traceback" not in done.stderr and "locals" not in done.stderr
    for value in PERSONAL:
        assert value not in done.stdout + done.stderr, f"{value!r} shown for {what}"


def test_a_store_that_cannot_open_is_one_line_exit_3(tmp_path: Path) -> None:
    (tmp_path / "store.db").mkdir()

    done = nervenbahn(tmp_path, "case", "show", "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f")

    assert done.returncode == 3 and done.stdout == ""
    assert [line for line in done.stderr.splitlines() if not line.startswith("{")] == [
        line for line in done.stderr.splitlines() if line.startswith("error: cannot open")]


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_logged_exceptions_never_show_local_variables(log_format: LogFormat) -> None:
    out = io.StringIO()
    configure_logging(log_format, "info", out)
    try:
        _fail_holding(PERSONAL[1])
    except RuntimeError:
        structlog.get_logger("test").error("unexpected error", exc_info=True)
    finally:
        configure_logging_from_environment()

    logged = out.getvalue()
    assert "RuntimeError: failed" in logged and "_fail_holding" in logged
    assert "Quellmatt" not in logged and "locals" not in logged and "╭" not in logged


def _fail_holding(family_name: str) -> None:
    held = {"family_name": family_name}
    raise RuntimeError("failed" if held else "")


@pytest.mark.parametrize(("content", "named"), [
    ('{"a": ' * 50_000 + "1" + "}" * 50_000 + "\n", "line 1: nested deeper than"),
    (b"\xff\xfe not UTF-8\n", "line 1: is not UTF-8"),
    ("\n" + "x" * MAX_LINE_BYTES + "\n", "line 2: longer than 1 MiB (1048576 bytes)"),
    ("x" * (3 * MAX_LINE_BYTES), "line 1: longer than 1 MiB (1048576 bytes)"),
], ids=["nested-deep", "not-utf8", "second-line-too-long", "first-line-too-long"])
# (ids of their own: a test id of the content would reach the child's environment through
# PYTEST_CURRENT_TEST, longer than an environment string may be: "Argument list too long")
def test_an_import_file_nested_too_deep_or_not_utf8_is_refused_in_one_line(
    tmp_path: Path, content: str | bytes, named: str
) -> None:
    _write(tmp_path / "legacy.jsonl", content)

    done = nervenbahn(tmp_path, "--actor", "admin-so:administrator:so-canton", "import",
                      str(tmp_path / "legacy.jsonl"))

    assert done.returncode == 1, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and named in errors[0] and "Traceback" not in done.stderr
    for value in PERSONAL:
        assert value not in done.stdout + done.stderr


@pytest.mark.parametrize(("source", "reason"), [
    (lambda tmp: "/dev/zero", "is not a regular file"),
    (lambda tmp: _fifo(tmp / "pipe.jsonl")[1:], "is not a regular file"),
    (lambda tmp: str(tmp), "is a directory"),
    (lambda tmp: str(tmp / "missing.jsonl"), "does not exist"),
], ids=["dev-zero", "fifo", "directory", "missing"])
def test_an_import_from_anything_but_a_regular_file_is_refused_at_once(
    tmp_path: Path, source: object, reason: str
) -> None:
    done = nervenbahn(tmp_path, "import", source(tmp_path))  # type: ignore[operator]

    assert done.returncode == 1, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "path: file" in errors[0] and reason in errors[0], errors


def test_command_data_of_exactly_1_mib_is_read_and_one_byte_more_is_not(
    cli: Cli, tmp_path: Path
) -> None:
    at_limit = '{"x": "' + "a" * (MAX_DATA_BYTES - 9) + '"}'
    _write(tmp_path / "limit.json", at_limit)

    from_file = cli("case", "run", "open_case", f"@{tmp_path / 'limit.json'}")
    inline_over = cli("case", "run", "open_case", at_limit[:-2] + 'a"}')

    assert len(at_limit.encode()) == MAX_DATA_BYTES
    assert from_file.code == 1 and "x: Extra inputs are not permitted" in from_file.err
    assert inline_over.code == 1
    assert "data: larger than 1 MiB (1048576 bytes)" in inline_over.err


@pytest.mark.parametrize(("store", "key_dir", "named"), [
    ("{tmp}/x/y.db", "/proc/nope", "error: NERVENBAHN_KEY_DIR: cannot make or read the master key"),
    ("{tmp}", "{tmp}/keys", "error: cannot open the store SQLite {tmp} (NERVENBAHN_STORE): it is"),
    ("{tmp}/notes.db", "{tmp}/keys", "error: cannot open the store SQLite {tmp}/notes.db"),
], ids=["key dir that cannot be made", "store a folder", "store not a database"])
def test_keys_or_store_that_cannot_be_used_are_one_line_exit_3_and_leave_no_key(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str, key_dir: str,
    named: str,
) -> None:
    (tmp_path / "notes.db").write_text("not a database\n")
    monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{store.format(tmp=tmp_path)}")
    monkeypatch.setenv("NERVENBAHN_KEY_DIR", key_dir.format(tmp=tmp_path))

    done = cli("case", "list")

    assert done.code == 3 and done.out == ""
    errors = [line for line in done.err.splitlines() if not line.startswith("{")]
    assert len(errors) == 1 and errors[0].startswith(named.format(tmp=tmp_path)), done.err
    assert not (tmp_path / "keys").exists() and not (tmp_path / "x").exists()
