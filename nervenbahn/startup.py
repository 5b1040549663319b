"""The start of a `nervenbahn` process (the script and `python -m nervenbahn`).

A command starts by importing the CLI and its command's modules: about 400 modules whose
objects live until the process exits. The cycle collector would walk them again and again
while they are imported (each collection of the oldest generation walks everything imported so
far), and once more at exit. So the collector is paused from the start until the command's
modules are imported (`imports_done`, called by the CLI's root callback before any command
runs, and at exit); the objects then alive are moved out of its sight (`gc.freeze`), and it
runs as usual for whatever the command itself allocates, in a short command as in `serve`.
The price: cycles that became garbage during the imports (about 1,000 objects) stay until
exit, where collecting them once would cost 20 ms.
Measured on 2 cores: 80-100 ms of a command's 0.45 s (benchmarks/cli_start.py).
"""

from __future__ import annotations

import gc

__all__ = ["imports_done", "main", "pause_collector"]

_paused = False


def pause_collector() -> None:
    """Pause the cycle collector until `imports_done` (if it runs: a caller that paused it
    itself keeps it paused)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def imports_done() -> None:
    """The command's modules are imported: freeze what is alive and resume the collector.
    Does nothing unless `pause_collector` paused it."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


def main() -> None:
    """Entry point of the `nervenbahn` script: `nervenbahn.cli.console_main` with the
    collector paused while it is imported."""
    pause_collector()
    try:
        from nervenbahn.cli import console_main

        console_main()
    finally:
        imports_done()
