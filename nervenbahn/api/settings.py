"""Where the API keeps its files: the API-key registry and the access log; how long the
access log keeps its entries.

`NERVENBAHN_API_KEYS` (default `<store folder>/api-keys.json`) and `NERVENBAHN_ACCESS_LOG`
(default `<store folder>/access-log.db`); the store folder is the SQLite store's folder, or
`.nervenbahn` for PostgreSQL — the same folder the read models live under.
`NERVENBAHN_ACCESS_LOG_RETENTION_DAYS` (default 365) is how many days an access-log entry is
kept before `nervenbahn audit access-purge` removes it; less than 365 is refused
(Art. 4 para. 5 DSV / OPDo: at least one year).

They are the `api` section of the settings (`nervenbahn.config`, the one module that reads
the environment): `Settings.api`.
"""

from __future__ import annotations

from collections.abc import Mapping

from nervenbahn.config import ApiSettings, load_settings
from nervenbahn.paths import store_folder

__all__ = ["ApiSettings", "load_api_settings", "store_folder"]


def load_api_settings(environ: Mapping[str, str] | None = None) -> ApiSettings:
    """The API section of the settings read from `environ` (default: the process
    environment); for commands that need nothing else (managing API keys)."""
    return load_settings(environ).api
