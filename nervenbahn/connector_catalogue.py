"""What a sink receives, for connector authors: every event on every topic a sink can read, its
fields (the name on the bus and the name on `received.event`, type, meaning), which events
change a case's phase, and an example `Received` per event. `nervenbahn connectors catalogue`
writes it; docs/connector-catalogue.md is its output (tests/connectors/test_catalogue.py fails
when the committed file is stale).

Nothing here is written by hand twice (issue 20, point 5: authors had to read source code):

- the topics, their keys and headers and the messages on each come from the AsyncAPI document
  (`bus.asyncapi.asyncapi_document`: the channels an outside application *receives*), each
  message's fields and their meaning from its Avro schema's `doc`;
- the example `Received` is what the consumer hands a sink, made the way the bus makes it: an
  Avro record built from the schema (one distinct value per field), framed with the id an
  in-memory registry gave the schema, and decoded by the dataset's own codec
  (`nervenbahn.datasets`), the same one a sink's consumer uses. The name of each field on the
  decoded value is read off that value (the codec renames some: `case_id` → `originator_id`),
  not copied from the codec;
- the phase table is read from the domain's code (`ast`): the phase each event's `apply` sets
  (`domain.events`), and the phases the `Case` method that records it accepts
  (`_require_phase`, `_require_open`, a direct `self.phase` check; `domain.case`). A phase set
  by anything but a constant fails the generation instead of being left out.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, cast
from uuid import UUID, uuid5

import fastavro

from bus.asyncapi import asyncapi_document
from bus.consumer import Received, content_event_id
from bus.kafka_settings import KafkaSettings
from bus.registry_sqlite import SQLiteSchemaRegistry
from bus.wire import write_record
from domain import case as case_module
from domain.case import Case
from domain.errors import NervenbahnError
from domain.events import EVENT_TYPES
from nervenbahn.datasets import DATASETS

if TYPE_CHECKING:
    from nervenbahn.container import Container

__all__ = [
    "CatalogueError",
    "EventEntry",
    "FieldEntry",
    "Format",
    "PhaseChange",
    "SinkCatalogue",
    "TopicEntry",
    "phase_changes",
    "render",
    "sink_catalogue",
]

Format = Literal["md", "json"]
PREFIX = "<prefix>"
"""How topic names show the installation's topic prefix (NERVENBAHN_KAFKA_TOPIC_PREFIX)."""
_EXAMPLE_PREFIX = "nervenbahn"
_EXAMPLES = UUID("5c1d7c1e-2c8a-4f55-9a47-0a7d2b0c0b20")
_DAY = date(2026, 3, 2)
_MOMENT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class CatalogueError(NervenbahnError):
    """The catalogue cannot be derived (a schema or the domain has a shape it cannot read)."""


@dataclass(frozen=True)
class FieldEntry:
    """One field of an event: its name on the bus (Avro) and on `received.event`."""

    avro: str
    domain: str
    type: str
    doc: str


@dataclass(frozen=True)
class EventEntry:
    """One event type on one topic."""

    name: str
    record: str
    doc: str
    fields: tuple[FieldEntry, ...]
    example: str
    """The example `Received`, as Python shows it."""


@dataclass(frozen=True)
class TopicEntry:
    """One topic a sink can read: its dataset (`Sink.dataset`), key, headers and events."""

    dataset: str
    topic: str
    description: str
    key: str
    headers: tuple[tuple[str, str], ...]
    events: tuple[EventEntry, ...]


@dataclass(frozen=True)
class PhaseChange:
    """An event that changes a case's phase: from which phases, to which."""

    event: str
    before: tuple[str, ...]
    after: str


@dataclass(frozen=True)
class SinkCatalogue:
    """Everything a sink can receive."""

    topics: tuple[TopicEntry, ...]
    phases: tuple[PhaseChange, ...] = field(default=())


def sink_catalogue() -> SinkCatalogue:
    """The catalogue of this version of nervenbahn (independent of any installation)."""
    settings = KafkaSettings.model_validate({"topic_prefix": _EXAMPLE_PREFIX})
    document = asyncapi_document(settings)
    registry = SQLiteSchemaRegistry(":memory:")
    try:
        topics = tuple(_topic(document, channel, registry) for channel in _received(document))
    finally:
        registry.close()
    return SinkCatalogue(topics, phase_changes())


def _received(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The channels of events an outside application receives (their messages name their
    `event_type`): neither dead letters nor the signed audit checkpoints."""
    messages = document["components"]["messages"]
    for operation in document["operations"].values():
        channel = document["channels"][operation["channel"]["$ref"].rpartition("/")[2]]
        first = messages[next(iter(channel["messages"]))]
        headers = first.get("headers", {}).get("properties", {})
        if operation["action"] == "receive" and "event_type" in headers:
            yield channel


def _topic(document: dict[str, Any], channel: dict[str, Any],
           registry: SQLiteSchemaRegistry) -> TopicEntry:
    topic = channel["address"]
    dataset = topic.split(".")[2]
    codec = DATASETS[dataset].codec(cast("Container", _ExampleRoot(registry)), topic)
    messages = document["components"]["messages"]
    events = tuple(_event(messages[name], topic, codec, registry) for name in channel["messages"])
    first = messages[next(iter(channel["messages"]))]
    headers = first.get("headers", {}).get("properties", {})
    return TopicEntry(
        dataset=dataset,
        topic=_shown(topic),
        description=channel.get("description", ""),
        key=channel["x-key"],
        headers=tuple((name, spec["description"]) for name, spec in headers.items()),
        events=events,
    )


def _shown(topic: str) -> str:
    return PREFIX + topic.removeprefix(_EXAMPLE_PREFIX)


# --- one event: fields and an example -------------------------------------------------------


def _event(message: dict[str, Any], topic: str, codec: Any,
           registry: SQLiteSchemaRegistry) -> EventEntry:
    schema = message["payload"]["schema"]
    record = _Example(schema).record(schema)
    parsed = fastavro.parse_schema(schema)
    schema_id = registry.register(message["x-subject"], schema)
    value = write_record(schema_id, parsed, record, message["name"])
    event = codec.decode(value)
    decoded = cast("dict[str, Any]", fastavro.schemaless_reader(_body(value), parsed, None))
    names = _domain_names(schema, event, decoded)
    fields = tuple(
        FieldEntry(f["name"], names[f["name"]], _type(f["type"]), f.get("doc", ""))
        for f in schema["fields"]
    )
    received = _received_of(event, decoded, message, topic, codec, schema_id)
    return EventEntry(message["name"], message["title"], schema.get("doc", ""), fields,
                      _show_received(received))


def _body(value: bytes) -> Any:
    from io import BytesIO

    return BytesIO(value[5:])


def _domain_names(schema: dict[str, Any], event: Any, decoded: dict[str, Any]) -> dict[str, str]:
    """Each Avro field's attribute on the decoded value: the same name, or the one attribute
    not named on the bus that holds the field's (distinct) example value."""
    attributes = _attributes(event)
    avro = {f["name"] for f in schema["fields"]}
    names: dict[str, str] = {}
    for name in avro:
        if name in attributes:
            names[name] = name
            continue
        holding = [a for a, v in attributes.items() if a not in avro and v == decoded[name]]
        if len(holding) != 1:
            raise CatalogueError(f"{schema['name']}.{name}: no single attribute of "
                                 f"{type(event).__name__} holds it ({holding})")
        names[name] = holding[0]
    return names


def _attributes(value: Any) -> dict[str, Any]:
    if hasattr(value, "__dict__"):
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    return {name: getattr(value, name) for name in getattr(value, "__dataclass_fields__", {})}


def _received_of(event: Any, decoded: dict[str, Any], message: dict[str, Any], topic: str,
                 codec: Any, schema_id: int) -> Received:
    """The `Received` a sink's handler gets for `event` (id as the consumer finds it; the
    headers as the relay writes them, from the record where it holds them)."""
    event_id = getattr(codec, "event_id", content_event_id)(event)
    properties = message.get("headers", {}).get("properties", {})
    correlation = str(decoded.get("correlation_id", _uuid("correlation")))
    values = {"event_type": message["name"], "event_id": str(event_id),
              "schema_id": str(schema_id),
              "recorded_at": decoded.get("recorded_at", _MOMENT).isoformat(),
              "effective_date": decoded.get("effective_date", _DAY).isoformat(),
              "correlation_id": correlation, "causation_id": correlation,
              "producer": "nervenbahn-relay", "relay_epoch": "3f9c2a7e5b1d4e08",
              "fact": "opened"}
    headers = {name: values[name] for name in properties}
    return Received(event, event_id, message["name"], _shown(topic), 0, 0, headers)


def _show_received(received: Received) -> str:
    lines = [f"Received(  # {received.event_type}", f"    event={type(received.event).__name__}("]
    lines += [f"        {k}={_show(v)}," for k, v in _attributes(received.event).items()]
    lines += ["    ),", f"    event_id={received.event_id!r},",
              f"    event_type={received.event_type!r},", f"    topic={received.topic!r},",
              "    partition=0,", "    offset=0,", "    headers={"]
    lines += [f"        {k!r}: {v!r}," for k, v in received.headers.items()]
    lines += ["    },", ")"]
    return "\n".join(lines)


def _show(value: Any) -> str:
    """A value as Python shows it; a sealed person by its id (never its object address)."""
    if hasattr(value, "person_id") and hasattr(value, "sealed"):
        return f"{type(value).__name__}(person_id={value.person_id!r}, sealed=…)"
    if isinstance(value, list | tuple) and value:
        shown = ", ".join(_show(v) for v in value)
        return f"[{shown}]" if isinstance(value, list) else f"({shown},)"
    return repr(value)


def _type(node: Any) -> str:
    """An Avro type, briefly: `string (uuid)`, `null | int (date)`, `array of BudgetLine`."""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return " | ".join(_type(branch) for branch in node)
    kind = node["type"]
    if kind == "array":
        return f"array of {_type(node['items'])}"
    if kind == "map":
        return f"map of {_type(node['values'])}"
    if kind in ("record", "enum", "fixed"):
        symbols = f": {', '.join(node['symbols'])}" if kind == "enum" else ""
        return f"{node['name']} ({kind}{symbols})"
    if "logicalType" in node:
        extra = (f" {node['precision']},{node.get('scale', 0)}"
                 if node["logicalType"] == "decimal" else "")
        return f"{_type(kind)} ({node['logicalType']}{extra})"
    return _type(kind)


def _uuid(name: str) -> UUID:
    return uuid5(_EXAMPLES, name)


class _Example:
    """An Avro record for a schema, one distinct value per field (so that a renamed field is
    found on the decoded value by its value)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.named: dict[str, Any] = {}
        self.count = 0

    def record(self, node: dict[str, Any]) -> dict[str, Any]:
        self._name(node)
        return {f["name"]: self.value(f["type"], f["name"]) for f in node["fields"]}

    def value(self, node: Any, name: str) -> Any:
        self.count += 1
        n = self.count
        if isinstance(node, list):
            branch = next((b for b in node if b != "null"), "null")
            return self.value(branch, name)
        if isinstance(node, str):
            if node in self.named:
                return self.value(self.named[node], name)
            return self._primitive(node, {}, name, n)
        kind = node["type"]
        if kind == "record":
            return self.record(node)
        if kind == "enum":
            self._name(node)
            return node["symbols"][0]
        if kind == "array":
            return [self.value(node["items"], name)]
        if kind == "map":
            return {"key": self.value(node["values"], name)}
        if isinstance(kind, str) and kind in _PRIMITIVE_KINDS:
            return self._primitive(kind, node, name, n)
        return self.value(kind, name)

    def _name(self, node: dict[str, Any]) -> None:
        name = node["name"]
        full = name if "." in name else f"{node.get('namespace', '')}.{name}"
        self.named.setdefault(name.rpartition(".")[2], node)
        self.named.setdefault(full, node)

    @staticmethod
    def _primitive(kind: str, node: dict[str, Any], name: str, n: int) -> Any:
        logical = node.get("logicalType")
        makers: dict[tuple[str, str | None], Callable[[], Any]] = {
            ("string", "uuid"): lambda: _uuid(f"{name}-{n}"),
            ("string", None): lambda: f"{name}-{n}",
            ("int", "date"): lambda: _DAY + timedelta(days=n),
            ("long", "timestamp-micros"): lambda: _MOMENT + timedelta(minutes=n),
            ("long", "timestamp-millis"): lambda: _MOMENT + timedelta(minutes=n),
            ("int", None): lambda: n,
            ("long", None): lambda: n,
            ("boolean", None): lambda: False,
            ("double", None): lambda: n + 0.5,
            ("float", None): lambda: n + 0.5,
            ("bytes", "decimal"): lambda: Decimal(n).scaleb(-int(node.get("scale", 0))),
            ("bytes", None): lambda: f"{name}-{n}".encode(),
            ("null", None): lambda: None,
        }
        maker = makers.get((kind, logical)) or makers.get((kind, None))
        if maker is None:
            raise CatalogueError(f"{name}: no example for Avro type {kind} ({logical})")
        return maker()


_PRIMITIVE_KINDS = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes",
                              "string"})


@dataclass
class _ExampleRoot:
    """What a dataset's codec factory takes of the composition root: the registry, and a vault
    (decoded persons stay sealed: the catalogue never opens one)."""

    registry: SQLiteSchemaRegistry
    service: Any = None

    def __post_init__(self) -> None:
        self.service = _Service()


class _Service:
    """The case service as a codec sees it: its vault, which seals persons as a sink gets them
    (`SealedPersonalData`, opened by `context.service.vault` on demand)."""

    class _NeverOpened:
        """Seals nothing, opens nothing: the examples hold no person."""

        def encrypt(self, person: Any) -> Any:
            raise CatalogueError("the catalogue's examples seal no person")

        def decrypt(self, sealed: Any) -> Any:
            raise CatalogueError("the catalogue's examples open no person")

    vault: Any = _NeverOpened()


# --- the phase table, read from the domain --------------------------------------------------


def phase_changes() -> tuple[PhaseChange, ...]:
    """Each event whose `apply` sets the case's phase, with the phases the `Case` method that
    records it accepts (`(new case)` for the opening)."""
    after = {cls.__name__: phase for cls in EVENT_TYPES
             if (phase := _phase_set(cls)) is not None}
    phases = set(after.values())
    before: dict[str, set[str]] = {}
    for method in _case_methods().values():
        allowed = _accepted(method, phases)
        for event in _recorded(method):
            if event in after:
                before.setdefault(event, set()).update(allowed)
    missing = sorted(set(after) - set(before))
    if missing:
        raise CatalogueError(f"no Case method records {', '.join(missing)}")
    order = [cls.__name__ for cls in EVENT_TYPES]
    return tuple(PhaseChange(e, tuple(sorted(before[e])), after[e])
                 for e in sorted(after, key=order.index))


def _phase_set(cls: type[Any]) -> str | None:
    apply = cls.__dict__.get("apply")
    if apply is None:
        return None
    found: list[str] = []
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(apply)))):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Attribute) and t.attr == "phase" for t in node.targets
        ):
            if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                raise CatalogueError(f"{cls.__name__}.apply sets the phase to an expression")
            found.append(node.value.value)
    if len(set(found)) > 1:
        raise CatalogueError(f"{cls.__name__}.apply sets the phase to {sorted(set(found))}")
    return found[0] if found else None


def _case_methods() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(Case)))
    body = cast(ast.ClassDef, tree.body[0]).body
    return {node.name: node for node in body if isinstance(node, ast.FunctionDef)}


def _recorded(method: ast.FunctionDef) -> set[str]:
    """The events a method records (`self._trigger(Event, …)`, `cls._create(Event, …)`)."""
    return {
        node.args[0].id
        for node in ast.walk(method)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("_trigger", "_create") and node.args
        and isinstance(node.args[0], ast.Name)
    }


def _accepted(method: ast.FunctionDef, phases: set[str]) -> set[str]:
    """The phases a method accepts, from its guards; `(new case)` for the opening."""
    if method.name == "open":
        return {"(new case)"}
    methods = _case_methods()
    allowed = set(phases)
    for call in _self_calls(method):
        if call.func.attr == "_require_phase":  # type: ignore[attr-defined]
            allowed &= _phases_of(call.args[2])
        elif call.func.attr == "_require_open":  # type: ignore[attr-defined]
            allowed -= _refused_when_equal(methods["_require_open"])
    allowed -= _refused_when_equal(method)
    return allowed & _required_equal(method, phases)


def _self_calls(method: ast.FunctionDef) -> list[ast.Call]:
    return [n for n in ast.walk(method) if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
            and n.func.value.id == "self"]


def _phase_compares(method: ast.FunctionDef, op: type[ast.cmpop]) -> set[str]:
    """Constants `self.phase` is compared to with `op` in an `if` of the method."""
    found: set[str] = set()
    for node in ast.walk(method):
        if isinstance(node, ast.If) and isinstance(test := node.test, ast.Compare):
            left = test.left
            if (isinstance(left, ast.Attribute) and left.attr == "phase"
                    and isinstance(test.ops[0], op)
                    and isinstance(test.comparators[0], ast.Constant)):
                found.add(str(test.comparators[0].value))
    return found


def _refused_when_equal(method: ast.FunctionDef) -> set[str]:
    return _phase_compares(method, ast.Eq)


def _required_equal(method: ast.FunctionDef, phases: set[str]) -> set[str]:
    required = _phase_compares(method, ast.NotEq)
    return required or set(phases)


def _phases_of(node: ast.expr) -> set[str]:
    if isinstance(node, ast.Name):
        return set(getattr(case_module, node.id))
    if isinstance(node, ast.Tuple):
        return {str(cast(ast.Constant, e).value) for e in node.elts}
    raise CatalogueError(f"_require_phase: cannot read the phases {ast.dump(node)}")


# --- rendering ------------------------------------------------------------------------------


def render(catalogue: SinkCatalogue, fmt: Format = "md") -> str:
    """The catalogue as Markdown (docs/connector-catalogue.md) or JSON."""
    if fmt == "json":
        return json.dumps(asdict(catalogue), indent=2, ensure_ascii=False) + "\n"
    return "\n".join(_markdown(catalogue)) + "\n"


def _markdown(catalogue: SinkCatalogue) -> Iterator[str]:
    yield "# What a sink receives"
    yield ""
    yield ("<!-- Generated by `nervenbahn connectors catalogue --out "
           "docs/connector-catalogue.md`; do not edit. -->")
    yield ""
    yield ("Every event a sink can receive (`Sink.dataset` names the topic), its fields — the "
           "name on the bus (Avro) and on `received.event` where they differ —, the events that "
           "change a case's phase, and what `handle(received, tx)` gets for each event "
           "(`bus.consumer.Received`). Generated from the AsyncAPI document, the Avro schemas "
           "and the domain; see docs/connectors.md for the SDK and for when a day is complete "
           "(`context.complete_until`).")
    yield ""
    yield "## Phase changes of a case"
    yield ""
    yield "| event | from phase | to phase |"
    yield "|---|---|---|"
    for change in catalogue.phases:
        yield f"| {change.event} | {', '.join(change.before)} | {change.after} |"
    yield ""
    yield "Every other case event leaves the phase as it is."
    for topic in catalogue.topics:
        yield from _topic_markdown(topic)


def _topic_markdown(topic: TopicEntry) -> Iterator[str]:
    yield ""
    yield f"## Dataset `{topic.dataset}`"
    yield ""
    yield f"Topic `{topic.topic}`. {topic.description}"
    yield ""
    yield f"Key: {topic.key}"
    if topic.headers:
        yield ""
        yield "| header | meaning |"
        yield "|---|---|"
        yield from (f"| `{name}` | {_cell(meaning)} |" for name, meaning in topic.headers)
    for event in topic.events:
        yield ""
        yield f"### {event.name}"
        yield ""
        yield f"`{event.record}`. {event.doc}"
        yield ""
        yield "| on the bus | on `received.event` | type | meaning |"
        yield "|---|---|---|---|"
        for f in event.fields:
            domain = "same" if f.domain == f.avro else f"`{f.domain}`"
            yield f"| `{f.avro}` | {domain} | {_cell(f.type)} | {_cell(f.doc)} |"
        yield ""
        yield "```python"
        yield event.example
        yield "```"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
