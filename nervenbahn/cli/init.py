"""`nervenbahn init`: create the keys of a SQLite store, the one step that makes key files.

Reading the settings never creates anything; a command that needs a key that is not there
yet fails telling the user to run this command. It creates, in the store's key folder under
NERVENBAHN_KEY_DIR (0700), the master, signing and reporting keys (0600) that are neither
configured nor already there, and prints what it created. Running it again changes nothing.
A PostgreSQL store has no key files: its keys are configured (NERVENBAHN_MASTER_KEY …), and
`init` checks that each is, naming those that are not (exit 3).
`nervenbahn demo` takes the same step (`nervenbahn.keyfiles.create_keys`).
"""

from __future__ import annotations

import typer

from nervenbahn.keyfiles import create_keys

from .render import emit_json
from .session import session

__all__ = ["init"]


def init(ctx: typer.Context) -> None:
    """Create the store's missing key files (idempotent); print what was created."""
    rt = session(ctx)
    created = create_keys(rt.settings)
    if rt.as_json:
        emit_json(rt.console, {"store": rt.settings.store.describe(),
                               "created": [str(path) for path in created]})
        return
    if not created:
        rt.console.print(f"nothing to create for {rt.settings.store.describe()}: its keys "
                         "are in place or configured")
        return
    rt.console.print(f"created for {rt.settings.store.describe()}:")
    for path in created:
        rt.console.print(f"  {path}")
