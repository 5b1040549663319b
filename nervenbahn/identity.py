"""The identity of this process as the operating system established it: the user of its uid
(from the password database, never from `USER`/`LOGNAME`, which anyone can set) and the host.

Every command a process records without an identity of its own (the CLI, connectors, the
server's own work) carries it beside the actor it declares (`domain.identity`). A web request
records the signed-in account's user name instead (`nervenbahn.web.actions`).
"""

from __future__ import annotations

import os
import pwd
import socket
from functools import cache

from domain.identity import EstablishedIdentity

__all__ = ["process_identity", "web_identity"]


@cache
def process_identity() -> EstablishedIdentity:
    """`os:<user>@<host>`: the user name of the process's real uid (`uid:<n>` if the password
    database has no entry for it, as in some containers) and the host name."""
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid:{uid}"
    return EstablishedIdentity("os", user, socket.gethostname())


def web_identity(username: str) -> EstablishedIdentity:
    """`web:<user name>`: the signed-in account of the web app."""
    return EstablishedIdentity("web", username)
