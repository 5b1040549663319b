"""Read models built from the case events, one per consumer of the data."""

from projections.framework import Projection, open_projection_store, rebuild
from projections.region import RegionProjection

__all__ = ["PROJECTIONS", "Projection", "RegionProjection", "open_projection_store", "rebuild"]

PROJECTIONS: dict[str, type[Projection]] = {RegionProjection.name: RegionProjection}
"""Every projection by name."""
