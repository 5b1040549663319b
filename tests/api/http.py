"""Plain HTTP for tests of a running `serve`: a status and its JSON body, whatever the status."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def get_json(url: str, key: str | None = None) -> tuple[int, Any]:
    """GET `url` (with the API key `key`, if given): the status and the decoded JSON body."""
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
