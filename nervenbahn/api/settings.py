"""Where the API keeps its files: the API-key registry and the access log; how long the
access log keeps its entries.

`NERVENBAHN_API_KEYS` (default `<store folder>/api-keys.json`) and `NERVENBAHN_ACCESS_LOG`
(default `<store folder>/access-log.db`); the store folder is the SQLite store's folder, or
`.nervenbahn` for PostgreSQL — the same folder the read models live under.
`NERVENBAHN_ACCESS_LOG_RETENTION_DAYS` (default 365) is how many days an access-log entry is
kept before `nervenbahn audit access-purge` removes it; less than 365 is refused
(Art. 4 para. 5 DSV / OPDo: at least one year).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from nervenbahn.api.access_log import (
    MINIMUM_RETENTION_DAYS,
    AccessLogRetentionError,
    check_retention,
)
from nervenbahn.config import DEFAULT_STORE, ConfigError, StoreConfig
from nervenbahn.paths import store_folder

__all__ = ["ApiSettings", "load_api_settings", "store_folder"]


class ApiSettings(BaseModel):
    """The API's own files."""

    model_config = ConfigDict(frozen=True)

    api_keys: Path
    access_log: Path
    access_log_retention_days: int = MINIMUM_RETENTION_DAYS

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
        access_log_retention_days=_retention_days(env.get(_RETENTION, "")),
    )


_RETENTION = "NERVENBAHN_ACCESS_LOG_RETENTION_DAYS"


def _retention_days(text: str) -> int:
    """The retention in days (default one year); ConfigError if malformed or too short."""
    if not text.strip():
        return MINIMUM_RETENTION_DAYS
    try:
        days = int(text.strip())
    except ValueError:
        raise ConfigError(f"{_RETENTION}: {text!r} is not a whole number of days") from None
    try:
        return check_retention(days, _RETENTION)
    except AccessLogRetentionError as exc:
        raise ConfigError(str(exc)) from None
