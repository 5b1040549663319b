"""The CLI's exit codes, in a module of their own so that a command module can use them
without importing the root CLI (and the root CLI without importing the command modules)."""

from __future__ import annotations

__all__ = [
    "EXIT_BUSY",
    "EXIT_CHAIN_BROKEN",
    "EXIT_DEGRADED",
    "EXIT_FAILED",
    "EXIT_INCOMPLETE",
    "EXIT_INTERNAL",
    "EXIT_NOT_INITIALISED",
    "EXIT_NO_SPACE",
    "EXIT_REFUSED",
    "EXIT_UNAVAILABLE",
]

EXIT_REFUSED = 1
EXIT_UNAVAILABLE = 3
EXIT_INCOMPLETE = 4
"""`person erase`: the key is destroyed, but a place could not be reached."""
EXIT_CHAIN_BROKEN = 4
"""A read met an event its hash chain does not vouch for (`nervenbahn.audit.read_check`):
nothing is shown; the same code as `audit verify`'s `EXIT_CHAIN_BROKEN`."""
EXIT_DEGRADED = 5
"""`connectors run`: a sink's run went through but dead-lettered events (`connectors replay`
after a fix); `connectors replay`: dead letters are left. Its output lacks them until they are
replayed."""
EXIT_FAILED = 6
"""`connectors run`: a sink (on_error = "stop") failed on an event and stopped there, nothing
after it committed: fix the sink and run it again (the event is handled again)."""
EXIT_BUSY = 75
"""Another process holds what the command needs (a connector's run): try again later
(sysexits' EX_TEMPFAIL)."""
EXIT_INTERNAL = 70
"""Only for what nobody foresaw; the error is logged with its traceback."""
EXIT_NO_SPACE = 74
"""The disk (or quota) is full: free space and run the command again (sysexits' EX_IOERR).
Files a later run depends on are written all or nothing, so nothing half-written is left."""
EXIT_NOT_INITIALISED = 78
"""A key the command needs does not exist yet: run `nervenbahn init` (sysexits' EX_CONFIG)."""
