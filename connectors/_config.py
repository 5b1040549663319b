"""The connectors' configuration file: one TOML table per connector (see `connectors.host`)."""

from __future__ import annotations

import importlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from connectors.errors import ConnectorError
from connectors.sdk import Sink, Source

__all__ = ["ConnectorConfigError", "ConnectorSpec", "load_config", "parse_config"]

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
"""A connector's name: also its package name, its state's key and (with `-`) its group id."""
_CLASS = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_KEYS = {"kind", "class", "options", "description"}


class ConnectorConfigError(ConnectorError):
    """The connectors' configuration file is missing, malformed or names what does not exist.

    (Not a subclass of `nervenbahn.config.ConfigError`: connectors do not import the composition
    root; the CLI maps both to the same exit code.)"""


@dataclass(frozen=True)
class ConnectorSpec:
    """One configured connector: its name, kind, class and options."""

    name: str
    kind: Literal["source", "sink"]
    class_path: str
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    base: Path = Path(".")
    """The configuration file's folder (relative paths in options are relative to it)."""

    def load(self) -> Source | Sink:
        """Import the class and build the connector; ConnectorConfigError if that fails."""
        where = f"connectors.{self.name}.class"
        module_name, _, class_name = self.class_path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConnectorConfigError(f"{where}: cannot import {module_name!r}: {exc}") from exc
        cls = getattr(module, class_name, None)
        expected = Source if self.kind == "source" else Sink
        if not (isinstance(cls, type) and issubclass(cls, expected)):
            raise ConnectorConfigError(
                f"{where}: {self.class_path!r} is not a {expected.__name__} subclass "
                f"(kind = {self.kind!r})"
            )
        try:
            return cls(self.name, self.options)
        except (KeyError, ValueError, TypeError) as exc:
            raise ConnectorConfigError(
                f"connectors.{self.name}.options: refused by {class_name}: {exc}"
            ) from exc


def load_config(path: Path) -> dict[str, ConnectorSpec]:
    """Read and check the configuration file; an absent file configures no connector."""
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConnectorConfigError(f"{path}: not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConnectorConfigError(f"{path}: cannot be read: {exc}") from exc
    return parse_config(data, base=path.resolve().parent, where=str(path))


def parse_config(data: dict[str, Any], *, base: Path, where: str) -> dict[str, ConnectorSpec]:
    """The connectors of a parsed configuration, checked key by key."""
    unknown = sorted(set(data) - {"connectors"})
    if unknown:
        raise ConnectorConfigError(
            f"{where}: unknown top-level key {unknown[0]!r}; use [connectors.NAME] tables"
        )
    tables = data.get("connectors", {})
    if not isinstance(tables, dict):
        raise ConnectorConfigError(f"{where}: 'connectors' must be a table of [connectors.NAME]")
    return {name: _spec(name, table, base) for name, table in tables.items()}


def _spec(name: str, table: Any, base: Path) -> ConnectorSpec:
    here = f"connectors.{name}"
    if not NAME.fullmatch(name):
        raise ConnectorConfigError(
            f"{here}: the name must be lower-case letters, digits and '_', starting with a "
            "letter, at most 40 characters"
        )
    if not isinstance(table, dict):
        raise ConnectorConfigError(f"{here}: must be a table with kind, class and options")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConnectorConfigError(
            f"{here}.{unknown[0]}: unknown key; allowed: {', '.join(sorted(_KEYS))}"
        )
    kind = table.get("kind")
    if kind not in ("source", "sink"):
        raise ConnectorConfigError(f"{here}.kind: must be 'source' or 'sink', not {kind!r}")
    class_path = table.get("class")
    if not isinstance(class_path, str) or not _CLASS.fullmatch(class_path):
        raise ConnectorConfigError(
            f"{here}.class: must be 'package.module:ClassName', not {class_path!r}"
        )
    options = table.get("options", {})
    if not isinstance(options, dict):
        raise ConnectorConfigError(f"{here}.options: must be a table ([{here}.options])")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise ConnectorConfigError(f"{here}.description: must be a string")
    return ConnectorSpec(name, kind, class_path, options, description, base)
