"""The settings model: read from a mapping, `*_FILE` secrets, errors naming the variable, and
no side effects — reading any setting creates nothing; `create_keys` (`nervenbahn init`) is the
one step that makes key files."""

from __future__ import annotations

import base64
import contextlib
import re
import secrets
import stat
from decimal import Decimal
from pathlib import Path

import pytest

from bus.kafka_errors import KafkaConfigError
from nervenbahn.config import (
    SECRETS,
    ConfigError,
    Environment,
    KeyMissingError,
    RelaySettings,
    Settings,
    load_settings,
)
from nervenbahn.keyfiles import create_keys, store_key_folder
from nervenbahn.paths import read_model_target
from projections.storage import PostgresReadModels

pytestmark = pytest.mark.keys_not_created

ROOT = Path(__file__).resolve().parent.parent


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file and folder under `folder`: mode and content (folders: empty)."""
    return {
        str(path.relative_to(folder)): (
            path.stat().st_mode, b"" if path.is_dir() else path.read_bytes())
        for path in sorted(folder.rglob("*"))
    }


def _read_everything(settings: Settings) -> None:
    """Every attribute of the settings, the keys included (a missing one may be refused)."""
    for name in [*Settings.model_fields, "key_dir", "configured_reporting_key",
                 "configured_signing_key", "checkpoint_interval_seconds", "connectors_file",
                 "log_format", "log_level"]:
        getattr(settings, name)
    for key in ("master_key", "signing_key", "reporting_key"):
        with contextlib.suppress(KeyMissingError):
            getattr(settings, key)


def test_reading_settings_in_an_empty_key_folder_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    env = {"NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'data' / 'cases.db'}",
           "NERVENBAHN_KEY_DIR": str(tmp_path / "keys"), "HOME": str(tmp_path / "home")}
    before = _snapshot(tmp_path)

    settings = load_settings(env)
    _read_everything(settings)
    with pytest.raises(KeyMissingError, match=r"run `nervenbahn init`"):
        settings.master_key  # noqa: B018 - reading is the point

    assert _snapshot(tmp_path) == before


def test_reading_settings_with_the_default_key_dir_creates_nothing(tmp_path: Path) -> None:
    env = {"NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'cases.db'}",
           "XDG_CONFIG_HOME": str(tmp_path / "xdg")}

    _read_everything(load_settings(env))

    assert list(tmp_path.iterdir()) == []


def test_create_keys_makes_private_keys_once_and_reading_then_finds_them(
    tmp_path: Path,
) -> None:
    store = tmp_path / "data" / "cases.db"
    env = {"NERVENBAHN_STORE": f"sqlite:///{store}", "NERVENBAHN_KEY_DIR": str(tmp_path / "k")}
    settings = load_settings(env)

    created = create_keys(settings)

    folder = store_key_folder(tmp_path / "k", store)
    assert created == [folder, folder / "store", folder / "master.key", folder / "signing.key",
                       folder / "reporting.key"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}
    before = _snapshot(tmp_path)
    assert create_keys(load_settings(env)) == []
    assert _snapshot(tmp_path) == before
    again = load_settings(env)
    assert again.master_key.get_secret_value() == (folder / "master.key").read_text().strip()
    assert again.signing_key.get_secret_value() == (folder / "signing.key").read_text().strip()


def test_create_keys_makes_no_file_for_a_configured_key(tmp_path: Path) -> None:
    store = tmp_path / "cases.db"
    env = {"NERVENBAHN_STORE": f"sqlite:///{store}", "NERVENBAHN_KEY_DIR": str(tmp_path / "k"),
           "NERVENBAHN_MASTER_KEY": _key(), "NERVENBAHN_AUDIT_SIGNING_KEY": _key()}

    create_keys(load_settings(env))

    folder = store_key_folder(tmp_path / "k", store)
    assert sorted(p.name for p in folder.iterdir()) == ["reporting.key", "store"]


def test_a_postgres_store_has_nothing_to_create(tmp_path: Path) -> None:
    key = base64.b64encode(bytes(range(32))).decode()
    env = {"NERVENBAHN_STORE": "postgresql://db.example/cases",
           "NERVENBAHN_KEY_DIR": str(tmp_path / "k"), "NERVENBAHN_MASTER_KEY": key,
           "NERVENBAHN_REPORTING_KEY": key, "NERVENBAHN_AUDIT_SIGNING_KEY": key}

    assert create_keys(load_settings(env)) == []
    assert not (tmp_path / "k").exists()
    del env["NERVENBAHN_REPORTING_KEY"]
    with pytest.raises(ConfigError, match=r"^NERVENBAHN_REPORTING_KEY not set"):
        create_keys(load_settings(env))
    assert not (tmp_path / "k").exists()


SECRET_FILES = [
    ("NERVENBAHN_MASTER_KEY", lambda s: s.master_key.get_secret_value()),
    ("NERVENBAHN_AUDIT_SIGNING_KEY", lambda s: s.signing_key.get_secret_value()),
    ("NERVENBAHN_REPORTING_KEY", lambda s: s.reporting_key.get_secret_value()),
]


@pytest.mark.parametrize(("variable", "read"), SECRET_FILES, ids=[s[0] for s in SECRET_FILES])
def test_a_key_is_read_from_the_file_its_file_variable_names(
    tmp_path: Path, variable: str, read: object
) -> None:
    key = _key()
    (tmp_path / "secret").write_text(key + "\n")
    env = {"NERVENBAHN_STORE": "postgresql://db.example/cases",
           f"{variable}_FILE": str(tmp_path / "secret")}

    assert read(load_settings(env)) == key  # type: ignore[operator]


def test_the_store_url_is_read_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("postgresql://app:s3cret@db.example/cases?schema=so\n")
    (tmp_path / "projections").write_text("postgresql://app@db.example/cases?schema=rm\n")

    settings = load_settings({"NERVENBAHN_STORE_FILE": str(tmp_path / "url"),
                              "NERVENBAHN_PROJECTIONS_STORE_FILE": str(tmp_path / "projections")})

    assert settings.store.password.get_secret_value() == "s3cret"
    assert settings.store.schema_name == "so"
    assert settings.projections_store is not None
    assert settings.projections_store.schema_name == "rm"


SECRET_FILE_VARIABLES = [f"{Environment.variable(field)}_FILE" for field in SECRETS]
"""The `*_FILE` variants of the secrets (NERVENBAHN_KAFKA_SSL_CA_FILE is a path, no secret)."""


@pytest.mark.parametrize("variable", SECRET_FILE_VARIABLES)
def test_a_secret_set_twice_is_refused_naming_both_variables(
    tmp_path: Path, variable: str
) -> None:
    (tmp_path / "secret").write_text(_key())
    plain = variable.removesuffix("_FILE")

    with pytest.raises(ConfigError) as refused:
        load_settings({plain: _key(), variable: str(tmp_path / "secret")})

    assert str(refused.value) == f"{plain} and {variable} are both set: set only one of them"


def test_a_missing_secret_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^NERVENBAHN_MASTER_KEY_FILE: .*nope does not exist"):
        load_settings({"NERVENBAHN_MASTER_KEY_FILE": str(tmp_path / "nope")})


def test_a_malformed_key_in_a_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("not base64!")

    with pytest.raises(ConfigError, match=f"^{re.escape(str(tmp_path / 'secret'))}: the master"):
        load_settings({"NERVENBAHN_MASTER_KEY_FILE": str(tmp_path / "secret")})


BAD_VALUES = [
    ({"NERVENBAHN_STORE": "mysql://db/cases"}, "NERVENBAHN_STORE: unsupported scheme"),
    ({"NERVENBAHN_LOG_FORMAT": "xml"}, "NERVENBAHN_LOG_FORMAT: use auto, json or console"),
    ({"NERVENBAHN_AUDIT_CHECKPOINT_SECONDS": "-1"}, "NERVENBAHN_AUDIT_CHECKPOINT_SECONDS: "),
    ({"NERVENBAHN_ACCESS_LOG_RETENTION_DAYS": "30"}, "NERVENBAHN_ACCESS_LOG_RETENTION_DAYS: "),
    ({"NERVENBAHN_READY_MAX_LAG": "0"}, "NERVENBAHN_READY_MAX_LAG: '0' is not a whole number"),
    ({"NERVENBAHN_RELAY_LEASE_SECONDS": "soon"}, "NERVENBAHN_RELAY_LEASE_SECONDS: 'soon' is not"),
    ({"NERVENBAHN_RELAY_RENEW_SECONDS": "-2"}, "NERVENBAHN_RELAY_RENEW_SECONDS: '-2' is not"),
    ({"NERVENBAHN_RELAY_LEASE_SECONDS": "4", "NERVENBAHN_RELAY_RENEW_SECONDS": "4"},
     "NERVENBAHN_RELAY_RENEW_SECONDS: 4 s is not less than the lease"),
    ({"NERVENBAHN_RELAY_PREPARE_FROM_LAG": "-1"},
     "NERVENBAHN_RELAY_PREPARE_FROM_LAG: '-1' is not a whole number of events from 0 to"),
    ({"NERVENBAHN_RELAY_PREPARE_FROM_LAG": "5k"}, "NERVENBAHN_RELAY_PREPARE_FROM_LAG: '5k' is not"),
    ({"NERVENBAHN_METRICS_ACCESS": "public"}, "NERVENBAHN_METRICS_ACCESS: 'public' is not one"),
    ({"NERVENBAHN_API_THREADS": "0"},
     "NERVENBAHN_API_THREADS: '0' is not a whole number of threads from 1 to 256"),
    ({"NERVENBAHN_API_THREADS": "many"}, "NERVENBAHN_API_THREADS: 'many' is not a whole number"),
    ({"NERVENBAHN_PROJECTIONS_STORE": "sqlite:///x.db"}, "NERVENBAHN_PROJECTIONS_STORE: use"),
    ({"NERVENBAHN_REPORTING_KEY": "short"}, "NERVENBAHN_REPORTING_KEY: the reporting key"),
    ({"NERVENBAHN_KAFKA_PARTITIONS": "four"}, "NERVENBAHN_KAFKA_PARTITIONS: 'four' is not"),
    ({"NERVENBAHN_POSTGRES_POOL_SIZE": "0"},
     "NERVENBAHN_POSTGRES_POOL_SIZE: '0' is not a whole number of connections from 1 to 100"),
    ({"NERVENBAHN_POSTGRES_CONNECT_TIMEOUT": "5s"},
     "NERVENBAHN_POSTGRES_CONNECT_TIMEOUT: '5s' is not a whole number of seconds"),
    ({"NERVENBAHN_POSTGRES_READ_TIMEOUT": "0"},
     "NERVENBAHN_POSTGRES_READ_TIMEOUT: '0' is not a whole number of seconds from 1 to 3600"),
    ({"NERVENBAHN_STORE": "postgresql://u@h/db?schema=s&application_name=a%20b"},
     "NERVENBAHN_STORE: application_name 'a b' must be"),
    ({"NERVENBAHN_PAYMENT_APPROVAL_THRESHOLD": "-1"},
     "NERVENBAHN_PAYMENT_APPROVAL_THRESHOLD: '-1' is not an amount in CHF"),
    ({"NERVENBAHN_PAYMENT_APPROVAL_THRESHOLD": "100.005"},
     "NERVENBAHN_PAYMENT_APPROVAL_THRESHOLD: '100.005' is not an amount in CHF"),
    ({"NERVENBAHN_PAYMENT_APPROVAL_THRESHOLD": "lots"},
     "NERVENBAHN_PAYMENT_APPROVAL_THRESHOLD: 'lots' is not an amount in CHF"),
    ({"NERVENBAHN_PAYMENT_APPROVAL_THRESHOLD": "Infinity"},
     "NERVENBAHN_PAYMENT_APPROVAL_THRESHOLD: 'Infinity' is not an amount in CHF"),
]


def test_the_postgresql_connection_settings_reach_both_stores_and_eventsourcing() -> None:
    settings = load_settings({
        "NERVENBAHN_STORE": "postgresql://u@h/db?schema=cases&application_name=serve-1",
        "NERVENBAHN_PROJECTIONS_STORE": "postgresql://u@h/db?schema=rm",
        "NERVENBAHN_POSTGRES_POOL_SIZE": "3",
        "NERVENBAHN_POSTGRES_CONNECT_TIMEOUT": "7",
        "NERVENBAHN_POSTGRES_READ_TIMEOUT": "4",
    })

    env = settings.store.eventsourcing_env()
    assert (env["POSTGRES_POOL_SIZE"], env["POSTGRES_CONNECT_TIMEOUT"]) == ("3", "7")
    assert (env["POSTGRES_PRE_PING"], env["POSTGRES_APPLICATION_NAME"]) == ("y", "serve-1")
    assert "application_name=serve-1" in settings.store.conninfo()
    assert settings.projections_store is not None
    assert "connect_timeout=7" in settings.projections_store.conninfo()
    assert "application_name=nervenbahn" in settings.projections_store.conninfo()
    readers = read_model_target(settings, "region")
    assert isinstance(readers, PostgresReadModels)
    assert readers.read_timeout_s == 4
    assert "statement_timeout=4000" in readers.connection_string(read_only=True, timed=True)
    assert "statement_timeout" not in readers.connection_string(read_only=True)


@pytest.mark.parametrize(("environ", "message"), BAD_VALUES)
def test_a_bad_value_is_refused_naming_its_variable(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ)

    assert str(refused.value).startswith(message)


def test_a_bad_kafka_value_is_also_the_bus_configuration_error() -> None:
    with pytest.raises(KafkaConfigError, match=r"^NERVENBAHN_KAFKA: "):
        load_settings({"NERVENBAHN_KAFKA": "no-port"})


def test_settings_from_a_mapping_ignore_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NERVENBAHN_STORE", "mysql://not/read")
    monkeypatch.setenv("NERVENBAHN_ACTOR", "someone:caseworker:so-olten")

    settings = load_settings({"NERVENBAHN_KAFKA": "k:9092"})

    assert settings.store.kind == "sqlite" and settings.cli.actor is None
    assert settings.kafka.bootstrap_servers == ("k:9092",)
    with pytest.raises(ConfigError, match=r"^NERVENBAHN_STORE: unsupported scheme 'mysql'"):
        load_settings()  # without a mapping: the process environment
    monkeypatch.setenv("NERVENBAHN_STORE", "sqlite:///x.db")
    assert load_settings().cli.actor == "someone:caseworker:so-olten"


def test_the_sections_hold_the_variables() -> None:
    settings = load_settings({
        "NERVENBAHN_SCHEMA_REGISTRY": "http://registry:8081",
        "NERVENBAHN_API_KEYS": "/etc/nb/keys.json",
        "NERVENBAHN_CONNECTORS": "/etc/nb/connectors.toml",
        "NERVENBAHN_LOG_LEVEL": "debug",
        "NERVENBAHN_ACTOR": "me:administrator:so-canton",
        "NERVENBAHN_TOPIC_PREFIX": "acme",
    })

    assert settings.registry.url == "http://registry:8081"
    assert settings.api.api_keys == Path("/etc/nb/keys.json")
    assert settings.api.access_log == Path(".nervenbahn/access-log.db")
    assert settings.connectors.file == Path("/etc/nb/connectors.toml")
    assert settings.logging.level == "debug" and settings.log_level == "debug"
    assert settings.cli.actor == "me:administrator:so-canton"
    assert settings.kafka.topic_prefix == "acme"


def test_the_payment_approval_threshold_is_an_amount_in_chf() -> None:
    assert load_settings({}).payments.approval_threshold == Decimal("5000.00")
    settings = load_settings({"NERVENBAHN_PAYMENT_APPROVAL_THRESHOLD": " 1200.5 "})
    assert str(settings.payments.approval_threshold) == "1200.50"


def test_the_relay_lease_is_renewed_a_third_of_its_time_unless_set() -> None:
    assert load_settings({}).relay == RelaySettings(lease_seconds=15.0, renew_seconds=5.0)
    short = load_settings({"NERVENBAHN_RELAY_LEASE_SECONDS": "3"}).relay
    assert (short.lease_seconds, short.renew_seconds) == (3.0, 1.0)
    both = load_settings({"NERVENBAHN_RELAY_LEASE_SECONDS": "60",
                          "NERVENBAHN_RELAY_RENEW_SECONDS": "0.5"}).relay
    assert (both.lease_seconds, both.renew_seconds) == (60.0, 0.5)


def test_a_relay_has_its_batches_prepared_by_a_process_from_5000_events_behind_unless_set() -> None:
    assert load_settings({}).relay.prepare_from_lag == 5000
    assert load_settings({"NERVENBAHN_RELAY_PREPARE_FROM_LAG": " 20000 "}).relay.prepare_from_lag \
        == 20000
    assert load_settings({"NERVENBAHN_RELAY_PREPARE_FROM_LAG": "0"}).relay.prepare_from_lag == 0


# --- docs/configuration.md ----------------------------------------------------------------------

def _documented() -> list[str]:
    """The variables of the reference table: the first column of each table row."""
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    return [match for line in text.splitlines()
            for match in re.findall(r"^\| `(NERVENBAHN_[A-Z0-9_]+)` \|", line)]


def test_the_configuration_reference_lists_exactly_the_models_variables() -> None:
    documented = _documented()

    assert sorted(documented) == sorted(Environment.variables())
    assert len(documented) == len(set(documented))


def test_the_reference_marks_every_secret_and_only_those() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    secret_rows = {name for name in re.findall(r"^\| `(NERVENBAHN_[A-Z0-9_]+)` \|.*\| secret",
                                               text, flags=re.MULTILINE)}

    assert secret_rows == {v.removesuffix("_FILE") for v in SECRET_FILE_VARIABLES}


def test_the_api_runs_its_routes_in_8_threads_unless_told() -> None:
    assert load_settings({}).api.threads == 8
    assert load_settings({"NERVENBAHN_API_THREADS": "4"}).api.threads == 4


# A password with an unencoded '/', '?', '#' or '@' (or a '#' in a path) once left pieces of
# itself in the URL's path, query or fragment: quoted in an "unknown URL parameter" error, or
# silently dropped (`sqlite:///cases#2.db` opened `cases`).
@pytest.mark.parametrize(("url", "refused"), [
    ("postgresql://app:pa/ss?x9Secret@db.example/cases", "holds an '@' after its host part"),
    ("postgresql://app:pa?schema=x9Secret@db.example/cases", "holds an '@' after its host part"),
    ("postgresql://app:pa#x9Secret@db.example:5432/cases", "holds an '@' after its host part"),
    ("postgresql://app@db.example/cases#x9Secret", "has a '#' part"),
    ("postgresql://app@db.example/cases?schema=so#", "has a '#' part"),
    ("sqlite:///data/cases#x9Secret.db", "has a '#' part"),
    ("sqlite:///data/cases?x9Secret.db", "a sqlite URL takes no parameters"),
    # urlsplit's own errors quote the host part (found by an attack on the checks above)
    ("postgresql://app:Xy[x9Secret]Zk@db.example/cases", "the URL cannot be read"),
    ("postgresql://app:pw\uff1ax9Secret@db.example/cases", "the URL cannot be read"),
    ("postgresql://app:Xy[x9SecretZk@db.example/cases", "the URL cannot be read"),
])
def test_a_store_url_with_misplaced_parts_is_refused_without_showing_them(
    url: str, refused: str
) -> None:
    for variable in ("NERVENBAHN_STORE", "NERVENBAHN_PROJECTIONS_STORE"):
        if variable == "NERVENBAHN_PROJECTIONS_STORE" and url.startswith("sqlite"):
            continue  # the read models' store is PostgreSQL or unset
        env = {variable: url} if variable == "NERVENBAHN_STORE" else {
            "NERVENBAHN_STORE": "sqlite:///cases.db", variable: url}
        with pytest.raises(ConfigError) as error:
            load_settings(env)
        message = str(error.value)
        assert message.startswith(f"{variable}: ")
        assert refused in message
        assert "x9Secret" not in message
        assert "Secret" not in repr(error.value.__cause__) + repr(error.value.__context__)


def test_percent_encoded_delimiters_in_a_store_url_are_taken_as_they_are() -> None:
    settings = load_settings({
        "NERVENBAHN_STORE": "postgresql://app:p%2Fa%3Fs%23s%40w@db.example/cases?schema=so",
    })
    assert settings.store.password.get_secret_value() == "p/a?s#s@w"
    assert settings.store.host == "db.example"
    assert settings.store.schema_name == "so"
    assert load_settings({"NERVENBAHN_STORE": "sqlite:///data/cases%232.db"}).store.sqlite_path \
        == Path("data/cases#2.db")
    # A file path holds no password: an '@' in it is taken as it is.
    assert load_settings({"NERVENBAHN_STORE": "sqlite:////srv/so@olten/cases.db"}).store \
        .sqlite_path == Path("/srv/so@olten/cases.db")


def test_the_store_url_is_read_without_the_spaces_around_it_and_never_empty() -> None:
    """As its `_FILE` variant and NERVENBAHN_PROJECTIONS_STORE are read: a trailing space
    was taken into a SQLite file's name (found by an attack on the URL checks). Set but
    empty is refused, not the default: a deployment's URL that came out empty must not
    write to a local file instead."""
    settings = load_settings({"NERVENBAHN_STORE": "  sqlite:///data/cases.db \n"})
    assert settings.store.sqlite_path == Path("data/cases.db")
    for empty in ("", "  "):
        with pytest.raises(ConfigError, match=r"^NERVENBAHN_STORE: set but empty"):
            load_settings({"NERVENBAHN_STORE": empty})
