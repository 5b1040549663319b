"""Where the files beside the event store live: read models, keys, logs, demo data.

Every file and folder made there is private to its owner (0600 / 0700, whatever the umask):
see `nervenbahn.private`, re-exported here for the composition root.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nervenbahn.config import Settings, StoreConfig
from nervenbahn.private import private_file, private_folder, private_umask, write_private

if TYPE_CHECKING:
    from projections.storage import ReadModelTarget

__all__ = [
    "private_file",
    "private_folder",
    "private_umask",
    "projection_path",
    "read_model_target",
    "store_folder",
    "write_private",
]


def store_folder(store: StoreConfig) -> Path:
    """The folder of a SQLite store, else `.nervenbahn` in the working directory."""
    return store.folder


def projection_path(store: StoreConfig, name: str) -> Path:
    """The SQLite database of a read model: `<store folder>/projections/<name>.db`."""
    return store_folder(store) / "projections" / f"{name}.db"


def read_model_target(settings: Settings, name: str) -> ReadModelTarget:
    """Where the read model `name` lives: the schema of NERVENBAHN_PROJECTIONS_STORE if set,
    else its SQLite file (`projection_path`)."""
    # Imported here: the read models' storage brings psycopg, which a case command on a
    # SQLite store (that imports this module for its key files) never needs.
    from projections.storage import PostgresReadModels

    store = settings.projections_store
    if store is None:
        return projection_path(settings.store, name)
    return PostgresReadModels(store.conninfo(), store.schema_name, store.pool_size,
                              store.read_timeout)
