"""A small Confluent-compatible schema registry over HTTP, for the client's tests.

No real Confluent Schema Registry can be installed here (it is a JVM service from a package
repository this environment cannot reach), so the client is tested against this fake: the
endpoints, status codes, error codes and verbose incompatibility messages of the REST API v1,
at compatibility level BACKWARD_TRANSITIVE. It decides compatibility with `bus.compatibility`
and words the problems as Confluent does (`{errorType:'…', description:'… path '…' …'}`).

IMPORT mode as Confluent has it (its REST API docs and `RestApiModeTest`; Redpanda and Karapace
copy it): `PUT /mode/{subject}` sets a subject's mode; IMPORT is refused for a subject that
already holds versions unless `?force=true` (422, error 42205). In IMPORT mode a registration
must carry an `"id"` (else 422/42205) and may carry a `"version"` (else the next one); it is not
checked for compatibility; an id already bound to another schema ("Overwrite new schema with id
N is not permitted") or a version held by another schema is refused (422/42205); the same
schema again under the same id and version answers with its id. Outside IMPORT mode an `"id"`
is refused (422/42205). With `credentials`, every request needs them as HTTP Basic (else 401,
error 40101).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bus.compatibility import SchemaProblem, canonical_text, compatibility_problems, parse_avro
from bus.errors import SchemaError

__all__ = ["FakeConfluentRegistry", "running_fake_registry"]

_DESCRIPTIONS = {
    "READER_FIELD_MISSING_DEFAULT_VALUE": (
        "The field '{field}' at path '{location}' in the new schema has no default value and "
        "is missing in the old schema"
    ),
    "TYPE_MISMATCH": (
        "The type (path '{location}') of a field in the new schema does not match with the "
        "old schema"
    ),
}


@dataclass
class FakeConfluentRegistry:
    """The registry's state; `fail_next` makes the next request answer with an error."""

    subjects: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """Each subject's (version, schema id), oldest first."""
    schemas: dict[int, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    scripted: list[tuple[int, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    modes: dict[str, str] = field(default_factory=dict)
    """Subject-level modes; a subject without one follows `global_mode`."""
    global_mode: str = "READWRITE"
    credentials: tuple[str, str] | None = None

    def fail_next(self, status: int, body: bytes) -> None:
        """Answer the next request with `status` and the raw `body`."""
        self.scripted.append((status, body))

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """(status, JSON answer) of one request."""
        with self.lock:
            self.requests.append(f"{method} {path}")
            route = path.split("?")[0].strip("/").split("/")
            if method == "GET" and route == ["subjects"]:
                return 200, sorted(self.subjects)
            if route[0] == "mode" and len(route) == 2:
                return self._mode(method, route[1], path, body)
            if method == "GET" and route[:2] == ["schemas", "ids"]:
                text = self.schemas.get(int(route[2]))
                if text is None:
                    return 404, {"error_code": 40403, "message": "Schema not found"}
                return 200, {"schema": text}
            if route[0] == "subjects" and route[2:3] == ["versions"]:
                return self._versions(method, route[1], route[3:], body)
            if method == "POST" and route[:2] == ["compatibility", "subjects"]:
                return self._compatibility(route[2], body)
        return 404, {"error_code": 404, "message": "HTTP 404 Not Found"}

    def _versions(self, method: str, subject: str, rest: list[str], body: Any) -> tuple[int, Any]:
        versions = self.subjects.get(subject)
        if method == "POST":
            return self._register(subject, body)
        if versions is None:
            return 404, {"error_code": 40401, "message": f"Subject '{subject}' not found."}
        if not rest:
            return 200, [version for version, _ in versions]
        for version, schema_id in versions:
            if str(version) == rest[0]:
                return 200, {"subject": subject, "version": version, "id": schema_id,
                             "schema": self.schemas[schema_id]}
        return 404, {"error_code": 40402, "message": "Version not found."}

    def authorized(self, header: str | None) -> bool:
        """Whether a request with this Authorization header may pass."""
        if self.credentials is None:
            return True
        expected = base64.b64encode(":".join(self.credentials).encode()).decode()
        return header == f"Basic {expected}"

    def _mode(self, method: str, subject: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "GET":
            if subject not in self.modes and "defaultToGlobal=false" in path:
                return 404, {"error_code": 40409, "message": f"Subject '{subject}' does not "
                             "have subject-level mode configured"}
            return 200, {"mode": self.modes.get(subject, self.global_mode)}
        if method == "DELETE":
            return 200, {"mode": self.modes.pop(subject, self.global_mode)}
        mode = body.get("mode") if isinstance(body, dict) else None
        if mode not in ("IMPORT", "READWRITE", "READONLY"):
            return 422, {"error_code": 42204, "message": f"Invalid mode {mode!r}"}
        if mode == "IMPORT" and self.subjects.get(subject) and "force=true" not in path:
            return 422, {"error_code": 42205,
                         "message": "Cannot import since found existing subjects"}
        self.modes[subject] = mode
        return 200, {"mode": mode}

    def _register(self, subject: str, body: Any) -> tuple[int, Any]:
        try:
            schema = json.loads(body["schema"])
            parse_avro(schema)
        except (SchemaError, ValueError, KeyError, TypeError) as exc:
            return 422, {"error_code": 42201, "message": f"Invalid schema: {exc}"}
        text = canonical_text(schema)
        importing = self.modes.get(subject, self.global_mode) == "IMPORT"
        if importing or "id" in body:
            return self._import(subject, text, body, importing)
        versions = self.subjects.setdefault(subject, [])
        for _, schema_id in versions:
            if self.schemas[schema_id] == text:
                return 200, {"id": schema_id}
        messages = self._problems(subject, schema)
        if messages:
            if not versions:
                del self.subjects[subject]
            details = ", ".join(messages)
            return 409, {
                "error_code": 409,
                "message": f"Schema being registered is incompatible with an earlier schema "
                f'for subject "{subject}", details: [{details}]',
            }
        schema_id = next((i for i, t in self.schemas.items() if t == text),
                         max(self.schemas, default=0) + 1)
        self.schemas[schema_id] = text
        versions.append((len(versions) + 1, schema_id))
        return 200, {"id": schema_id}

    def _import(
        self, subject: str, text: str, body: dict[str, Any], importing: bool
    ) -> tuple[int, Any]:
        schema_id, version = body.get("id"), body.get("version")
        if not importing or not isinstance(schema_id, int):
            return 422, {"error_code": 42205, "message": "Subject is not in import mode"
                         if not importing else "Schema id is required in import mode"}
        if self.schemas.get(schema_id, text) != text:
            return 422, {"error_code": 42205,
                         "message": f"Overwrite new schema with id {schema_id} is not permitted."}
        versions = self.subjects.setdefault(subject, [])
        number = version if isinstance(version, int) else max(
            (v for v, _ in versions), default=0) + 1
        held = next((i for v, i in versions if v == number), None)
        if held is not None and self.schemas[held] != text:
            return 422, {"error_code": 42205,
                         "message": f"Overwrite new schema with version {number} is not "
                         "permitted."}
        self.schemas[schema_id] = text
        if held is None:
            versions.append((number, schema_id))
            versions.sort()
        return 200, {"id": schema_id}

    def _compatibility(self, subject: str, body: Any) -> tuple[int, Any]:
        if subject not in self.subjects:
            return 404, {"error_code": 40401, "message": f"Subject '{subject}' not found."}
        messages = self._problems(subject, json.loads(body["schema"]))
        if messages:
            return 200, {"is_compatible": False, "messages": messages}
        return 200, {"is_compatible": True}

    def _problems(self, subject: str, schema: dict[str, Any]) -> list[str]:
        earlier = [(v, json.loads(self.schemas[i])) for v, i in self.subjects.get(subject, [])]
        messages: list[str] = []
        for version, old in earlier:
            found = compatibility_problems(subject, schema, [(version, old)])
            if found:
                messages += [_confluent_message(problem) for problem in found]
                messages += [f"{{oldSchemaVersion: {version}}}",
                             f"{{oldSchema: '{json.dumps(old)}'}}"]
        if messages:
            messages.append("{validateFields: 'false', compatibility: 'BACKWARD_TRANSITIVE'}")
        return messages


def _confluent_message(problem: SchemaProblem) -> str:
    template = _DESCRIPTIONS.get(problem.kind, "{message} at path '{location}'")
    message = re.sub(r" \(written with version \d+\)$", "", problem.message)
    description = template.format(field=problem.field, location=problem.location or "/",
                                  message=message)
    return (
        f"{{errorType:'{problem.kind}', description:'{description}', "
        f"additionalInfo:'{problem.field}'}}"
    )


class _Handler(BaseHTTPRequestHandler):
    registry: FakeConfluentRegistry

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not self.registry.authorized(self.headers.get("Authorization")):
            status, payload = 401, b'{"error_code": 40101, "message": "Unauthorized"}'
        elif self.registry.scripted:
            status, payload = self.registry.scripted.pop(0)
        else:
            status, answer = self.registry.handle(method, self.path, json.loads(raw or b"null"))
            payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests check answers, not access logs."""


@contextmanager
def running_fake_registry(
    credentials: tuple[str, str] | None = None,
) -> Iterator[tuple[str, FakeConfluentRegistry]]:
    """A fake registry listening on 127.0.0.1 (a free port), and its state; stopped after.
    With `credentials` (user, password), it wants them as HTTP Basic on every request."""
    registry = FakeConfluentRegistry(credentials=credentials)
    handler = type("Handler", (_Handler,), {"registry": registry})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}", registry
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
