"""Read models built from the case events, one per consumer of the data."""

from projections.branch_office import BranchOfficeProjection
from projections.framework import Projection, open_projection_store, rebuild
from projections.region import RegionProjection
from projections.reporting import ReportingProjection

__all__ = [
    "PROJECTIONS",
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
