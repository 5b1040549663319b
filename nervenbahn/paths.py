"""Where the files beside the event store live: read models, keys, logs, demo data."""

from __future__ import annotations

from pathlib import Path

from nervenbahn.config import StoreConfig

__all__ = ["projection_path", "store_folder"]


def store_folder(store: StoreConfig) -> Path:
    """The folder of a SQLite store, else `.nervenbahn` in the working directory."""
    return store.sqlite_path.parent if store.sqlite_path else Path(".nervenbahn")


def projection_path(store: StoreConfig, name: str) -> Path:
    """The SQLite database of a read model: `<store folder>/projections/<name>.db`."""
    return store_folder(store) / "projections" / f"{name}.db"
