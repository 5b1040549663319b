"""Only the settings module (nervenbahn/config.py) reads the environment.

Walks the syntax tree of every module of our packages and fails on any other module that
reads `os.environ` / `os.getenv` / `environ.get`, or holds a `NERVENBAHN_*` variable name as
a string of its own (as a key to look up); messages that merely mention a variable are fine.
The few exceptions are listed with their reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("domain", "bus", "projections", "connectors", "schemas", "nervenbahn")
SETTINGS_MODULE = "nervenbahn/config.py"
VARIABLE = re.compile(r"NERVENBAHN_[A-Z0-9_]+")

ALLOWED = {
    ("bus/broker.py", "os.environ"):
        "the embedded broker's child process inherits the environment (without Tansu's own "
        "variables): a pass-through to a subprocess, not a setting read",
    ("nervenbahn/cli/session.py", "os.environ"):
        "COLUMNS, the terminal's width, which every terminal program honours: not a setting "
        "of nervenbahn",
    ("nervenbahn/cli/bus.py", "NERVENBAHN_KAFKA"):
        "`nervenbahn broker --json` prints the variable to export: output, not a read",
    ("nervenbahn/testing.py", "os.environ"):
        "the connector test harness (a pytest plugin, moved out of tests/conftest.py) takes "
        "NERVENBAHN_TEST_KAFKA, the test suite's external broker: a setting of the tests, not "
        "of an installation",
    ("nervenbahn/testing.py", "NERVENBAHN_TEST_KAFKA"): "the same",
    ("nervenbahn/testing.py", "NERVENBAHN_STORE"):
        "the harness builds a test store's settings by giving load_settings their names (the "
        "settings module reads them): passed to the loader, not read from the environment",
    ("nervenbahn/testing.py", "NERVENBAHN_MASTER_KEY"): "the same",
    ("nervenbahn/testing.py", "NERVENBAHN_KEY_DIR"): "the same",
}
"""(module, what) → why it is allowed."""


def environment_reads(source: str) -> list[tuple[int, str]]:
    """(line, what) of each environment read or variable-name literal in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "os" and node.attr in ("environ", "environb", "getenv"):
                found.append((node.lineno, f"os.{node.attr}"))
            elif node.value.id == "environ" and node.attr == "get":
                found.append((node.lineno, "environ.get"))
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            for alias in node.names:
                if alias.name in ("environ", "environb", "getenv"):
                    found.append((node.lineno, f"os.{alias.name}"))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and VARIABLE.fullmatch(node.value)):
            found.append((node.lineno, node.value))
    return sorted(found)


def _modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_only_the_settings_module_reads_the_environment() -> None:
    offending = []
    for path in _modules():
        module = path.relative_to(ROOT).as_posix()
        if module == SETTINGS_MODULE:
            continue
        for line, what in environment_reads(path.read_text(encoding="utf-8")):
            if (module, what) not in ALLOWED:
                offending.append(f"{module}:{line}: {what}")

    assert offending == [], "read the environment in nervenbahn/config.py only"


def test_every_allowed_exception_is_still_needed() -> None:
    used = {(path.relative_to(ROOT).as_posix(), what)
            for path in _modules()
            for _, what in environment_reads(path.read_text(encoding="utf-8"))}

    assert set(ALLOWED) <= used


def test_the_settings_module_is_where_the_variables_are_read() -> None:
    reads = environment_reads((ROOT / SETTINGS_MODULE).read_text(encoding="utf-8"))

    assert ("os.environ" in {what for _, what in reads})


SOURCES = [
    ("import os\nos.environ['X']\n", [(2, "os.environ")]),
    ("import os\nos.getenv('X')\n", [(2, "os.getenv")]),
    ("from os import environ\nenviron.get('X')\n", [(1, "os.environ"), (2, "environ.get")]),
    ("from os import getenv as g\n", [(1, "os.getenv")]),
    ("env = {}\nenv.get('NERVENBAHN_STORE')\n", [(2, "NERVENBAHN_STORE")]),
    ("NAME = 'NERVENBAHN_ACTOR'\n", [(1, "NERVENBAHN_ACTOR")]),
    ("raise ValueError('NERVENBAHN_KAFKA: not host:port')\n", []),
    ("'''Set NERVENBAHN_STORE to a URL.'''\n", []),
    ("x = f'NERVENBAHN_KAFKA={1}'\n", []),
]


@pytest.mark.parametrize(("source", "expected"), SOURCES)
def test_the_scan_finds_reads_and_variable_names_but_not_mentions(
    source: str, expected: list[tuple[int, str]]
) -> None:
    assert environment_reads(source) == expected
