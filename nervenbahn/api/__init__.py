"""The HTTP API: queries on each read model, scoped by API key, personal-data reads logged.

The app and its context are imported on first use: `nervenbahn.audit` (the access log's
storage) imports this package's access-log port, and an eager import of the app here would
lead back into the half-imported audit module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nervenbahn.api.app import create_app
    from nervenbahn.api.context import ApiContext, build_api_context

__all__ = ["ApiContext", "build_api_context", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from nervenbahn.api.app import create_app

        return create_app
    if name in ("ApiContext", "build_api_context"):
        from nervenbahn.api import context

        return getattr(context, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
