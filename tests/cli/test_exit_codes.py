"""The CLI's table of foreseeable failures (`nervenbahn.cli._EXIT_CODES`), tested as a table:
each listed exception, raised by a command, is one `error:` line with its message and its
documented exit code, never 70 and never a traceback. The end-to-end cases (`relay run` with
no broker, `connectors run` while another run holds the lock) are in tests/bus/test_bus_cli.py
and tests/connectors/test_host_cli.py."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from eventsourcing.persistence import OperationalError
from eventsourcing.persistence import OperationalError as PersistenceOperationalError

import nervenbahn.cli as cli_module
from bus.errors import RelayStoppedError
from bus.kafka_errors import BrokerStartError, BrokerUnavailableError, KafkaConfigError
from connectors.host import AlreadyRunningError, ConnectorConfigError
from domain.errors import CaseNotFoundError, DomainError, NervenbahnError
from nervenbahn.audit.chain_existing import UnchainedEventsError
from nervenbahn.audit.checkpoints import CheckpointError
from nervenbahn.audit.errors import AccessLogUnavailableError
from nervenbahn.audit.read_check import UnverifiedReadError
from nervenbahn.audit.verify import EXIT_CHAIN_BROKEN
from nervenbahn.cli import (
    EXIT_BUSY,
    EXIT_INTERNAL,
    EXIT_NO_SPACE,
    EXIT_NOT_INITIALISED,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    exit_code_table,
    main,
)
from nervenbahn.cli.disk_full import DiskFullError
from nervenbahn.config import ConfigError, KeyMissingError
from nervenbahn.container import StoreUnavailableError
from nervenbahn.serve import InvalidNameError
from nervenbahn.supervision import WorkerFailedError
from schemas.postgres import DatabaseUnavailableError
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
    (InvalidNameError("projection x: consumer group 'a b': use letters"), EXIT_UNAVAILABLE),
    (WorkerFailedError("api", 6, 300, "OSError: [Errno 98] Address already in use"),
     EXIT_UNAVAILABLE),
    (DatabaseUnavailableError("the connection to PostgreSQL db:5432/x was lost"),
     EXIT_UNAVAILABLE),
    (AlreadyRunningError("connector intake is running in another process"), EXIT_BUSY),
    (KeyMissingError("the master key has not been created yet: run `nervenbahn init`"),
     EXIT_NOT_INITIALISED),
    (NervenbahnError("the delivery file does not parse"), EXIT_REFUSED),
    (DiskFullError("no space left on device (writing /srv/nervenbahn/store.db)"), EXIT_NO_SPACE),
    (UnverifiedReadError("case 1 is not shown: the store does not match its hash chain"),
     EXIT_CHAIN_BROKEN),
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
    listed = {kind for kinds, _ in exit_code_table() for kind in kinds}
    assert listed == {type(error) for error, _ in RAISED}
    assert all(issubclass(kind, NervenbahnError) for kind in listed)
    assert EXIT_INTERNAL not in {code for _, code in exit_code_table()}


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


def _enospc(name: str = "/srv/nervenbahn/keys/store-1/signing.key") -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)


def _wrapped_in_config_error() -> ConfigError:
    """As `create_store_keys` reports a failed key write: its own message, `from None`."""
    try:
        try:
            raise _enospc()
        except OSError as exc:
            raise ConfigError(f"NERVENBAHN_KEY_DIR: cannot make the key: {exc.strerror}") from None
    except ConfigError as wrapped:
        return wrapped


def _sqlite_full(tmp_path: Path) -> Exception:
    """A real 'database or disk is full' from SQLite, as eventsourcing re-raises it."""
    db = sqlite3.connect(tmp_path / "full.db")
    db.execute("CREATE TABLE stored_events (payload BLOB)")
    db.execute("PRAGMA max_page_count = 2")
    try:
        db.execute("INSERT INTO stored_events VALUES (?)", (b"x" * 100_000,))
    except sqlite3.OperationalError as exc:
        try:
            raise OperationalError(exc) from exc
        except OperationalError as wrapped:
            return wrapped
    finally:
        db.close()
    raise AssertionError("SQLite did not report a full database")


FULL_DISKS = {
    "ENOSPC": lambda _: _enospc(),
    "EDQUOT (quota)": lambda _: OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)),
    "ConfigError from ENOSPC": lambda _: _wrapped_in_config_error(),
    "SQLite full": _sqlite_full,
}
"""A full disk in each shape a command meets it."""


def test_a_lost_event_store_connection_is_one_line_and_exit_3_not_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _raising(monkeypatch, PersistenceOperationalError(
        "consuming input failed: server closed the connection unexpectedly\nThis probably..."))

    assert main([]) == EXIT_UNAVAILABLE == 3
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if not line.startswith("{")]
    assert lines == ["error: the event store's connection failed (consuming input failed: "
                     "server closed the connection unexpectedly); the command may not have "
                     "been recorded: check, then run it again"]
    assert "Traceback" not in captured.err and captured.out == ""


@pytest.mark.parametrize("make", FULL_DISKS.values(), ids=FULL_DISKS.keys())
def test_a_full_disk_anywhere_is_one_line_and_exit_74_not_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    make: Callable[[Path], BaseException],
) -> None:
    _raising(monkeypatch, make(tmp_path))

    assert main([]) == EXIT_NO_SPACE == 74
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if not line.startswith("{")]
    assert len(lines) == 1 and lines[0].startswith("error: no space left on device")
    assert "run the command again" in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


def test_a_full_disk_names_the_file_it_could_not_write(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _raising(monkeypatch, _enospc("/srv/nervenbahn/api-keys.json"))

    assert main([]) == EXIT_NO_SPACE
    assert "(writing /srv/nervenbahn/api-keys.json)" in capsys.readouterr().err


def test_another_os_error_is_still_unforeseen(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _raising(monkeypatch, OSError(errno.EIO, os.strerror(errno.EIO)))

    assert main([]) == EXIT_INTERNAL
    assert "no space" not in capsys.readouterr().err
