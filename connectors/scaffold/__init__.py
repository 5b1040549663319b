"""`nervenbahn connector new NAME --kind source|sink`: a connector package and its tests.

It writes a *package of its own* in a folder of the user's choice, outside any checkout of
nervenbahn (issue 20: a connector written into the checkout's `connectors/` worked only there,
its tests only with the checkout's fixtures)::

    NAME/
      pyproject.toml        depends on nervenbahn, registers the entry point
                            (group "nervenbahn.connectors", NAME = "NAME:Class"), loads the
                            test harness for pytest (`-p nervenbahn.testing`), ruff's settings
      src/NAME/__init__.py  the connector
      tests/test_NAME.py    its tests, on the harness's store, host and broker

`pip install -e NAME` into the environment nervenbahn runs in makes it a connector the
connectors file names by `connector = "NAME"`; `pytest` in the folder runs its tests. A source
template reads a JSON Lines inbox folder (one intake per line) and opens cases; a sink template
writes one CSV line per case event to an outbox folder, exactly once. Both pass their tests as
written and are clean under the project's ruff settings (line length 100, also for a name of
40 characters); adapt them from there (docs/connectors.md).
"""

from __future__ import annotations

import importlib.util
import keyword
import sys
from importlib import resources
from pathlib import Path
from string import Template

from connectors._config import NAME
from connectors.errors import ConnectorError

__all__ = ["ScaffoldError", "config_entry", "distribution_name", "write_connector"]

KINDS = ("source", "sink")
DESCRIPTIONS = {
    "source": "Intakes from a JSON Lines inbox",
    "sink": "One CSV line per case event, in an outbox folder",
}


class ScaffoldError(ConnectorError, ValueError):
    """The connector cannot be written: a bad name or kind, or it exists already."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def class_name(name: str, kind: str) -> str:
    """`front_office`, source → `FrontOfficeSource`."""
    return "".join(part.capitalize() for part in name.split("_") if part) + kind.capitalize()


def distribution_name(name: str) -> str:
    """The package's name for pip: `front_office` → `front-office-connector`."""
    return name.replace("_", "-") + "-connector"


def config_entry(name: str, kind: str) -> str:
    """The table to add to the connectors file for the new connector."""
    return _render(f"{kind}.toml.tmpl", name, kind)


def write_connector(name: str, kind: str, into: Path) -> list[Path]:
    """Write the package folder `<into>/<name>/` (see the module docstring); the files
    written. Nothing is written if the name, the kind or the folder is refused."""
    _check(name, kind, into)
    package = into / name
    files = {
        package / "pyproject.toml": "pyproject.toml.tmpl",
        package / "src" / name / "__init__.py": f"{kind}.py.tmpl",
        package / "tests" / f"test_{name}.py": f"test_{kind}.py.tmpl",
    }
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_render(template, name, kind), encoding="utf-8")
    return list(files)


def _check(name: str, kind: str, into: Path) -> None:
    if kind not in KINDS:
        raise ScaffoldError("kind", f"{kind!r} is not a connector kind; use source or sink")
    if not NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ScaffoldError(
            "name",
            f"{name!r} is not a connector name: lower-case letters, digits and '_', starting "
            "with a letter, at most 40 characters, not a Python keyword",
        )
    if name in {"scaffold", "host", "runtime", "sdk"}:
        raise ScaffoldError("name", f"{name!r} is reserved by the connector SDK")
    if name in sys.stdlib_module_names or importlib.util.find_spec(name) is not None:
        raise ScaffoldError(
            "name",
            f"{name!r} is the name of a module installed already (the package is imported "
            "by its name); choose another name",
        )
    if (into / name).exists():
        raise ScaffoldError("name", f"{into / name} exists already; choose another name")


def _render(template: str, name: str, kind: str) -> str:
    text = resources.files(__package__).joinpath("templates", template).read_text("utf-8")
    return Template(text).substitute(
        name=name,
        Class=class_name(name, kind),
        dist=distribution_name(name),
        description=DESCRIPTIONS[kind],
    )
