"""A connector's declared options: a pydantic model, checked when the connector is loaded.

A connector declares the options it takes as a subclass of `ConnectorOptions`, set as its class
attribute `Options` (the base classes of `connectors.sdk` default to `NoOptions`)::

    class OutboxSink(Sink):
        class Options(ConnectorOptions):
            outbox: str = Field(description="The folder the files go to.")
            batch: int = 100
            \"\"\"Lines per file (an attribute docstring is its description, too).\"\"\"

        options: Options  # `self.options.outbox` is typed

The host validates `[connectors.NAME.options]` against it before the connector is built, and the
connector receives the validated model as `self.options`. Why a declared model rather than the
dict the connectors used to pick keys from: a misspelled optional option (`outbx = "…"`) was
silently ignored and the connector ran with its default (issue 20); a wrong type showed only
when the option was first used, mid-run. Now both are refused at load, each problem one line
naming connector, option and reason, and `nervenbahn connectors describe NAME` lists what a
connector takes (name, type, default, required, description) from the same model.

The model is **strict** (`strict=True`): TOML has typed values, so `grace_days = "3"` or
`grace_days = true` is a mistake in the file, not something to coerce (pydantic's lax mode
would turn `true` into 1). Paths are declared as `str` and resolved with `context.path(...)`
(relative to the configuration file), since TOML has no path type. Options are frozen: they
do not change while a connector runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails, PydanticUndefined, to_jsonable_python

from connectors.errors import ConnectorConfigError

__all__ = [
    "ConnectorOptions",
    "NoOptions",
    "OptionInfo",
    "OptionsError",
    "describe_options",
    "validated_options",
]


class ConnectorOptions(BaseModel):
    """The base of a connector's declared options: unknown options refused, types strict."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True
    )


class NoOptions(ConnectorOptions):
    """A connector that takes no options (the default of `Source` and `Sink`)."""


class OptionsError(ConnectorConfigError, ValueError):
    """A connector's options do not match what it declares; one line per problem, each naming
    the connector, the option and the reason.

    (Also a `ValueError`: code that built a connector by hand and caught the `ValueError` its
    checks used to raise keeps working.)"""

    def __init__(self, name: str, problems: list[tuple[str, str]]) -> None:
        self.connector = name
        self.problems = problems
        """(option, reason) pairs; option "" for the options as a whole."""
        where = f"connectors.{name}.options"
        super().__init__(
            "\n".join(f"{where}{'.' + option if option else ''}: {reason}"
                      for option, reason in problems)
        )


def validated_options(
    model: type[ConnectorOptions], name: str, options: Mapping[str, Any] | ConnectorOptions
) -> ConnectorOptions:
    """`options` checked against `model`; OptionsError naming every problem if they do not
    match (a model instance of `model` is taken as it is)."""
    if isinstance(options, model):
        return options
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        raise OptionsError(name, [_problem(model, error) for error in exc.errors()]) from None


def _problem(model: type[ConnectorOptions], error: ErrorDetails) -> tuple[str, str]:
    """(option, reason) of one of pydantic's errors, in the configuration file's words."""
    option = ".".join(
        f"[{part}]" if isinstance(part, int) else str(part) for part in error["loc"]
    ).replace(".[", "[")
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        if len(error["loc"]) > 1:
            return option, "unknown key"
        declared = ", ".join(model.model_fields) or "none"
        return option, f"unknown option (declared: {declared})"
    if kind == "missing":
        return option, "required"
    message = re.sub(r"^(Value error|Assertion failed), ", "", message)
    if kind.endswith("_type"):  # only the type given: a value may be a secret
        message += f", not {_toml_type(error['input'])}"
    return option, message


def _toml_type(value: Any) -> str:
    """The TOML name of a value's type (what the author wrote in the file)."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    return names.get(type(value), f"a {type(value).__name__}")


@dataclass(frozen=True)
class OptionInfo:
    """One declared option, as `connectors describe` shows it."""

    name: str
    type: str
    """The declared type, as written in Python (`str`, `int | None`, `Literal['a', 'b']`)."""
    required: bool
    default: Any
    """The default (JSON-compatible), None if required or if the default is None."""
    description: str
    """`Field(description=...)` or the attribute's docstring; "" if neither."""


def describe_options(model: type[ConnectorOptions]) -> list[OptionInfo]:
    """The options `model` declares, in declaration order."""
    return [
        OptionInfo(
            name=name,
            type=_type_text(info.annotation),
            required=info.is_required(),
            default=None if info.is_required() else _default(info.get_default(
                call_default_factory=True)),
            description=" ".join((info.description or "").split()),
        )
        for name, info in model.model_fields.items()
    ]


def _type_text(annotation: Any) -> str:
    """`str`, `int | None`, `Literal['a', 'b']`, `dict[str, str]`: module paths dropped."""
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    text = str(annotation).replace("typing.", "")
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)


def _default(value: Any) -> Any:
    return None if value is PydanticUndefined else to_jsonable_python(value)
