"""Command validators are built on first use (`defer_build`: a CLI start validates one
command), and all at once by `build_validators`, which `serve` calls before it serves."""

from __future__ import annotations

import domain.benefit_commands  # noqa: F401 - its commands are Command's subclasses too
from domain.commands import COMMANDS, Command, PersonInput, build_validators


def _all_commands() -> list[type[Command]]:
    found, pending = [], [Command]
    while pending:
        model = pending.pop()
        found.append(model)
        pending.extend(model.__subclasses__())
    return found


def test_build_validators_builds_every_command_s_validator() -> None:
    build_validators()

    models = [PersonInput, *_all_commands()]
    assert len(models) > len(COMMANDS)  # the case commands, the benefit commands, the bases
    assert [m.__name__ for m in models if not m.__pydantic_complete__] == []
    assert all(type(m.__pydantic_validator__).__name__ == "SchemaValidator" for m in models)
