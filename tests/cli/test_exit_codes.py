"""The CLI's table of foreseeable failures (`nervenbahn.cli._EXIT_CODES`), tested as a table:
each listed exception, raised by a command, is one `error:` line with its message and its
documented exit code, never 70 and never a traceback. The end-to-end cases (`relay run` with
no broker, `connectors run` while another run holds the lock) are in tests/bus/test_bus_cli.py
and tests/connectors/test_host_cli.py."""

from __future__ import annotations

import pytest
import typer

import nervenbahn.cli as cli_module
from bus.errors import RelayStoppedError
from bus.kafka_errors import BrokerStartError, BrokerUnavailableError, KafkaConfigError
from connectors.host import AlreadyRunningError, ConnectorConfigError
from domain.errors import CaseNotFoundError, DomainError, NervenbahnError
from nervenbahn.audit.chain_existing import UnchainedEventsError
from nervenbahn.audit.checkpoints import CheckpointError
from nervenbahn.audit.errors import AccessLogUnavailableError
from nervenbahn.cli import (
    _EXIT_CODES,
    EXIT_BUSY,
    EXIT_INTERNAL,
    EXIT_NOT_INITIALISED,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    main,
)
from nervenbahn.config import ConfigError, KeyMissingError
from nervenbahn.container import StoreUnavailableError
from schemas.sql import SchemaVersionError

RAISED: list[tuple[Exception, int]] = [
    (DomainError("a rule refused it"), EXIT_REFUSED),
    (RelayStoppedError("case-events", 7, "EncodeError: amount does not fit"), EXIT_REFUSED),
    (ConfigError("NERVENBAHN_STORE: not a store URL"), EXIT_UNAVAILABLE),
    (StoreUnavailableError("cannot open the store"), EXIT_UNAVAILABLE),
    (UnchainedEventsError("stored_events", 3, registered=True), EXIT_UNAVAILABLE),
    (AccessLogUnavailableError("the access log cannot be written"), EXIT_UNAVAILABLE),
    (BrokerUnavailableError("no broker reachable at 127.0.0.1:1"), EXIT_UNAVAILABLE),
    (BrokerStartError("the embedded broker did not start"), EXIT_UNAVAILABLE),
    (KafkaConfigError("NERVENBAHN_KAFKA: no brokers"), EXIT_UNAVAILABLE),
    (ConnectorConfigError("connectors.toml: connector 'intake' has no kind"), EXIT_UNAVAILABLE),
    (SchemaVersionError("access_log", 3, 1), EXIT_UNAVAILABLE),
    (AlreadyRunningError("connector intake is running in another process"), EXIT_BUSY),
    (KeyMissingError("the master key has not been created yet: run `nervenbahn init`"),
     EXIT_NOT_INITIALISED),
    (NervenbahnError("the delivery file does not parse"), EXIT_REFUSED),
]
"""One instance of every class the table lists, and the code it must give."""


def _raising(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """Make the CLI's app a single command that raises `error`."""
    app = typer.Typer()

    @app.command()
    def fail() -> None:
        raise error

    monkeypatch.setattr(cli_module, "app", app)


def test_the_table_lists_exactly_the_classes_tested_here() -> None:
    listed = {kind for kinds, _ in _EXIT_CODES for kind in kinds}
    assert listed == {type(error) for error, _ in RAISED}
    assert all(issubclass(kind, NervenbahnError) for kind in listed)
    assert EXIT_INTERNAL not in {code for _, code in _EXIT_CODES}


@pytest.mark.parametrize(("error", "code"), RAISED, ids=[type(e).__name__ for e, _ in RAISED])
def test_a_listed_failure_is_one_line_and_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    error: Exception, code: int,
) -> None:
    _raising(monkeypatch, error)

    assert main([]) == code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if not line.startswith("{")]
    assert lines == [f"error: {error}"]
    assert "Traceback" not in captured.err and captured.out == ""


def test_a_subclass_maps_like_the_listed_class(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = CaseNotFoundError("6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f")
    _raising(monkeypatch, error)

    assert main([]) == EXIT_REFUSED
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {error}"


def test_any_other_error_of_ours_is_one_line_and_1_not_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = CheckpointError("checkpoint #3 cannot be signed: the signing key is missing")
    _raising(monkeypatch, error)

    assert main([]) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [f"error: {error}"]
    assert "Traceback" not in err


def test_an_unforeseen_failure_is_70_and_names_only_its_type(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _raising(monkeypatch, RuntimeError("holds Quellmatt"))

    assert main([]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "error: unexpected RuntimeError (logged)" in err.splitlines()
    assert not [line for line in err.splitlines() if line.startswith("error:") and "Quellmatt"
                in line]
