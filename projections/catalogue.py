"""Every read model by name (imported by `projections` on first use of these names)."""

from __future__ import annotations

from projections.benefit_applications import BenefitApplicationsProjection
from projections.branch_office import BranchOfficeProjection
from projections.framework import Projection
from projections.region import RegionProjection
from projections.reporting import ReportingProjection

__all__ = ["PROJECTIONS", "READ_MODELS"]

PROJECTIONS: dict[str, type[Projection]] = {
    RegionProjection.name: RegionProjection,
    BranchOfficeProjection.name: BranchOfficeProjection,
    ReportingProjection.name: ReportingProjection,
}
"""Every projection by name."""

READ_MODELS: dict[str, type[Projection]] = {
    **PROJECTIONS,
    BenefitApplicationsProjection.name: BenefitApplicationsProjection,
}
"""Every read model by name: those fed from the bus (`PROJECTIONS`, a consumer each in
`serve`) and the benefit applications', rebuilt from the benefits store until its events are
published (then it moves into `PROJECTIONS`)."""
