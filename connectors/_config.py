"""The connectors' configuration file: one TOML table per connector (see `connectors.host`).

**One connector's mistake stops only that connector.** A table that is wrong (an unknown key,
a bad kind or class path), a class that does not import, or options its model refuses make that
connector *broken*: `read_config` keeps its error, `nervenbahn connectors list`, `check` and
`status` show it, running it is refused with that error — and every other connector runs
(issue 20: one typo in the file used to stop every connector). What leaves nothing to go on
stays fatal for the whole file: TOML that does not parse (the error names file, line, column
and reason) and a top-level key other than `connectors`.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from connectors._discovery import GROUP, installed_connectors
from connectors.errors import ConnectorConfigError
from connectors.options import OptionInfo, describe_options
from connectors.sdk import Sink, Source

__all__ = [
    "ConnectorConfig",
    "ConnectorConfigError",
    "ConnectorDescription",
    "ConnectorSpec",
    "OnError",
    "load_config",
    "parse_config",
    "read_config",
]

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
"""A connector's name: also its package name, its state's key and (with `-`) its group id."""
_CLASS = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_KEYS = {"kind", "class", "connector", "options", "description", "on_error"}
OnError = Literal["stop", "dead-letter"]
"""What a sink's run does with an event its `handle` fails on (see `connectors.host`)."""


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
    connector: str = ""
    """The installed connector (entry point of `connectors._discovery.GROUP`) it names, if it
    names one instead of a class; `class_path` is then the entry point's, or "" if no installed
    package registers that name."""
    on_error: OnError | None = None
    """A sink's error policy; None: "stop" if the sink keeps state (`Sink.keeps_state`),
    "dead-letter" otherwise."""

    def load(self) -> Source | Sink:
        """Import the class, check the options against its `Options` and build the connector;
        ConnectorConfigError (naming connector, key or option, and reason) if any of it
        fails."""
        cls = self.load_class()
        try:
            return cls(self.name, self.options)
        except ConnectorConfigError:
            raise  # the options refused by the declared model (OptionsError): named already
        except (KeyError, ValueError, TypeError) as exc:
            raise ConnectorConfigError(
                f"connectors.{self.name}.options: refused by {cls.__name__}: {exc}"
            ) from exc

    def load_class(self) -> type[Source] | type[Sink]:
        """The connector's class, imported and checked against the kind (the options are not
        checked: `describe` shows what a connector takes also when its options are wrong)."""
        where = f"connectors.{self.name}.class"
        if not self.class_path:
            installed = ", ".join(sorted(installed_connectors())) or "none"
            raise ConnectorConfigError(
                f"connectors.{self.name}.connector: no installed connector {self.connector!r} "
                f"(entry points {GROUP!r}: {installed}); pip install its package"
            )
        module_name, _, class_name = self.class_path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # any error importing someone's module is that connector's
            raise ConnectorConfigError(
                f"{where}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
            ) from exc
        cls = getattr(module, class_name, None)
        expected = Source if self.kind == "source" else Sink
        if not (isinstance(cls, type) and issubclass(cls, expected)):
            raise ConnectorConfigError(
                f"{where}: {self.class_path!r} is not a {expected.__name__} subclass "
                f"(kind = {self.kind!r})"
            )
        return cls

    def describe(self) -> ConnectorDescription:
        """What the connector is and takes (`nervenbahn connectors describe`)."""
        cls = self.load_class()
        doc = (cls.__doc__ or "").strip().split("\n\n")[0]
        return ConnectorDescription(
            name=self.name,
            kind=self.kind,
            class_path=self.class_path,
            description=self.description,
            summary=" ".join(doc.split()),
            dataset=cls.dataset if issubclass(cls, Sink) else None,
            options=describe_options(cls.Options),
        )


@dataclass(frozen=True)
class ConnectorDescription:
    """A configured connector and the options its class declares."""

    name: str
    kind: str
    class_path: str
    description: str
    """The configuration file's `description`."""
    summary: str
    """The first paragraph of the class's docstring."""
    dataset: str | None
    """A sink's dataset ("case-events", …); None for a source."""
    options: list[OptionInfo]


