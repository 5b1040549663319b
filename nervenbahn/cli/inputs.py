"""Input the CLI reads from files or arguments, checked before anything parses it: a file that
is missing, a folder, not a regular file (a FIFO would block, `/dev/zero` never ends), larger
than its limit or not UTF-8, and JSON nested so deep that parsing it would exhaust the
interpreter's recursion, are one-line errors naming the input (never a traceback showing it).

Limits: one command's JSON (`case run NAME DATA|@FILE`) at most `MAX_DATA_BYTES` (1 MiB); an
import file any size, but each of its lines (one record) at most `MAX_LINE_BYTES` (1 MiB).
Nothing is read beyond a limit: reading stops one byte after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from domain.errors import InvalidCommandError

__all__ = [
    "MAX_DATA_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_LINE_BYTES",
    "checked_lines",
    "depth",
    "json_object",
    "open_regular",
    "parse_uuid",
    "read_text",
    "sha256_of",
]

MAX_JSON_DEPTH = 32
"""The deepest nesting a command's JSON may have (commands need four levels at most); deeper
input is refused before it can exhaust the parser's recursion."""
MAX_DATA_BYTES = 1024 * 1024
"""The largest JSON one command may be given as (1 MiB: a command is a few KiB at most)."""
MAX_LINE_BYTES = 1024 * 1024
"""The longest line (one record) of an import file, newline included (1 MiB)."""


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB ({limit} bytes)"


def json_object(command: str, data: str) -> dict[str, Any]:
    """The JSON object given inline or as @FILE; InvalidCommandError naming `data` (with the
    file's name, never its content) if it cannot be read or is not a JSON object."""
    text = read_text(command, Path(data[1:])) if data.startswith("@") else data
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DATA_BYTES:
        raise InvalidCommandError(command, [("data", f"larger than {_size(MAX_DATA_BYTES)}")])
    if depth(text) > MAX_JSON_DEPTH:
        raise InvalidCommandError(
            command, [("data", f"nested deeper than {MAX_JSON_DEPTH} levels")]
        )
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidCommandError(command, [("data", f"not valid JSON: {exc.msg}")]) from None
    if not isinstance(fields, dict):
        raise InvalidCommandError(command, [("data", "must be a JSON object")])
    return fields


def read_text(command: str, path: Path, limit: int = MAX_DATA_BYTES) -> str:
    """The text of a regular file of at most `limit` bytes; InvalidCommandError naming `data`
    and the file (never its content) otherwise."""
    with open_regular(command, path, "data") as file:
        raw = file.read(limit + 1)
    if len(raw) > limit:
        raise InvalidCommandError(
            command, [("data", f"file {str(path)!r} is larger than {_size(limit)}")]
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidCommandError(
            command, [("data", f"file {str(path)!r} is not UTF-8 text")]
        ) from None


def open_regular(command: str, path: Path, field: str) -> IO[bytes]:
    """`path` opened for reading in binary if it is a regular file; InvalidCommandError naming
    `field` and the file otherwise. Opened without blocking (a FIFO without a writer would wait
    forever) and checked on the open descriptor, so a swapped path cannot slip through."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        reason = "is a directory"
    except FileNotFoundError:
        reason = "does not exist"
    except OSError as exc:
        reason = f"cannot be read ({exc.strerror or type(exc).__name__})"
    else:
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        os.close(fd)
        reason = ("is a directory" if stat.S_ISDIR(mode)
                  else "is not a regular file (a FIFO, device or socket)")
    raise InvalidCommandError(command, [(field, f"file {str(path)!r} {reason}")])


def depth(text: str) -> int:
    """How deeply brackets nest in `text`, outside strings (without parsing it)."""
    level = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            level += 1
            deepest = max(deepest, level)
        elif char in "]}":
            level -= 1
    return deepest


def checked_lines(command: str, lines: IO[bytes]) -> Iterator[str]:
    """The lines of a JSON Lines file (opened with `open_regular`), each at most
    `MAX_LINE_BYTES` long, UTF-8 and checked for nesting; InvalidCommandError naming the line
    otherwise (a refused import records nothing: it is all or nothing)."""
    number = 0
    while raw := lines.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise InvalidCommandError(
                command, [(f"line {number}", f"longer than {_size(MAX_LINE_BYTES)}")]
            )
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidCommandError(
                command, [(f"line {number}", "is not UTF-8 text")]) from None
        if depth(line) > MAX_JSON_DEPTH:
            raise InvalidCommandError(
                command, [(f"line {number}", f"nested deeper than {MAX_JSON_DEPTH} levels")]
            )
        yield line


def sha256_of(file: IO[bytes]) -> str:
    """The SHA-256 (hex) of an opened file's whole content, read in chunks; the file is left at
    its start again, to be read for what it holds (`checked_lines`)."""
    digest = hashlib.sha256()
    while chunk := file.read(1024 * 1024):
        digest.update(chunk)
    file.seek(0)
    return digest.hexdigest()


def parse_uuid(command: str, field: str, text: str) -> UUID:
    """`text` as a UUID; InvalidCommandError naming `field` of `command` if it is not one."""
    try:
        return UUID(text)
    except ValueError:
        raise InvalidCommandError(command, [(field, f"{text!r} is not a UUID")]) from None
