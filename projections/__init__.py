"""Read models built from the case events (and the benefit applications' events), one per
consumer of the data."""

from projections.benefit_applications import BenefitApplicationsProjection
from projections.branch_office import BranchOfficeProjection
from projections.framework import Projection, open_projection_store, rebuild
from projections.region import RegionProjection
from projections.reporting import ReportingProjection

__all__ = [
    "PROJECTIONS",
    "READ_MODELS",
    "BenefitApplicationsProjection",
    "BranchOfficeProjection",
    "Projection",
    "RegionProjection",
    "open_projection_store",
    "rebuild",
]

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
