"""Where the API keeps its files: the API-key registry and the access log.

`NERVENBAHN_API_KEYS` (default `<store folder>/api-keys.json`) and `NERVENBAHN_ACCESS_LOG`
(default `<store folder>/access-log.db`); the store folder is the SQLite store's folder, or
`.nervenbahn` for PostgreSQL — the same folder the read models live under.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from nervenbahn.config import DEFAULT_STORE, StoreConfig
from nervenbahn.paths import store_folder

__all__ = ["ApiSettings", "load_api_settings", "store_folder"]


class ApiSettings(BaseModel):
    """The API's own files."""

    model_config = ConfigDict(frozen=True)

    api_keys: Path
    access_log: Path



def load_api_settings(
    store: StoreConfig | None = None, environ: Mapping[str, str] | None = None
) -> ApiSettings:
    """The API's files from `environ` (default: the process environment).

    Without `store`, NERVENBAHN_STORE is parsed: managing keys needs no master key.
    """
    env = os.environ if environ is None else environ
    if store is None:
        store = StoreConfig.parse(env.get("NERVENBAHN_STORE", DEFAULT_STORE))
    folder = store_folder(store)
    return ApiSettings(
        api_keys=Path(env.get("NERVENBAHN_API_KEYS") or folder / "api-keys.json"),
        access_log=Path(env.get("NERVENBAHN_ACCESS_LOG") or folder / "access-log.db"),
    )
