"""What every part of `nervenbahn demo` shares: the container and the console to print to.

The demo is an entrypoint of its own beside the CLI: it takes its parts from the container
(`nervenbahn.container`) and never imports `nervenbahn.cli` (the CLI imports the demo).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console

from domain.application.cases import CaseService
from nervenbahn.config import Settings
from nervenbahn.container import Container

__all__ = ["DemoSession"]


@dataclass
class DemoSession:
    """The container of the demo's process and its console."""

    container: Container
    console: Console

    @property
    def settings(self) -> Settings:
        """The container's settings."""
        return self.container.settings

    @property
    def service(self) -> CaseService:
        """The case service (opened on first use)."""
        return self.container.service

    def close(self) -> None:
        """Close what the container opened (it opens it again on next use)."""
        self.container.close()
