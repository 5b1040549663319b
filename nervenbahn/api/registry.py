"""The embedded schema registry served over HTTP the way Confluent's is (REST API v1, read only).

Outside applications (confluent-kafka, the Java `KafkaAvroDeserializer`, …) point their
`schema.registry.url` here and authenticate as Confluent clients do: HTTP Basic with the
consumer's name and an API key of scope `bus_reader` (`basic.auth.user.info=NAME:KEY`).
Errors are Confluent's bodies (`{"error_code": 40401, "message": …}`), never problem+json:
the clients read `error_code`. Registering is the relay's (and the operator's) job, so the
write endpoints answer 403 (40301) naming that. Every subject is BACKWARD_TRANSITIVE, the
only level the embedded registry knows. `serve` mounts this app under `/registry`;
`nervenbahn registry serve` serves it at the root path.
"""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.exceptions import HTTPException as StarletteHTTPException

from bus.compatibility import fingerprint, validate_schema
from bus.errors import SchemaNotFoundError
from bus.registry import SchemaRegistry, SchemaVersion
from nervenbahn.api.errors import ApiError
from nervenbahn.api.keys import ApiKeyRegistry

__all__ = ["COMPATIBILITY", "CONTENT_TYPE", "REGISTRY_PREFIX", "RegistryHTTPError",
           "create_registry_app"]

REGISTRY_PREFIX = "/registry"
"""Where `serve` mounts this app (`nervenbahn registry serve`: at its root)."""

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
COMPATIBILITY = "BACKWARD_TRANSITIVE"

SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
UNAUTHORISED = 40101
FORBIDDEN = 40301
INVALID_SCHEMA = 42201
INVALID_VERSION = 42202


class RegistryHTTPError(ApiError):
    """An answer in Confluent's error format: HTTP status, Confluent error code, message."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


class _Answer(JSONResponse):
    media_type = CONTENT_TYPE


_basic = HTTPBasic(auto_error=False, realm="nervenbahn schema registry")


def create_registry_app(registry: SchemaRegistry, keys: ApiKeyRegistry) -> FastAPI:
    """The registry's HTTP app on `registry`, readers authenticated against `keys`."""
    app = FastAPI(
        title="nervenbahn schema registry", version="1", default_response_class=_Answer,
        docs_url=None, redoc_url=None, openapi_url=None,
        dependencies=[Depends(_reader)],
    )
    app.state.registry, app.state.keys = registry, keys
    app.add_exception_handler(RegistryHTTPError, _error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    _routes(app)
    return app


def _reader(request: Request, credentials: Annotated[
    HTTPBasicCredentials | None, Depends(_basic)
]) -> str:
    """The consumer's name, if it sent HTTP Basic credentials of a `bus_reader` key."""
    if credentials is None:
        raise _unauthorised("send HTTP Basic credentials: your consumer name and API key")
    keys: ApiKeyRegistry = request.app.state.keys
    consumer = keys.authenticate(credentials.password)
    if consumer is None or not secrets.compare_digest(
        consumer.name.encode(), credentials.username.encode()
    ):
        raise _unauthorised("the consumer name or API key is unknown, or the key was revoked")
    if consumer.scope.kind != "bus_reader":
        raise RegistryHTTPError(
            403, FORBIDDEN,
            f"the key of {consumer.name} has scope {consumer.scope}; the registry needs bus_reader",
        )
    return consumer.name


def _unauthorised(message: str) -> RegistryHTTPError:
    return RegistryHTTPError(401, UNAUTHORISED, message)


def _store(request: Request) -> SchemaRegistry:
    """The registry the app serves."""
    registry: SchemaRegistry = request.app.state.registry
    return registry


Registry = Annotated[SchemaRegistry, Depends(_store)]


def _routes(app: FastAPI) -> None:
    """Confluent's read routes, and its write routes refused."""

    @app.get("/")
    def root() -> dict[str, Any]:
        return {}

    @app.get("/schemas/types")
    def schema_types() -> list[str]:
        return ["AVRO"]

    @app.get("/schemas/ids/{schema_id}")
    def schema_by_id(schema_id: int, registry: Registry) -> dict[str, Any]:
        return {"schema": _text(_by_id(registry, schema_id))}

    @app.get("/schemas/ids/{schema_id}/schema")
    def raw_schema_by_id(schema_id: int, registry: Registry) -> Any:
        return _by_id(registry, schema_id)

    @app.get("/schemas/ids/{schema_id}/versions")
    def versions_of_id(schema_id: int, registry: Registry) -> list[dict[str, Any]]:
        _by_id(registry, schema_id)
        return [
            {"subject": subject, "version": found.version}
            for subject in registry.subjects()
            for found in registry.versions(subject)
            if found.schema_id == schema_id
        ]

    @app.get("/subjects")
    def subjects(registry: Registry) -> list[str]:
        return registry.subjects()

    @app.get("/subjects/{subject}/versions")
    def versions(subject: str, registry: Registry) -> list[int]:
        return [found.version for found in _versions(registry, subject)]

    @app.get("/subjects/{subject}/versions/{version}")
    def version(subject: str, version: str, registry: Registry) -> dict[str, Any]:
        return _described(subject, _version(registry, subject, version))

    @app.get("/subjects/{subject}/versions/{version}/schema")
    def raw_version(subject: str, version: str, registry: Registry) -> Any:
        return _version(registry, subject, version).schema

    @app.post("/subjects/{subject}")
    async def lookup(subject: str, request: Request, registry: Registry) -> dict[str, Any]:
        schema = _schema_of(await request.body())
        wanted = fingerprint(schema)
        for found in _versions(registry, subject):
            if fingerprint(found.schema) == wanted:
                return _described(subject, found)
        raise RegistryHTTPError(404, SCHEMA_NOT_FOUND, f"schema not found under subject {subject}")

    @app.post("/compatibility/subjects/{subject}/versions/{version}")
    async def compatibility(
        subject: str, version: str, request: Request, registry: Registry,
        verbose: bool = False,
    ) -> dict[str, Any]:
        schema = _schema_of(await request.body())
        _version(registry, subject, version)
        problems = registry.check_compatibility(subject, schema)
        answer: dict[str, Any] = {"is_compatible": not problems}
        if verbose:
            answer["messages"] = [str(problem) for problem in problems]
        return answer

    @app.get("/config")
    def config() -> dict[str, str]:
        return {"compatibilityLevel": COMPATIBILITY}

    @app.get("/config/{subject}")
    def subject_config(subject: str, registry: Registry) -> dict[str, str]:
        _versions(registry, subject)
        return {"compatibilityLevel": COMPATIBILITY}

    @app.get("/mode")
    def mode() -> dict[str, str]:
        return {"mode": "READONLY"}

    for path, methods in (
        ("/subjects/{subject}/versions", ["POST"]),
        ("/subjects/{subject}", ["DELETE"]),
        ("/subjects/{subject}/versions/{version}", ["DELETE"]),
        ("/config", ["PUT"]),
        ("/config/{subject}", ["PUT", "DELETE"]),
        ("/mode", ["PUT"]),
    ):
        app.add_api_route(path, _read_only, methods=methods)


def _read_only(request: Request) -> None:
    raise RegistryHTTPError(
        403, FORBIDDEN,
        f"{request.method} {request.url.path}: this registry is read only over HTTP; schemas "
        "are registered by the relay when it first publishes an event type (operator: "
        "`nervenbahn schemas`)",
    )


def _by_id(registry: SchemaRegistry, schema_id: int) -> dict[str, Any]:
    try:
        return registry.schema_by_id(schema_id)
    except SchemaNotFoundError:
        raise RegistryHTTPError(404, SCHEMA_NOT_FOUND, f"schema {schema_id} not found") from None


def _versions(registry: SchemaRegistry, subject: str) -> list[SchemaVersion]:
    found = registry.versions(subject)
    if not found:
        raise RegistryHTTPError(404, SUBJECT_NOT_FOUND, f"subject '{subject}' not found")
    return found


def _version(registry: SchemaRegistry, subject: str, version: str) -> SchemaVersion:
    """`version` of `subject`: a number, or `latest` / -1 for the newest."""
    if version not in ("latest", "-1") and not (version.isdigit() and int(version) > 0):
        raise RegistryHTTPError(
            422, INVALID_VERSION,
            f"the specified version '{version}' is not a valid version id: use a positive "
            "integer, -1 or latest",
        )
    found = _versions(registry, subject)
    if version in ("latest", "-1"):
        return found[-1]
    for candidate in found:
        if candidate.version == int(version):
            return candidate
    raise RegistryHTTPError(404, VERSION_NOT_FOUND, f"version {version} of {subject} not found")


def _described(subject: str, found: SchemaVersion) -> dict[str, Any]:
    return {
        "subject": subject, "id": found.schema_id, "version": found.version,
        "schema": _text(found.schema),
    }


def _text(schema: dict[str, Any]) -> str:
    """The schema as Confluent gives it: compact JSON text."""
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def _schema_of(body: bytes) -> dict[str, Any]:
    """The Avro schema in a request `{"schema": "<json text>", "schemaType"?: "AVRO"}`."""
    try:
        request = json.loads(body)
        kind = request.get("schemaType", "AVRO")
        schema = json.loads(request["schema"])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise RegistryHTTPError(
            422, INVALID_SCHEMA,
            f'invalid schema: expected {{"schema": "<Avro schema as JSON text>"}} ({exc})',
        ) from None
    if kind != "AVRO" or not isinstance(schema, dict):
        raise RegistryHTTPError(
            422, INVALID_SCHEMA, f"invalid schema: only AVRO record schemas are served, not {kind}"
        )
    problems = validate_schema("request", schema)
    if problems:
        raise RegistryHTTPError(
            422, INVALID_SCHEMA, "invalid schema: " + "; ".join(str(p) for p in problems)
        )
    return schema


async def _error(request: Request, exc: RegistryHTTPError) -> _Answer:
    headers = {"WWW-Authenticate": 'Basic realm="nervenbahn schema registry"'} if (
        exc.status == 401
    ) else None
    return _Answer(
        {"error_code": exc.error_code, "message": exc.message}, exc.status, headers=headers
    )


async def _http_error(request: Request, exc: StarletteHTTPException) -> _Answer:
    return _Answer(
        {"error_code": exc.status_code, "message": f"HTTP {exc.status_code} {exc.detail}"},
        exc.status_code,
    )


async def _invalid_request(request: Request, exc: RequestValidationError) -> _Answer:
    """A malformed path parameter (an id that is not a number) is a resource that is not there."""
    return _Answer({"error_code": 404, "message": "HTTP 404 Not Found"}, 404)
