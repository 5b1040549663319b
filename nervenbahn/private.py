"""Files and folders only their owner can read: folders 0700, files 0600, whatever the umask.

Everything nervenbahn writes beside the store holds personal data, keys or what leads to them
(events, read models, connector databases, inbox, outbox, reports, logs). The helpers here set
the mode when a file or folder is created (`os.open`/`mkdir` with the mode, then `chmod`, since
a umask can only take bits away and a pre-existing path keeps its mode), so no code path
depends on the umask of the shell that started it. SQLite gives a database's `-wal` and `-shm`
files the mode of the database file: pre-create the database with `private_file` before
connecting. `private_umask` is the belt to these braces for files made by libraries and child
processes (the embedded broker): the CLI runs every command under it.

A file a later run depends on (a key, the API-key registry, the store a key folder belongs
to) is written all or nothing (`write_private`, `create_private`): a temporary file beside it,
fsync, then a rename or link, so that a full disk or a crash leaves the old file or none,
never an empty or partial one that breaks every later command (issue 12, finding 6).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

__all__ = [
    "FILE_MODE",
    "FOLDER_MODE",
    "PRIVATE_UMASK",
    "Writer",
    "create_private",
    "private_file",
    "private_folder",
    "private_umask",
    "warn_if_shared",
    "write_all",
    "write_private",
]

log = structlog.get_logger("nervenbahn.private")

FOLDER_MODE = 0o700
FILE_MODE = 0o600
PRIVATE_UMASK = 0o077


def private_folder(path: Path) -> Path:
    """Create `path` (and missing parents) with mode 0700; an existing folder is left as is
    unless nervenbahn created it now. Returns `path`."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue  # another process made it meanwhile
        os.chmod(folder, FOLDER_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make sure `path` exists as a file of mode 0600 (created empty if missing, its folder
    with `private_folder`); its content is untouched. Returns `path`.

    An existing file is never opened here, only given its mode: closing any descriptor of a
    file releases every POSIX lock the process holds on it, and SQLite's locks on a database
    this process has open are such locks. Opening and closing the event store's file while
    `serve` held it (the key store's open did) let a CLI process write under a read the
    server thought locked: "disk I/O error" in the server (found by CI, twice)."""
    private_folder(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        os.chmod(path, FILE_MODE)
        return path
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def write_private(path: Path, content: bytes | str, *, write: Writer | None = None) -> Path:
    """Write `content` to `path` atomically: a temporary file of mode 0600 in the same folder,
    fsync, rename over `path`, fsync of the folder. A failed write (a full disk) leaves `path`
    as it was and no temporary file behind. `write` puts bytes on a file descriptor
    (`write_all`; tests pass one that fails as a full disk does). Returns `path`."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    with _written(path, data, write or write_all) as temporary:
        os.replace(temporary, path)
    return path


def create_private(path: Path, content: bytes | str, *, write: Writer | None = None) -> Path:
    """Create the new file `path` (mode 0600) holding `content`, all or nothing, never
    overwriting: written and fsynced as a temporary file, then hard-linked to `path`, so that
    `path` appears complete or not at all (FileExistsError if it exists). For key files, which
    a later run reads: a full disk must not leave an empty one. Returns `path`."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    with _written(path, data, write or write_all) as temporary:
        os.link(temporary, path)
    return path


Writer = Callable[[int, bytes], None]
"""How bytes reach an open file descriptor: all of them, or OSError."""


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data` to `fd` (os.write may write fewer than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@contextmanager
def _written(path: Path, data: bytes, write: Writer) -> Iterator[Path]:
    """A temporary file of mode 0600 beside `path` holding `data`, fsynced; the block puts it
    in place; it is removed afterwards whatever happened, and the folder is fsynced so that
    the new name survives a crash."""
    folder = private_folder(path.parent)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    temporary = Path(name)
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    """Make a rename or link in `folder` durable (where the platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the data itself is synced
    finally:
        os.close(fd)


@contextmanager
def private_umask() -> Iterator[None]:
    """Run the block with umask 077 (files the code does not create itself, e.g. a child
    process's, are private too), restoring the previous umask afterwards."""
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def warn_if_shared(folder: Path) -> bool:
    """Warn (and return True) if an existing store folder can be entered by its group or by
    others, as one made by an earlier release under umask 022 can. It is not changed here: a
    store may lie in a folder shared on purpose (or in /tmp), so the operator decides."""
    try:
        mode = stat.S_IMODE(folder.stat().st_mode)
    except OSError:
        return False
    if not mode & 0o077:
        return False
    log.warning(
        "the store folder can be read by other users: its files hold personal data and keys",
        folder=str(folder), mode=oct(mode), fix=f"chmod -R go-rwx {folder}",
    )
    return True
