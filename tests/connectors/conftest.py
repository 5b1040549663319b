"""Fixtures of the connector tests: a SQLite store of the test's own, its bus on the real
embedded broker, and the connector runtime on them; connector packages installed for a test
(in marked sections; others may add theirs)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, ensure_topics
from domain.application.cases import CaseService
from nervenbahn.config import Settings
from nervenbahn.container import Container, build_service, close_service
from tests.bus.pipeline import store_settings

# --- SDK runtime fixtures ---


@pytest.fixture
def connector_settings(tmp_path: Path, master_key: str) -> Settings:
    """A SQLite store in the test's folder."""
    return store_settings(tmp_path, master_key)


@pytest.fixture
def connector_service(connector_settings: Settings) -> Iterator[CaseService]:
    """The case service on that store."""
    service = build_service(connector_settings)
    yield service
    close_service(service)


@pytest.fixture
def connector_bus(
    connector_settings: Settings, connector_service: CaseService, kafka_settings: KafkaSettings
) -> Iterator[Container]:
    """The bus of that store on the real broker (a topic prefix of the test's own)."""
    bus = Container(connector_settings, kafka=kafka_settings, service=connector_service)
    ensure_topics(kafka_settings, catalogue(kafka_settings))
    yield bus
    bus.close()


# --- connector packages (`nervenbahn connector new`, the tutorial) ---

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def pip_install() -> Iterator[Callable[..., None]]:
    """Install connector package folders into this environment, as their author would with
    `pip install -e FOLDER`, and uninstall them afterwards (so the environment keeps no entry
    point into a deleted folder). Offline and fast: `--no-deps` (nervenbahn is the dependency,
    installed already) and `--no-build-isolation` (this environment's setuptools)."""
    installed: list[str] = []

    def install(*folders: Path) -> None:
        for folder in folders:
            name = tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"]
            installed.append(name)
        run_ok([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                "--no-build-isolation", *(arg for f in folders for arg in ("-e", str(f)))])

    yield install
    if installed:
        run_ok([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", *installed])


def run_ok(
    args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    """Run a command (at most 4 min); its output, or a failed assertion showing it."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=240,
                            check=False)
    assert result.returncode == 0, f"{args}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout
