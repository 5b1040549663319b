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

__all__ = ["imports_done", "main", "pause_collector", "settle"]

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


def settle() -> None:
    """A long-running process (`serve`) has built what it keeps until it stops (the
    container, the app and its routes' validators, the read models' connections): the garbage
    of building it collected once, and the rest frozen, so that the collector's full
    collections no longer walk it. Without this, a full collection in the API's process took
    73 ms (every request waiting meanwhile) and made the tail: 16 clients' p99 125-137 ms,
    with it 66-86 ms (benchmarks/read_models.py, A/B in one hour)."""
    gc.collect()
    gc.freeze()


def main() -> None:
    """Entry point of the `nervenbahn` script: `nervenbahn.cli.console_main` with the
    collector paused while it is imported."""
    pause_collector()
    try:
        from nervenbahn.cli import console_main

        console_main()
    finally:
        imports_done()
