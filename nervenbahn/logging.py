"""structlog set-up: JSON lines when not on a terminal, readable lines on one.

Exceptions are rendered as plain tracebacks: never with local variables (they hold the
personal data a command was working on) and never through Rich's pretty printer.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Literal

import structlog

from nervenbahn.config import load_log_settings

__all__ = ["LogFormat", "configure_logging", "configure_logging_from_environment"]

LogFormat = Literal["auto", "json", "console"]


def _printer(stream: object) -> structlog.typing.WrappedLogger:
    """Loggers that write to `stream`, or to whatever `sys.stderr` is when they log."""
    if stream is not None:
        return structlog.PrintLoggerFactory(file=stream)  # type: ignore[arg-type]
    return lambda *_: structlog.PrintLogger(file=sys.stderr)


def configure_logging(fmt: LogFormat = "auto", level: str = "info", stream: object = None) -> None:
    """Configure structlog for the process; logs go to stderr (stdout is for results)."""
    out = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not getattr(out, "isatty", lambda: False)())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
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


def configure_logging_from_environment(env: Mapping[str, str] | None = None) -> None:
    """Configure logging from NERVENBAHN_LOG_FORMAT and NERVENBAHN_LOG_LEVEL (read by the
    settings module), before anything else can log; a value that is not valid falls back to
    the default here (loading the settings reports it as a configuration error)."""
    settings = load_log_settings(env)
    configure_logging(settings.format, settings.level)
