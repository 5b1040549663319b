"""The boundary's translation table: what goes wrong opening a store reaches callers as ours."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nervenbahn.config import load_settings
from nervenbahn.container import StoreUnavailableError, build_service, close_service

PASSWORD = "s3cr3t-Passw0rd"


def _directory(tmp_path: Path) -> str:
    (tmp_path / "cases.db").mkdir()
    return f"sqlite:///{tmp_path / 'cases.db'}"


def _not_a_database(tmp_path: Path) -> str:
    (tmp_path / "cases.db").write_bytes(b"this is no SQLite database\n" * 200)
    return f"sqlite:///{tmp_path / 'cases.db'}"


def _parent_is_a_file(tmp_path: Path) -> str:
    (tmp_path / "store").write_text("a file where the directory should be\n")
    return f"sqlite:///{tmp_path / 'store' / 'cases.db'}"


@pytest.mark.parametrize(
    ("store_url", "described"),
    [
        pytest.param(
            lambda _: f"postgresql://app:{PASSWORD}@127.0.0.1:1/cases?schema=nb",
            "PostgreSQL app@127.0.0.1:1/cases schema nb",
            id="postgres-closed-port",
        ),
        pytest.param(
            _directory,
            "SQLite",
            id="sqlite-path-is-a-directory",
        ),
        pytest.param(
            _not_a_database,
            "SQLite",
            id="sqlite-file-is-not-a-database",
        ),
        pytest.param(
            _parent_is_a_file,
            "SQLite",
            id="sqlite-parent-is-a-file",
        ),
    ],
)
def test_unopenable_store_raises_store_unavailable(
    tmp_path: Path, master_key: str, store_url: Callable[[Path], str], described: str
) -> None:
    settings = load_settings(
        {"NERVENBAHN_STORE": store_url(tmp_path), "NERVENBAHN_MASTER_KEY": master_key}
    )

    with pytest.raises(StoreUnavailableError) as unavailable:
        close_service(build_service(settings))

    message = str(unavailable.value)
    assert message.startswith(f"cannot open the store {described}")
    assert PASSWORD not in message
    assert unavailable.value.__cause__ is not None


@pytest.mark.postgres
def test_unknown_postgres_database_raises_store_unavailable(
    postgres_server_url: str, master_key: str
) -> None:
    server = postgres_server_url.rsplit("/", 1)[0]
    settings = load_settings(
        {
            "NERVENBAHN_STORE": f"{server}/no_such_database?schema=nb",
            "NERVENBAHN_MASTER_KEY": master_key,
        }
    )

    with pytest.raises(StoreUnavailableError, match='database "no_such_database" does not exist'):
        close_service(build_service(settings))


def test_new_sqlite_store_creates_its_directory(tmp_path: Path, master_key: str) -> None:
    path = tmp_path / "new" / "deeper" / "cases.db"
    settings = load_settings(
        {"NERVENBAHN_STORE": f"sqlite:///{path}", "NERVENBAHN_MASTER_KEY": master_key}
    )

    service = build_service(settings)
    try:
        assert list(service.case_ids()) == []
    finally:
        close_service(service)
    assert path.exists()
