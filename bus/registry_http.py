"""A Confluent-compatible schema registry over HTTP (REST API v1), with the standard library.

Lazy: nothing is sent before the first call. The server decides compatibility at the level
configured for the subject (or globally); set it to BACKWARD_TRANSITIVE
(`PUT /config {"compatibility": "BACKWARD_TRANSITIVE"}`) so that it refuses what the
embedded registry refuses. Every failure becomes a RegistryError (or a subclass) carrying the
URL and the HTTP status; an incompatible schema becomes IncompatibleSchemaError naming the
field, read from the server's verbose messages.

`import_version` and `set_mode` serve `nervenbahn schemas push` (IMPORT mode: a schema
registered with a given id and version); `auth` sends HTTP Basic credentials with every request.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlsplit

from bus.compatibility import WHOLE_SCHEMA, SchemaProblem, field_path
from bus.errors import IncompatibleSchemaError, RegistryError, SchemaError, SchemaNotFoundError
from bus.registry import SchemaRegistry, SchemaVersion

__all__ = ["ConfluentRegistryClient", "parse_incompatibilities"]

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_SUBJECT_NOT_FOUND = 40401
_VERSION_NOT_FOUND = 40402
_SCHEMA_NOT_FOUND = 40403

_ERROR = re.compile(
    r"errorType:'(?P<kind>[A-Z_]+)', description:'(?P<description>.*?)'"
    r"(?:, additionalInfo:'(?P<info>.*?)')?\}"
)
_OLD_VERSION = re.compile(r"oldSchemaVersion: (?P<version>\d+)")
_PATH = re.compile(r"path '(?P<path>[^']*)'")


class _HTTPFailure(RegistryError):
    """The registry answered with an error status (kept with its Confluent error code)."""

    def __init__(
        self, *, method: str, url: str, status: int, error_code: int | None, server_message: str
    ) -> None:
        super().__init__(
            f"schema registry refused {method} {url} with status {status}: {server_message}",
            url=url,
            status=status,
        )
        self.error_code = error_code
        self.server_message = server_message


class ConfluentRegistryClient(SchemaRegistry):
    """Talks to a Confluent Schema Registry (or a compatible one: Apicurio, Karapace, Redpanda)."""

    def __init__(
        self, url: str, *, timeout: float = 10.0, auth: tuple[str, str] | None = None
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise RegistryError(f"schema registry URL must be http:// or https://, not {url!r}",
                                url=url)
        self._url = url.rstrip("/")
        self._timeout = timeout
        self._authorization = None
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            self._authorization = f"Basic {token}"

    @property
    def url(self) -> str:
        """The registry's base URL."""
        return self._url

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        path = f"/subjects/{_quote(subject)}/versions"
        try:
            answer = self._request("POST", path, {"schema": json.dumps(schema)})
        except _HTTPFailure as exc:
            if exc.status == 409:
                raise _incompatible(subject, schema, exc.server_message) from exc.__cause__
            if exc.status == 422:
                message = f"{subject}: refused by the registry: {exc.server_message}"
                raise SchemaError(message) from exc.__cause__
            raise
        return int(_field(answer, "id", path))

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        path = f"/schemas/ids/{int(schema_id)}"
        try:
            answer = self._request("GET", path)
        except _HTTPFailure as exc:
            if exc.status == 404:
                raise SchemaNotFoundError(
                    f"no schema with id {schema_id}: {exc}", url=exc.url, status=404
                ) from exc.__cause__
            raise
        return _schema(_field(answer, "schema", path), self._url + path)

    def versions(self, subject: str) -> list[SchemaVersion]:
        path = f"/subjects/{_quote(subject)}/versions"
        try:
            numbers = self._request("GET", path)
        except _HTTPFailure as exc:
            if exc.status == 404 and exc.error_code in (_SUBJECT_NOT_FOUND, None):
                return []
            raise
        found = []
        for number in sorted(int(n) for n in numbers):
            answer = self._request("GET", f"{path}/{number}")
            found.append(
                SchemaVersion(
                    number,
                    int(_field(answer, "id", path)),
                    _schema(_field(answer, "schema", path), self._url + path),
                )
            )
        return found

    def subjects(self) -> list[str]:
        return sorted(str(subject) for subject in self._request("GET", "/subjects"))

    def set_mode(self, subject: str, mode: str, *, force: bool = False) -> None:
        """Put `subject` in `mode` (IMPORT, READWRITE, READONLY); `force` lets a subject that
        already holds versions enter IMPORT mode (Confluent refuses that otherwise)."""
        query = "?force=true" if force else ""
        self._request("PUT", f"/mode/{_quote(subject)}{query}", {"mode": mode})

    def subject_mode(self, subject: str) -> str | None:
        """The mode set for `subject` itself (IMPORT, READWRITE, READONLY); None if it has no
        subject-level mode and follows the registry's global one."""
        try:
            answer = self._request("GET", f"/mode/{_quote(subject)}?defaultToGlobal=false")
        except _HTTPFailure as exc:
            if exc.status == 404:
                return None
            raise
        return str(_field(answer, "mode", f"/mode/{subject}"))

    def delete_mode(self, subject: str) -> None:
        """Remove `subject`'s own mode: it follows the registry's global mode again."""
        self._request("DELETE", f"/mode/{_quote(subject)}")

    def import_version(
        self, subject: str, schema: dict[str, Any], *, schema_id: int, version: int
    ) -> int:
        """Register `schema` as `version` of `subject` under `schema_id` (the subject must be
        in IMPORT mode); RegistryError with the server's message if refused."""
        payload = {"schema": json.dumps(schema), "schemaType": "AVRO", "id": schema_id,
                   "version": version}
        path = f"/subjects/{_quote(subject)}/versions"
        return int(_field(self._request("POST", path, payload), "id", path))

    def check_compatibility(self, subject: str, schema: dict[str, Any]) -> list[SchemaProblem]:
        path = f"/compatibility/subjects/{_quote(subject)}/versions/latest?verbose=true"
        try:
            answer = self._request("POST", path, {"schema": json.dumps(schema)})
        except _HTTPFailure as exc:
            if exc.status == 404 and exc.error_code in (
                _SUBJECT_NOT_FOUND, _VERSION_NOT_FOUND, None
            ):
                return []  # nothing registered yet: anything valid is compatible
            if exc.status == 422:
                return [SchemaProblem(subject, WHOLE_SCHEMA, exc.server_message, "INVALID_SCHEMA")]
            raise
        if _field(answer, "is_compatible", path):
            return []
        messages = [str(message) for message in answer.get("messages", [])]
        return parse_incompatibilities(subject, schema, messages) or [
            SchemaProblem(subject, WHOLE_SCHEMA, "; ".join(messages) or "incompatible")
        ]

    def _request(self, method: str, path: str, payload: object | None = None) -> Any:
        url = self._url + path
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Accept": f"{_CONTENT_TYPE}, application/json", "Content-Type": _CONTENT_TYPE}
        if self._authorization is not None:
            headers["Authorization"] = self._authorization
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked in __init__
            url, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            raise _failure(exc, method, url) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryError(
                f"schema registry unreachable: {method} {url}: {reason}", url=url
            ) from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise RegistryError(
                f"schema registry answered {method} {url} with status {status} but no JSON",
                url=url,
                status=status,
            ) from exc


