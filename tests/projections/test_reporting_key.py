"""The reporting key: from NERVENBAHN_REPORTING_KEY, or a key file in a SQLite store's key
folder."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from bus.kafka_settings import KafkaSettings
from nervenbahn.config import ConfigError, load_settings
from nervenbahn.container import Container
from nervenbahn.keyfiles import store_key_folder
from projections.reporting import ReportingProjection

KEY = base64.b64encode(bytes(range(32))).decode()
MASTER = base64.b64encode(bytes(32)).decode()


def test_the_reporting_key_comes_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings({"NERVENBAHN_STORE": f"sqlite:///{tmp_path / 's.db'}",
                              "NERVENBAHN_MASTER_KEY": MASTER, "NERVENBAHN_REPORTING_KEY": KEY})

    assert settings.reporting_key is not None
    assert settings.reporting_key.get_secret_value() == KEY
    assert KEY not in repr(settings)
    assert not any(settings.key_dir.rglob("reporting.key"))


def test_for_a_sqlite_store_a_key_file_of_its_own_is_created_once(tmp_path: Path) -> None:
    env = {"NERVENBAHN_STORE": f"sqlite:///{tmp_path / 's.db'}"}

    first, again = load_settings(env), load_settings(env)

    path = store_key_folder(first.key_dir, tmp_path / "s.db") / "reporting.key"
    assert first.reporting_key is not None and again.reporting_key is not None
    assert first.reporting_key.get_secret_value() == again.reporting_key.get_secret_value()
    assert first.reporting_key.get_secret_value() != first.master_key.get_secret_value()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(path.read_text())) == 32
    projection = ReportingProjection.from_settings(first)
    assert projection._pseudonyms is not None


@pytest.mark.parametrize(
    ("value", "match"),
    [("not base64!", "reporting key is not valid base64"),
     (base64.b64encode(b"short").decode(), "reporting key must be 32 bytes, found 5")],
)
def test_a_malformed_reporting_key_is_refused_naming_the_variable(
    tmp_path: Path, value: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=f"NERVENBAHN_REPORTING_KEY: the {match}"):
        load_settings({"NERVENBAHN_STORE": f"sqlite:///{tmp_path / 's.db'}",
                       "NERVENBAHN_REPORTING_KEY": value})


def test_a_postgres_store_without_the_key_has_none_and_the_reporting_relay_says_so() -> None:
    settings = load_settings({"NERVENBAHN_STORE": "postgresql://db.example/cases",
                              "NERVENBAHN_MASTER_KEY": MASTER})
    container = Container(settings, kafka=KafkaSettings())

    assert settings.reporting_key is None
    with pytest.raises(ConfigError, match="NERVENBAHN_REPORTING_KEY must be set"):
        container.relay("case-facts")