@dataclass(frozen=True)
class ConnectorConfig:
    """A configuration file as read: the connectors whose tables are right, and the error of
    each whose table is not (see the module docstring)."""

    specs: dict[str, ConnectorSpec] = field(default_factory=dict)
    broken: dict[str, ConnectorConfigError] = field(default_factory=dict)

    def names(self) -> list[str]:
        """Every configured connector, broken or not, by name."""
        return sorted({*self.specs, *self.broken})

    def spec(self, name: str) -> ConnectorSpec:
        """The connector `name`; its error if its table is wrong, or one naming the known."""
        if name in self.broken:
            raise self.broken[name]
        if name not in self.specs:
            known = ", ".join(self.names()) or "none"
            raise ConnectorConfigError(f"connectors.{name}: not configured (configured: {known})")
        return self.specs[name]

    def check(self, name: str | None = None) -> dict[str, ConnectorConfigError | None]:
        """Each connector (or only `name`) imported, its options validated and built, without
        running it: None if it is right, else its error."""
        found: dict[str, ConnectorConfigError | None] = {}
        for each in [name] if name else self.names():
            try:
                self.spec(each).load()
                found[each] = None
            except ConnectorConfigError as exc:
                found[each] = exc
        return found


def load_config(path: Path) -> dict[str, ConnectorSpec]:
    """The connectors of the file, all or nothing: the error of the first broken one (by name)
    if any is (an absent file configures no connector). The host reads the file with
    `read_config`, which keeps the broken ones apart instead."""
    config = read_config(path)
    for name in sorted(config.broken):
        raise config.broken[name]
    return config.specs


def read_config(path: Path) -> ConnectorConfig:
    """Read and check the configuration file table by table; an absent file configures no
    connector. ConnectorConfigError only if the file as a whole cannot be used."""
    if not path.exists():
        return ConnectorConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConnectorConfigError(_toml_error(path, exc)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConnectorConfigError(f"{path}: cannot be read: {exc}") from exc
    return parse_config(data, base=path.resolve().parent, where=str(path))


def _toml_error(path: Path, exc: tomllib.TOMLDecodeError) -> str:
    """`<file> line L, column C: not valid TOML: <reason>` (tomllib puts the place at the end
    of its message, "(at line 3, column 9)"; at the front it is what an editor jumps to)."""
    text = str(exc)
    place = re.search(r"\s*\(at line (\d+), column (\d+)\)$", text)
    if place is None:
        return f"{path}: not valid TOML: {text}"
    reason = text[: place.start()]
    return f"{path} line {place[1]}, column {place[2]}: not valid TOML: {reason}"


def parse_config(data: dict[str, Any], *, base: Path, where: str) -> ConnectorConfig:
    """The connectors of a parsed configuration, checked table by table: a wrong table makes
    its connector broken, not the whole file."""
    unknown = sorted(set(data) - {"connectors"})
    if unknown:
        raise ConnectorConfigError(
            f"{where}: unknown top-level key {unknown[0]!r}; use [connectors.NAME] tables"
        )
    tables = data.get("connectors", {})
    if not isinstance(tables, dict):
        raise ConnectorConfigError(f"{where}: 'connectors' must be a table of [connectors.NAME]")
    config = ConnectorConfig()
    for name, table in tables.items():
        try:
            config.specs[name] = _spec(name, table, base)
        except ConnectorConfigError as exc:
            config.broken[name] = exc
    return config


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
    class_path, connector = _target(here, name, table)
    options = table.get("options", {})
    if not isinstance(options, dict):
        raise ConnectorConfigError(f"{here}.options: must be a table ([{here}.options])")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise ConnectorConfigError(f"{here}.description: must be a string")
    return ConnectorSpec(name, kind, class_path, options, description, base, connector,
                         _on_error(here, kind, table.get("on_error")))


def _target(here: str, name: str, table: dict[str, Any]) -> tuple[str, str]:
    """(class path, installed connector's name or ""): `class = "module:Class"`, else the
    installed connector `connector = "NAME"` (default: the table's name), found by its entry
    point; both at once would be ambiguous."""
    if "class" in table and "connector" in table:
        raise ConnectorConfigError(f"{here}.connector: give either class or connector, not both")
    if "class" in table:
        class_path = table["class"]
        if not isinstance(class_path, str) or not _CLASS.fullmatch(class_path):
            raise ConnectorConfigError(
                f"{here}.class: must be 'package.module:ClassName', not {class_path!r}"
            )
        return class_path, ""
    connector = table.get("connector", name)
    if not isinstance(connector, str) or not connector:
        raise ConnectorConfigError(
            f"{here}.connector: must be the name of an installed connector, not {connector!r}"
        )
    return installed_connectors().get(connector, ""), connector


def _on_error(here: str, kind: str, value: Any) -> OnError | None:
    """The `on_error` key: only for sinks (a source records a refused command and goes on)."""
    if value is None:
        return None
    if kind != "sink":
        raise ConnectorConfigError(
            f"{here}.on_error: only for sinks; a source records a refused command as an error "
            "of its item and goes on"
        )
    if value not in ("stop", "dead-letter"):
        raise ConnectorConfigError(
            f"{here}.on_error: must be 'stop' or 'dead-letter', not {value!r}"
        )
    return "stop" if value == "stop" else "dead-letter"
