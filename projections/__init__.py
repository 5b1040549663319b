"""Read models built from the case events (and the benefit applications' events), one per
consumer of the data.

The names below are imported on first use (PEP 562 `__getattr__`), not with the package:
importing one light module of it (`projections.storage`, `projections.errors`) would else
import every projection, their codecs and kafka-python, which a CLI command that reads no read
model does not need (it took a third of a CLI start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from projections.benefit_applications import BenefitApplicationsProjection
    from projections.branch_office import BranchOfficeProjection
    from projections.catalogue import PROJECTIONS, READ_MODELS
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
    "ReportingProjection",
    "open_projection_store",
    "rebuild",
]

_WHERE = {
    "PROJECTIONS": "projections.catalogue",
    "READ_MODELS": "projections.catalogue",
    "BenefitApplicationsProjection": "projections.benefit_applications",
    "BranchOfficeProjection": "projections.branch_office",
    "Projection": "projections.framework",
    "RegionProjection": "projections.region",
    "ReportingProjection": "projections.reporting",
    "open_projection_store": "projections.framework",
    "rebuild": "projections.framework",
}


def __getattr__(name: str) -> Any:
    """One of `__all__`, imported from its module on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'projections' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
