"""Input the CLI reads from files or arguments, checked before anything parses it: a file that
is missing, a folder or not UTF-8, and JSON nested so deep that parsing it would exhaust the
interpreter's recursion, are one-line errors naming the input (never a traceback showing it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from domain.errors import InvalidCommandError

__all__ = ["MAX_JSON_DEPTH", "checked_lines", "depth", "json_object", "read_text"]

MAX_JSON_DEPTH = 32
"""The deepest nesting a command's JSON may have (commands need four levels at most); deeper
input is refused before it can exhaust the parser's recursion."""


def json_object(command: str, data: str) -> dict[str, Any]:
    """The JSON object given inline or as @FILE; InvalidCommandError naming `data` (with the
    file's name, never its content) if it cannot be read or is not a JSON object."""
    text = read_text(command, Path(data[1:])) if data.startswith("@") else data
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


def read_text(command: str, path: Path) -> str:
    """The file's text; InvalidCommandError naming `data` and the file (never its content)."""
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError:
        reason = "is not UTF-8 text"
    except IsADirectoryError:
        reason = "is a directory"
    except FileNotFoundError:
        reason = "does not exist"
    except OSError as exc:
        reason = f"cannot be read ({exc.strerror or type(exc).__name__})"
    raise InvalidCommandError(command, [("data", f"file {str(path)!r} {reason}")])


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


def checked_lines(command: str, lines: IO[str]) -> Iterator[str]:
    """The lines of a JSON Lines file, each checked for nesting; InvalidCommandError naming the
    line (a refused import records nothing: it is all or nothing)."""
    try:
        for number, line in enumerate(lines, start=1):
            if depth(line) > MAX_JSON_DEPTH:
                raise InvalidCommandError(
                    command, [(f"line {number}", f"nested deeper than {MAX_JSON_DEPTH} levels")]
                )
            yield line
    except UnicodeDecodeError:
        raise InvalidCommandError(command, [("path", "the file is not UTF-8 text")]) from None