def parse_incompatibilities(
    subject: str, schema: dict[str, Any], messages: list[str]
) -> list[SchemaProblem]:
    """Problems read from a Confluent registry's verbose incompatibility messages.

    Each `{errorType:..., description:'... path '/fields/3/type' ...', additionalInfo:...}`
    becomes a problem naming the field at that path in `schema`; the `{oldSchemaVersion: N}`
    that follows says which earlier version it conflicts with.
    """
    text = "\n".join(messages)
    versions = [(match.start(), int(match["version"])) for match in _OLD_VERSION.finditer(text)]
    problems = []
    for match in _ERROR.finditer(text):
        path_match = _PATH.search(match["description"])
        location = path_match["path"] if path_match else ""
        field = field_path(schema, location) if location else ""
        if not field and match["info"] and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", match["info"]):
            field = match["info"]
        version = next((v for start, v in versions if start > match.start()), None)
        message = match["description"]
        if match["info"] and match["info"] not in message:
            message = f"{message}: {match['info']}"
        if version is not None:
            message = f"{message} (written with version {version})"
        problems.append(
            SchemaProblem(subject, field or WHOLE_SCHEMA, message, match["kind"], location, version)
        )
    return problems


def _incompatible(subject: str, schema: dict[str, Any], message: str) -> IncompatibleSchemaError:
    problems = parse_incompatibilities(subject, schema, [message])
    if not problems:
        return IncompatibleSchemaError(subject, WHOLE_SCHEMA, message)
    first = problems[0]
    details = "; ".join(
        p.message if p.field == first.field else f"{p.field}: {p.message}" for p in problems
    )
    return IncompatibleSchemaError(subject, first.field, details, problems)


def _failure(exc: urllib.error.HTTPError, method: str, url: str) -> _HTTPFailure:
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = body.get("error_code")
    return _HTTPFailure(
        method=method,
        url=url,
        status=exc.code,
        error_code=code if isinstance(code, int) else None,
        server_message=str(body.get("message") or exc.reason),
    )


def _field(answer: Any, name: str, path: str) -> Any:
    if not isinstance(answer, dict) or name not in answer:
        raise RegistryError(f"schema registry answer to {path} lacks {name!r}", url=path)
    return answer[name]


def _schema(text: Any, url: str) -> dict[str, Any]:
    try:
        schema = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"schema registry returned a schema that is not JSON: {url}",
                            url=url) from exc
    if not isinstance(schema, dict):
        raise RegistryError(f"schema registry returned a schema that is not a record: {url}",
                            url=url)
    return schema


def _quote(subject: str) -> str:
    return quote(subject, safe="")
