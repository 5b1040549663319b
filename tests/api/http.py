"""Plain HTTP for tests of a running `serve`: a status and its JSON body, whatever the status;
and the environment of a `nervenbahn serve` subprocess of a test's own."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def serve_environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    """This process's environment without any NERVENBAHN_ variable, plus a SQLite store and key
    folder in `tmp_path` and `variables`: a `nervenbahn` subprocess with its own store."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("NERVENBAHN_")},
        "NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'store.db'}",
        "NERVENBAHN_KEY_DIR": str(tmp_path / "keys"),
        **variables,
    }


def get_json(url: str, key: str | None = None) -> tuple[int, Any]:
    """GET `url` (with the API key `key`, if given): the status and the decoded JSON body."""
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
