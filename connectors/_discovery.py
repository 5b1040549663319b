"""Installed connectors: the entry points of the group `nervenbahn.connectors`.

A connector is a normal Python package, installed with pip into the environment nervenbahn
runs in, that names its class in its own `pyproject.toml`::

    [project.entry-points."nervenbahn.connectors"]
    front_office = "front_office:FrontOfficeSource"

The connectors file then names it instead of a class path (`connector = "front_office"`, or
nothing: the table's name is the default). Why entry points and not `class = "module:Class"`
alone: a class path only works if the module is importable from wherever the command runs —
inside the checkout it was, outside it a tutorial's connector failed with `No module named
'connectors.front_office'` (issue 20). An installed package is importable from anywhere, and
its entry point says which of its classes is the connector, so the configuration does not
repeat the package's inner layout. nervenbahn's own connectors are registered the same way
(pyproject.toml), so `connector = "payments"` works as well as their class paths.

Only the entry point's *metadata* is read here (no import): `connectors list` shows what is
configured without importing anything, and a package that is not installed is one clear error
of that connector when it is loaded, not of the whole file.
"""

from __future__ import annotations

from importlib.metadata import entry_points

__all__ = ["GROUP", "installed_connectors"]

GROUP = "nervenbahn.connectors"
"""The entry-point group of connector classes: name → "module:Class"."""


def installed_connectors() -> dict[str, str]:
    """Every installed connector: entry-point name → "module:Class" (read, not imported).

    Two distributions that register the same name: the first one found wins, as for every
    entry point (`importlib.metadata`); `pip` warns of neither, so keep names distinct."""
    found: dict[str, str] = {}
    for point in entry_points(group=GROUP):
        found.setdefault(point.name, point.value)
    return found
