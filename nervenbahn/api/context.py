"""What the HTTP API needs, handed in by the composition root: `ApiContext`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from domain.personal_data import PersonalDataVault
from domain.reference import BranchOffice, ReferenceData, load_branch_offices
from domain.service import CaseService
from nervenbahn.api.access_log import AccessLog
from nervenbahn.api.access_log_sqlite import SQLiteAccessLog
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.settings import ApiSettings, load_api_settings
from nervenbahn.config import Settings
from nervenbahn.paths import projection_path

__all__ = ["ApiContext", "build_api_context", "utc_now"]


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ApiContext:
    """The read models, the vault, the key registry, the access log, the branch offices and
    the reference data (regions, municipality names), a clock."""

    region_db: Path
    branch_office_db: Path
    reporting_db: Path
    vault: PersonalDataVault
    keys: ApiKeyRegistry
    access_log: AccessLog
    branch_offices: Mapping[str, BranchOffice]
    reference: ReferenceData
    clock: Callable[[], datetime] = field(default=utc_now)

    def close(self) -> None:
        """Close the access log (the vault belongs to the case service)."""
        self.access_log.close()


def build_api_context(
    settings: Settings, service: CaseService, api: ApiSettings | None = None
) -> ApiContext:
    """The API's context on the configured store: read models beside it, its vault."""

    api = api or load_api_settings(settings.store)
    return ApiContext(
        region_db=projection_path(settings.store, "region"),
        branch_office_db=projection_path(settings.store, "branch_office"),
        reporting_db=projection_path(settings.store, "reporting"),
        vault=service.vault,
        keys=ApiKeyRegistry(api.api_keys),
        access_log=SQLiteAccessLog(api.access_log),
        branch_offices=load_branch_offices(),
        reference=service.reference,
    )
