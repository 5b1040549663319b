"""Installed connectors are found by their entry points (group `nervenbahn.connectors`), beside
class paths; nervenbahn's own connectors are registered the same way."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from connectors._config import ConnectorConfigError, parse_config
from connectors._discovery import GROUP, installed_connectors
from connectors.bfs_statistics.sink import BfsStatisticsSink
from connectors.payments.sink import Pain001Sink
from connectors.population_register import RegisterSource


def config(table: str) -> dict[str, object]:
    """A parsed connectors file of one sink `a`, the rest of its table `table`."""
    return tomllib.loads(f'[connectors.a]\nkind = "sink"\n{table}')


def test_the_built_in_connectors_are_registered_as_entry_points() -> None:
    installed = installed_connectors()
    assert installed["payments"] == "connectors.payments.sink:Pain001Sink"
    assert installed["bfs_statistics"] == "connectors.bfs_statistics.sink:BfsStatisticsSink"
    assert installed["population_register"] == "connectors.population_register:RegisterSource"


def test_a_connector_named_by_its_entry_point_loads_its_class(tmp_path: Path) -> None:
    specs = parse_config(config('connector = "payments"\n[connectors.a.options]\n'
                                'debtor_name = "Sozialregion Olten"\n'
                                'debtor_iban = "CH9300762011623852957"\noutbox = "out"\n'),
                         base=tmp_path, where="test").specs
    assert specs["a"].class_path == "connectors.payments.sink:Pain001Sink"
    assert isinstance(specs["a"].load(), Pain001Sink)


def test_without_class_or_connector_the_table_name_is_the_entry_point(tmp_path: Path) -> None:
    text = '[connectors.bfs_statistics]\nkind = "sink"\n'
    specs = parse_config(tomllib.loads(text), base=tmp_path, where="test").specs
    spec = specs["bfs_statistics"]
    assert (spec.connector, spec.class_path) == (
        "bfs_statistics", f"{BfsStatisticsSink.__module__}:BfsStatisticsSink"
    )


def test_an_entry_point_of_the_other_kind_is_refused_naming_it(tmp_path: Path) -> None:
    specs = parse_config(config('connector = "population_register"\n'), base=tmp_path,
                         where="test").specs
    assert specs["a"].class_path.endswith(RegisterSource.__name__)
    with pytest.raises(ConnectorConfigError, match=r"connectors\.a\.class: .*not a Sink"):
        specs["a"].load()


def test_a_connector_not_installed_is_an_error_of_that_connector_only(tmp_path: Path) -> None:
    """Reading the file succeeds (`connectors list` shows it); loading it names the connector,
    the key, what is installed and what to do."""
    specs = parse_config(config('connector = "front_ofice"\n'), base=tmp_path, where="test").specs
    with pytest.raises(ConnectorConfigError) as caught:
        specs["a"].load()
    message = str(caught.value)
    assert message.startswith("connectors.a.connector: no installed connector 'front_ofice'")
    assert GROUP in message
    assert "payments" in message
    assert "pip install" in message


@pytest.mark.parametrize(
    ("table", "reason"),
    [
        ('class = "m:C"\nconnector = "payments"\n', "either class or connector, not both"),
        ("connector = 3\n", "must be the name of an installed connector"),
        ('connector = ""\n', "must be the name of an installed connector"),
    ],
)
def test_a_bad_connector_key_is_refused_naming_it(
    tmp_path: Path, table: str, reason: str
) -> None:
    broken = parse_config(config(table), base=tmp_path, where="test").broken
    with pytest.raises(ConnectorConfigError, match=rf"connectors\.a\.connector: .*{reason}"):
        raise broken["a"]
