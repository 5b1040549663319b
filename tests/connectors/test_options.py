"""Declared options (issue 20, point 3): a connector's `Options` model refuses unknown options,
wrong types and missing ones, each named with connector, option and reason; `describe` lists
what a connector takes; one connector's bad configuration stops only that connector."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from bus.consumer import Received
from connectors._config import ConnectorSpec, read_config
from connectors.host import ConnectorConfigError, ConnectorHost
from connectors.options import ConnectorOptions, OptionInfo, OptionsError, describe_options
from connectors.sdk import Sink, Source, SourceItem
from domain.application.cases import CaseService
from domain.personal_data import ErasureSubject
from nervenbahn.container import private_files
from tests.connectors.test_host import NAMESPACE

HERE = "tests.connectors.test_options"
LIST_SOURCE = "tests.connectors.test_host:ListSource"


class OutboxSink(Sink):
    """Writes files to an outbox (a sink that is only ever built, never run, here)."""

    dataset = "case-facts"

    class Options(ConnectorOptions):
        outbox: str = Field(description="The folder the files go to.")
        batch: int = 100
        """Lines per file."""
        mode: Literal["append", "replace"] = "append"
        tags: list[str] = Field(default_factory=list)

    options: Options

    def handle(self, received: Received, tx: object) -> None:
        raise NotImplementedError


class BareSource(Source):
    """A source that declares no options (the default)."""

    def read(self, after: str | None) -> Iterator[SourceItem]:
        yield from ()


def problems(error: OptionsError) -> list[str]:
    return str(error).splitlines()


# --- the model ----------------------------------------------------------------------------


def test_declared_options_reach_the_connector_validated_and_typed() -> None:
    sink = OutboxSink("outbox", {"outbox": "out", "batch": 5, "tags": ["a"]})
    assert (sink.options.outbox, sink.options.batch, sink.options.mode) == ("out", 5, "append")
    assert sink.options.tags == ["a"]
    assert OutboxSink("again", sink.options).options is sink.options  # a model: taken as is


def test_a_misspelled_option_is_refused_naming_connector_option_and_the_declared_ones() -> None:
    with pytest.raises(OptionsError) as refused:
        OutboxSink("outbox", {"outbox": "out", "bacth": 5})
    assert problems(refused.value) == [
        "connectors.outbox.options.bacth: unknown option (declared: outbox, batch, mode, tags)"
    ]
    assert refused.value.problems == [
        ("bacth", "unknown option (declared: outbox, batch, mode, tags)")
    ]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "outbox: required"),
        ({"outbox": 7}, "outbox: Input should be a valid string, not an integer"),
        ({"outbox": "o", "batch": "5"}, "batch: Input should be a valid integer, not a string"),
        ({"outbox": "o", "batch": True}, "batch: Input should be a valid integer, not a boolean"),
        ({"outbox": "o", "batch": 1.5}, "batch: Input should be a valid integer, not a float"),
        ({"outbox": "o", "mode": "merge"}, "mode: Input should be 'append' or 'replace'"),
        ({"outbox": "o", "tags": ["a", 2]}, "tags[1]: Input should be a valid string"),
    ],
)
def test_a_missing_option_or_a_wrong_type_is_refused(
    options: dict[str, object], expected: str
) -> None:
    """Strict: TOML has types, so a quoted number or `true` for a count is a mistake."""
    with pytest.raises(OptionsError) as refused:
        OutboxSink("outbox", options)
    assert problems(refused.value)[0].startswith("connectors.outbox.options." + expected)


def test_every_problem_of_the_options_is_one_line() -> None:
    with pytest.raises(OptionsError) as refused:
        OutboxSink("outbox", {"batch": "x", "colour": "red"})
    assert problems(refused.value) == [
        "connectors.outbox.options.outbox: required",
        "connectors.outbox.options.batch: Input should be a valid integer, not a string",
        "connectors.outbox.options.colour: unknown option (declared: outbox, batch, mode, tags)",
    ]


def test_a_connector_that_declares_nothing_takes_no_options() -> None:
    assert BareSource("bare", {}).options.model_dump() == {}
    with pytest.raises(OptionsError, match=r"^connectors\.bare\.options\.inbox: unknown option "
                                           r"\(declared: none\)$"):
        BareSource("bare", {"inbox": "in"})


def test_options_cannot_change_while_the_connector_runs() -> None:
    sink = OutboxSink("outbox", {"outbox": "out"})
    with pytest.raises(ValueError, match="frozen"):
        sink.options.outbox = "elsewhere"  # type: ignore[misc]


def test_describe_lists_name_type_default_required_and_description() -> None:
    assert describe_options(OutboxSink.Options) == [
        OptionInfo("outbox", "str", True, None, "The folder the files go to."),
        OptionInfo("batch", "int", False, 100, "Lines per file."),
        OptionInfo("mode", "Literal['append', 'replace']", False, "append", ""),
        OptionInfo("tags", "list[str]", False, [], ""),
    ]


def test_the_built_in_connectors_declare_every_option_they_take() -> None:
    """`connectors describe` of the shipped connectors: the options their docs name."""
    from connectors.bfs_statistics import BfsStatisticsSink
    from connectors.payments.sink import Pain001Sink
    from connectors.population_register import RegisterSource

    declared = {
        cls.__name__: {(o.name, o.required) for o in describe_options(cls.Options)}
        for cls in (Pain001Sink, BfsStatisticsSink, RegisterSource)
    }
    assert declared == {
        "Pain001Sink": {("debtor_name", True), ("debtor_iban", True), ("debtor_bic", False),
                        ("outbox", False), ("remittance", False)},
        "BfsStatisticsSink": {("outbox", False), ("canton", False), ("first_month", False),
                              ("complete_through", False), ("grace_days", False),
                              ("partitions", False)},
        "RegisterSource": {("inbox", True), ("organisation", False)},
    }
    assert all(o.description for cls in (Pain001Sink, BfsStatisticsSink, RegisterSource)
               for o in describe_options(cls.Options))


# --- the configuration file ---------------------------------------------------------------


GOOD = f'[connectors.intake]\nkind = "source"\nclass = "{LIST_SOURCE}"\n' \
       '[connectors.intake.options]\nrecords = [{ ref = "A", bfs = 2581 }]\n'


def test_a_spec_refuses_options_its_class_does_not_declare(tmp_path: Path) -> None:
    spec = ConnectorSpec("intake", "source", LIST_SOURCE, {"record": []}, base=tmp_path)
    with pytest.raises(ConnectorConfigError) as refused:
        spec.load()
    assert str(refused.value).splitlines() == [
        "connectors.intake.options.records: required",
        "connectors.intake.options.record: unknown option (declared: records)",
    ]


def test_describe_works_when_the_options_are_wrong(tmp_path: Path) -> None:
    spec = ConnectorSpec("out", "sink", f"{HERE}:OutboxSink", {"outbx": "o"}, base=tmp_path)
    about = spec.describe()
    assert (about.kind, about.dataset, about.class_path) == ("sink", "case-facts",
                                                             f"{HERE}:OutboxSink")
    assert about.summary == "Writes files to an outbox (a sink that is only ever built, never " \
                            "run, here)."
    assert [o.name for o in about.options] == ["outbox", "batch", "mode", "tags"]


def test_a_bad_table_a_bad_class_and_bad_options_stop_only_their_connector(
    tmp_path: Path,
) -> None:
    path = tmp_path / "connectors.toml"
    path.write_text(
        GOOD
        + '[connectors.typo]\nkind = "sorce"\nclass = "m:C"\n'
        + '[connectors.gone]\nkind = "source"\nclass = "connectors.nowhere:Source"\n'
        + f'[connectors.misspelt]\nkind = "source"\nclass = "{LIST_SOURCE}"\n'
        + '[connectors.misspelt.options]\nrecrods = []\n'
    )
    config = read_config(path)
    assert config.names() == ["gone", "intake", "misspelt", "typo"]
    assert set(config.broken) == {"typo"}  # the table itself is wrong
    checked = {name: str(error) if error else None for name, error in config.check().items()}
    assert checked["intake"] is None
    assert checked["typo"] == "connectors.typo.kind: must be 'source' or 'sink', not 'sorce'"
    assert (checked["gone"] or "").startswith(
        "connectors.gone.class: cannot import 'connectors.nowhere': ModuleNotFoundError"
    )
    assert (checked["misspelt"] or "").endswith(
        "connectors.misspelt.options.recrods: unknown option (declared: records)"
    )


def test_the_host_runs_the_good_connector_beside_a_broken_one(
    tmp_path: Path, connector_service: CaseService
) -> None:
    path = tmp_path / "connectors.toml"
    path.write_text(GOOD + '[connectors.typo]\nkind = "source"\nclass = "m:C"\ncolour = 1\n')
    host = ConnectorHost.from_file(path, connector_service, tmp_path / "connectors",
                                   files=private_files())
    try:
        assert host.run("intake", until_idle=True).applied == 1
        with pytest.raises(ConnectorConfigError, match=r"^connectors\.typo\.colour: unknown key"):
            host.run("typo", until_idle=True)
        statuses = {status.name: status for status in host.status()}
        assert statuses["intake"].lag == 0
        assert statuses["typo"].errors == [
            "configuration: connectors.typo.colour: unknown key; allowed: class, connector, "
            "description, kind, on_error, options"
        ]
        erased = host.erase_person(ErasureSubject(uuid.uuid4(), "756.9217.0769.85"))
        assert [(e.path, e.outcome) for e in erased] == [("connector typo", "not reached")]
    finally:
        host.close()
    assert set(connector_service.case_ids()) == {uuid.uuid5(NAMESPACE, "A")}


@pytest.mark.parametrize(
    ("text", "expected"),
    [  # after the five lines of GOOD
        ("[connectors.a\n", "line 6, column 14: not valid TOML: Expected ']'"),
        ('[connectors.a]\nkind = "sink\n', "line 7, column 13: not valid TOML: Illegal char"),
    ],
)
def test_a_file_that_is_not_toml_is_refused_whole_naming_file_line_and_reason(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "connectors.toml"
    path.write_text(GOOD + text)
    with pytest.raises(ConnectorConfigError) as refused:
        read_config(path)
    assert str(refused.value).startswith(f"{path} {expected}")


def test_an_unknown_top_level_key_is_still_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "connectors.toml"
    path.write_text("[connector.a]\n" + GOOD)
    with pytest.raises(ConnectorConfigError, match="unknown top-level key 'connector'"):
        read_config(path)


def test_a_class_whose_module_fails_on_import_is_that_connectors_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only ImportError: a module that raises anything on import (someone's bug) makes
    its connector broken, and `check` still reaches the others."""
    (tmp_path / "sdk_options_broken_module.py").write_text("RATE = 1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = ConnectorSpec("x", "source", "sdk_options_broken_module:Any", {}, base=tmp_path)
    with pytest.raises(ConnectorConfigError,
                       match=r"^connectors\.x\.class: cannot import .*: ZeroDivisionError"):
        spec.load()

