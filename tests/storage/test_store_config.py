"""NERVENBAHN_STORE: which URLs name which store, and which are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nervenbahn.config import ConfigError, StoreConfig, load_settings


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///cases.db", {"kind": "sqlite", "sqlite_path": Path("cases.db")}),
        (
            "sqlite:///.nervenbahn/cases.db",
            {"kind": "sqlite", "sqlite_path": Path(".nervenbahn/cases.db")},
        ),
        (
            "sqlite:////var/lib/nervenbahn/cases.db",
            {"kind": "sqlite", "sqlite_path": Path("/var/lib/nervenbahn/cases.db")},
        ),
        ("sqlite:///my%20cases.db", {"kind": "sqlite", "sqlite_path": Path("my cases.db")}),
        pytest.param(
            "sqlite:////srv/my%20cases.db",
            {"kind": "sqlite", "sqlite_path": Path("/srv/my cases.db")},
            id="sqlite-absolute-percent-decoded",
        ),
        (
            "postgresql://postgres@127.0.0.1:5432/test?schema=t_0123456789ab",
            {
                "kind": "postgres",
                "host": "127.0.0.1",
                "port": 5432,
                "dbname": "test",
                "user": "postgres",
                "schema_name": "t_0123456789ab",
            },
        ),
        (
            "postgres://app:p%40ss@db.example:6543/cases?schema=nervenbahn",
            {
                "kind": "postgres",
                "host": "db.example",
                "port": 6543,
                "dbname": "cases",
                "user": "app",
                "schema_name": "nervenbahn",
            },
        ),
        (
            "postgresql://db.example/cases",
            {
                "kind": "postgres",
                "host": "db.example",
                "port": 5432,
                "dbname": "cases",
                "user": "postgres",
                "schema_name": "",
            },
        ),
    ],
)
def test_store_url_names_the_store(url: str, expected: dict[str, Any]) -> None:
    config = StoreConfig.parse(url)

    assert {field: getattr(config, field) for field in expected} == expected


def test_store_password_is_kept_secret() -> None:
    config = StoreConfig.parse("postgresql://app:p%40ss@db.example:6543/cases?schema=nb")

    assert config.password.get_secret_value() == "p@ss"
    assert config.eventsourcing_env()["POSTGRES_PASSWORD"] == "p@ss"
    assert "p@ss" not in config.describe() + repr(config) + str(config)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "cases.db",
        "mysql://db.example/cases",
        "sqlite://",
        "sqlite:///",
        "postgresql://db.example",
        "postgresql://db.example:5432/",
        pytest.param("postgresql://app@db.example:notaport/cases", id="port-not-a-number"),
        pytest.param("postgresql://app@db.example:99999/cases", id="port-out-of-range"),
        pytest.param(
            'postgresql://app@db.example/cases?schema=x"; DROP SCHEMA public CASCADE; --',
            id="schema-not-an-identifier",
        ),
    ],
)
def test_bad_store_url_is_refused_naming_the_variable(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^NERVENBAHN_STORE: "):
        StoreConfig.parse(url)


def test_postgres_store_without_master_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="NERVENBAHN_MASTER_KEY"):
        load_settings({"NERVENBAHN_STORE": "postgresql://db.example/cases"}).master_key.get_secret_value()
