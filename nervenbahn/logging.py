"""structlog set-up: JSON lines when not on a terminal, readable lines on one."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

__all__ = ["configure_logging"]


def _printer(stream: object) -> structlog.typing.WrappedLogger:
    """Loggers that write to `stream`, or to whatever `sys.stderr` is when they log."""
    if stream is not None:
        return structlog.PrintLoggerFactory(file=stream)  # type: ignore[arg-type]
    return lambda *_: structlog.PrintLogger(file=sys.stderr)


def configure_logging(
    fmt: Literal["auto", "json", "console"] = "auto", level: str = "info", stream: object = None
) -> None:
    """Configure structlog for the process; logs go to stderr (stdout is for results)."""
    out = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not getattr(out, "isatty", lambda: False)())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_printer(stream),
        cache_logger_on_first_use=False,
    )
