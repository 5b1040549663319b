"""The HTTP API: queries on each read model, scoped by API key, personal-data reads logged."""

from nervenbahn.api.app import create_app
from nervenbahn.api.context import ApiContext, build_api_context

__all__ = ["ApiContext", "build_api_context", "create_app"]
