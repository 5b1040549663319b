"""What the HTTP API needs, handed in by the composition root: `ApiContext`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from bus.kafka_settings import KafkaSettings
from bus.registry import SchemaRegistry
from domain.application.benefits import BenefitService
from domain.application.cases import CaseService
from domain.personal_data import PersonalDataVault
from domain.reference import BranchOffice, ReferenceData, load_branch_offices
from nervenbahn.accounts import UserStore
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.settings import ApiSettings
from nervenbahn.audit.access_log import AccessLog
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.audit.status import verify_installation
from nervenbahn.audit.verify import AuditReport
from nervenbahn.config import DEFAULT_API_THREADS, MetricsAccess, Settings
from nervenbahn.health import Readiness
from nervenbahn.metrics import Metrics
from nervenbahn.paths import read_model_target
from projections.read_connections import close_read_connections
from projections.storage import ReadModelTarget

__all__ = ["ApiContext", "build_api_context", "utc_now"]


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ApiContext:
    """The read models, the vault, the key registry, the access log, the branch offices and
    the reference data (regions, municipality names), a clock."""

    region_db: ReadModelTarget
    branch_office_db: ReadModelTarget
    reporting_db: ReadModelTarget
    vault: PersonalDataVault
    keys: ApiKeyRegistry
    access_log: AccessLog
    branch_offices: Mapping[str, BranchOffice]
    reference: ReferenceData
    clock: Callable[[], datetime] = field(default=utc_now)
    service: CaseService | None = None
    """The case service, for the auditor's bitemporal queries on the event store (None: those
    endpoints answer 503)."""
    readiness: Readiness | None = None
    """The checks of `GET /health/ready` (None: it answers ready with no checks)."""
    metrics: Metrics = field(default_factory=Metrics)
    """This process's metrics (`GET /metrics`): the container's, or one of the app's own."""
    metrics_access: MetricsAccess = "open"
    """Whether `GET /metrics` needs an API key (NERVENBAHN_METRICS_ACCESS)."""
    threads: int = DEFAULT_API_THREADS
    """How many requests' work runs at once in worker threads (NERVENBAHN_API_THREADS)."""
    registry: SchemaRegistry | None = None
    """The schema registry served read-only under /registry (None: not served)."""
    kafka: KafkaSettings = field(default_factory=lambda: KafkaSettings.model_validate({}))
    """The bus's settings (topic prefix, partitions, brokers), for `GET /asyncapi.json`."""
    benefits: Callable[[], BenefitService] | None = None
    """The benefits service, opened on first use, for the canton's backlog figures (None:
    that endpoint answers 503)."""
    benefits_target_months: int = 3
    """The processing target of the backlog figures (NERVENBAHN_BENEFITS_TARGET_MONTHS)."""
    benefit_applications_db: ReadModelTarget | None = None
    """The branch offices' read model of benefit applications (None: its endpoints answer
    503)."""
    refresh_benefit_applications: Callable[[], object] | None = None
    """Brings that read model up to date before a read (until a consumer on the
    applications' topic does: `Container.refresh_read_model`); None: read as it is."""
    users: UserStore | None = None
    """The web application's accounts and sessions (None: no web application is served)."""
    secure_cookies: bool = True
    """NERVENBAHN_WEB_SECURE_COOKIES."""
    verify_chains: Callable[[], AuditReport] | None = None
    """Verifies the store's hash chains and the access log against the signed checkpoints,
    for the auditor's page of the web app (None: that page says it is not available)."""

    def close(self) -> None:
        """Close the access log, the accounts and the read models' pooled connections (the
        vault belongs to the case service)."""
        close_read_connections()
        self.access_log.close()
        if self.users is not None:
            self.users.close()


def build_api_context(
    settings: Settings,
    service: CaseService,
    api: ApiSettings | None = None,
    *,
    metrics: Metrics | None = None,
    registry: SchemaRegistry | None = None,
    kafka: KafkaSettings | None = None,
    benefits: Callable[[], BenefitService] | None = None,
    refresh_benefit_applications: Callable[[], object] | None = None,
) -> ApiContext:
    """The API's context on the configured store: its read models (beside it, or in
    NERVENBAHN_PROJECTIONS_STORE), its vault, its metrics (`metrics`, else its own), the
    schema registry to serve under /registry (`registry`, else none), the bus `GET
    /asyncapi.json` describes (`kafka`: the broker in use, else NERVENBAHN_KAFKA), the
    benefits service of the backlog figures (`benefits`, opened on first use; else none) and
    what brings the benefit applications' read model up to date before a read."""

    api = api or settings.api
    return ApiContext(
        region_db=read_model_target(settings, "region"),
        branch_office_db=read_model_target(settings, "branch_office"),
        reporting_db=read_model_target(settings, "reporting"),
        vault=service.vault,
        keys=ApiKeyRegistry(api.api_keys),
        access_log=SQLiteAccessLog(api.access_log),
        branch_offices=load_branch_offices(),
        reference=service.reference,
        service=service,
        readiness=Readiness(settings.store, api.access_log, api.ready_max_lag),
        metrics=metrics or Metrics(),
        metrics_access=api.metrics_access,
        threads=api.threads,
        registry=registry,
        kafka=kafka or settings.kafka,
        benefits=benefits,
        benefits_target_months=settings.benefits.target_months,
        benefit_applications_db=read_model_target(settings, "benefit_applications"),
        refresh_benefit_applications=refresh_benefit_applications,
        users=UserStore(settings.web.users, session_minutes=settings.web.session_minutes,
                        lockout_attempts=settings.web.lockout_attempts,
                        lockout_minutes=settings.web.lockout_minutes),
        secure_cookies=settings.web.secure_cookies,
        verify_chains=partial(verify_installation, settings, api.access_log),
    )
