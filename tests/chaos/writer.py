"""Writes cases into the store the environment names, from a process of its own (as a second
application would): `python -m tests.chaos.writer FIRST COUNT` opens, assesses and grants
COUNT cases (three events each), numbered from FIRST. Exits 0 when all are recorded, 1 with
the error on stderr when a command fails."""

from __future__ import annotations

import sys

from nervenbahn.cli import EXIT_NO_SPACE
from nervenbahn.cli.disk_full import disk_full
from nervenbahn.config import load_settings
from nervenbahn.container import build_service, close_service
from tests.bus.pipeline import open_supported_case


def main(argv: list[str]) -> int:
    """Write the cases; 0 if all are recorded, else the exit code of the failure."""
    first, count = int(argv[0]), int(argv[1])
    service = build_service(load_settings())
    try:
        for n in range(first, first + count):
            open_supported_case(service, n)
    except Exception as exc:
        full = disk_full(exc)
        print(f"error: {full or f'{type(exc).__name__}: {exc}'}", file=sys.stderr)
        return EXIT_NO_SPACE if full else 1
    finally:
        close_service(service)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
