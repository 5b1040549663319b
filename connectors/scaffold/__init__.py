"""`nervenbahn connector new NAME --kind source|sink`: a working connector and its tests.

A source template reads a JSON Lines inbox folder (one intake per line) and opens cases; a sink
template writes one CSV line per case event to an outbox folder, exactly once. Both pass their
generated tests as written; adapt them from there (docs/connectors.md).
"""

from __future__ import annotations

import keyword
from importlib import resources
from pathlib import Path
from string import Template

from connectors._config import NAME
from connectors.errors import ConnectorError

__all__ = ["ScaffoldError", "config_entry", "write_connector"]

KINDS = ("source", "sink")


class ScaffoldError(ConnectorError, ValueError):
    """The connector cannot be written: a bad name or kind, or it exists already."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def class_name(name: str, kind: str) -> str:
    """`front_office`, source → `FrontOfficeSource`."""
    return "".join(part.capitalize() for part in name.split("_") if part) + kind.capitalize()


def config_entry(name: str, kind: str) -> str:
    """The table to add to the connectors file for the new connector."""
    return _render(f"{kind}.toml.tmpl", name, kind)


def write_connector(name: str, kind: str, into: Path) -> list[Path]:
    """Write `connectors/<name>/__init__.py` and `tests/connectors/test_<name>.py` under `into`."""
    _check(name, kind, into)
    package = into / "connectors" / name
    test = into / "tests" / "connectors" / f"test_{name}.py"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(_render(f"{kind}.py.tmpl", name, kind), encoding="utf-8")
    test.parent.mkdir(parents=True, exist_ok=True)
    test.write_text(_render(f"test_{kind}.py.tmpl", name, kind), encoding="utf-8")
    return [package / "__init__.py", test]


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
    for existing in (into / "connectors" / name, into / "tests" / "connectors" / f"test_{name}.py"):
        if existing.exists():
            raise ScaffoldError("name", f"{existing} exists already; choose another name")


def _render(template: str, name: str, kind: str) -> str:
    text = resources.files(__package__).joinpath("templates", template).read_text("utf-8")
    return Template(text).substitute(name=name, Class=class_name(name, kind))
