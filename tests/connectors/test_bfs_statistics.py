"""The BFS statistics sink without a broker: facts handed to it as the consumer would, in the
consumer's SQLite transactions; expected rows worked out by hand (tests/connectors/bfs_fixture)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bus.consumer import Received, Rejected
from bus.effects import EffectStore
from connectors.bfs_statistics import FIELDS, SOURCES, BfsStatisticsSink
from connectors.host import ConnectorHost, ConnectorSpec
from connectors.options import OptionsError
from nervenbahn.config import load_settings
from nervenbahn.container import private_files
from projections.reporting_facts import CaseFact
from tests.connectors import bfs_fixture as fx
from tests.connectors.sink_stores import BACKENDS, open_sink_store

FIELDS_MD = Path(__file__).resolve().parents[2] / "connectors" / "bfs_statistics" / "FIELDS.md"


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EffectStore]:
    store = open_sink_store(request, tmp_path / "consumer.db")
    yield store
    store.close()


def make_sink(tmp_path: Path, store: EffectStore, **options: Any) -> BfsStatisticsSink:
    # every fact of these tests comes from partition 0 of a one-partition topic
    sink = BfsStatisticsSink("bfs", {"outbox": str(tmp_path / "outbox"), "partitions": 1,
                                     **options})
    with store.transaction() as tx:
        sink.setup(tx)
    return sink


def received(fact: CaseFact, offset: int = 0) -> Received:
    return Received(fact, fact.fact_id, "CaseFact", "t.facts", 0, offset, {})


def feed(sink: BfsStatisticsSink, store: EffectStore, facts: Sequence[CaseFact]) -> list[str]:
    """One batch: handle every fact, then deliver (as the runtime does)."""
    with store.transaction() as tx:
        for offset, fact in enumerate(facts):
            sink.handle(received(fact, offset), tx)
    with store.transaction() as tx:
        return sink.deliver(tx)


def deliver_and_die(sink: BfsStatisticsSink, store: EffectStore) -> None:
    """Deliver, then die before the transaction commits."""
    with store.transaction() as tx:
        sink.deliver(tx)
        raise KeyboardInterrupt


def lines(tmp_path: Path, month: str) -> list[str]:
    return (tmp_path / "outbox" / f"bfs-shs-so-{month}.csv").read_text().splitlines()


def test_february_delivers_dossiers_and_bookings_computed_by_hand(
    tmp_path: Path, store: EffectStore
) -> None:
    sink = make_sink(tmp_path, store, first_month="2026-02", complete_through="2026-02")

    written = feed(sink, store, fx.facts())

    assert written == ["bfs-shs-so-2026-02.csv"]
    assert lines(tmp_path, "2026-02") == fx.EXPECTED_FEBRUARY


def test_months_are_delivered_once_complete_from_the_first_support_on(
    tmp_path: Path, store: EffectStore
) -> None:
    sink = make_sink(tmp_path, store)

    first = feed(sink, store, fx.facts())  # latest recorded: 2026-03-03 → Feb complete
    second = feed(sink, store, [fx.CLOSE_P1, fx.AFTER_APRIL])  # recorded 05-04 → March, April

    assert first == [f"bfs-shs-so-{m}.csv" for m in ("2025-12", "2026-01", "2026-02")]
    assert second == ["bfs-shs-so-2026-03.csv", "bfs-shs-so-2026-04.csv"]
    assert lines(tmp_path, "2025-12")[1:] == [
        fx.dossier("2025-12", fx.P2, 1, fx.SOLOTHURN, "new", "2025-12-01"),
        fx.booking("2025-12", fx.P2, 1, "2025-12", "1500.00"),
    ]
    assert lines(tmp_path, "2026-01")[1:] == [
        fx.dossier("2026-01", fx.P1, 1, fx.OLTEN, "new", "2026-01-16", household=2),
        fx.dossier("2026-01", fx.P2, 1, fx.SOLOTHURN, "ongoing", "2025-12-01"),
        fx.booking("2026-01", fx.P1, 1, "2026-01", "1600.00"),
        fx.booking("2026-01", fx.P2, 1, "2026-01", "1500.00"),
    ]
    assert lines(tmp_path, "2026-04")[1:] == [
        fx.dossier("2026-04", fx.P1, 1, fx.OLTEN, "closed", "2026-01-16", "2026-04-10",
                   "employment", household=3),
        fx.dossier("2026-04", fx.P2, 2, fx.OLTEN, "ongoing", "2026-02-15"),
        fx.dossier("2026-04", fx.P4, 1, fx.OLTEN, "ongoing", "2026-02-01"),
        fx.booking("2026-04", fx.P1, 1, "2026-04", "826.67"),
        fx.booking("2026-04", fx.P2, 2, "2026-04", "1500.00"),
    ]


def test_a_late_fact_for_delivered_months_becomes_corrections_in_the_next_delivery(
    tmp_path: Path, store: EffectStore
) -> None:
    sink = make_sink(tmp_path, store, first_month="2026-01")
    feed(sink, store, fx.facts())
    february = (tmp_path / "outbox" / "bfs-shs-so-2026-02.csv").read_bytes()

    feed(sink, store, [fx.LATE_P2, fx.CLOSE_P1, fx.AFTER_APRIL])

    assert (tmp_path / "outbox" / "bfs-shs-so-2026-02.csv").read_bytes() == february
    march = lines(tmp_path, "2026-03")
    assert [line for line in march if ",correction," in line] == [
        fx.booking("2026-03", fx.P2, 1, "2026-01", "300.00", "correction"),
        fx.booking("2026-03", fx.P2, 1, "2026-02", "150.00", "correction"),
        fx.booking("2026-03", fx.P2, 2, "2026-02", "150.00", "correction"),
    ]
    assert fx.booking("2026-03", fx.P2, 2, "2026-03", "1800.00") in march
    assert not [line for line in lines(tmp_path, "2026-04") if ",correction," in line]


def test_the_same_facts_again_change_nothing(tmp_path: Path, store: EffectStore) -> None:
    sink = make_sink(tmp_path, store)
    feed(sink, store, fx.facts())
    before = {p.name: p.read_bytes() for p in (tmp_path / "outbox").iterdir()}

    again = feed(sink, store, fx.facts())

    assert again == []
    assert {p.name: p.read_bytes() for p in (tmp_path / "outbox").iterdir()} == before


def test_a_crash_after_writing_before_the_commit_leaves_one_file_as_recorded(
    tmp_path: Path, store: EffectStore
) -> None:
    sink = make_sink(tmp_path, store, first_month="2026-02")
    with store.transaction() as tx:
        for offset, fact in enumerate(fx.facts()):
            sink.handle(received(fact, offset), tx)
    with pytest.raises(KeyboardInterrupt):
        deliver_and_die(sink, store)
    written_before = lines(tmp_path, "2026-02")

    with store.transaction() as tx:
        assert sink.deliver(tx) == ["bfs-shs-so-2026-02.csv"]
    assert lines(tmp_path, "2026-02") == written_before == fx.EXPECTED_FEBRUARY
    assert sorted(p.name for p in (tmp_path / "outbox").iterdir()) == ["bfs-shs-so-2026-02.csv"]


def test_a_lost_delivery_file_is_written_again_from_its_record(
    tmp_path: Path, store: EffectStore
) -> None:
    sink = make_sink(tmp_path, store, first_month="2026-02")
    feed(sink, store, fx.facts())
    (tmp_path / "outbox" / "bfs-shs-so-2026-02.csv").write_text("damaged")
    with store.transaction() as tx:
        problems = sink.problems(tx)

    with store.transaction() as tx:
        rewritten = sink.deliver(tx)

    assert problems == [f"bfs-shs-so-2026-02.csv: missing or changed in {tmp_path / 'outbox'}; "
                        "the next run writes it again"]
    assert rewritten == ["bfs-shs-so-2026-02.csv"]
    assert lines(tmp_path, "2026-02") == fx.EXPECTED_FEBRUARY


def test_grace_days_hold_a_month_back(tmp_path: Path, store: EffectStore) -> None:
    sink = make_sink(tmp_path, store, first_month="2026-02", grace_days=4)

    # February is complete once a fact recorded on or after 1 March + 4 days = 03-05 is seen
    assert feed(sink, store, fx.facts()) == []  # latest recorded: 03-03
    assert feed(sink, store, [fx.LATE_P2]) == ["bfs-shs-so-2026-02.csv"]  # recorded 03-05


def test_a_partition_not_read_yet_holds_every_month_back(
    tmp_path: Path, store: EffectStore
) -> None:
    sink = make_sink(tmp_path, store, first_month="2026-02", partitions=2)

    # partition 0 has seen a fact recorded on 03-03, but partition 1 nothing yet: a case whose
    # facts all lie there could still have February support
    assert feed(sink, store, fx.facts()) == []
    with store.transaction() as tx:
        sink.handle(Received(fx.LATE_P2, fx.LATE_P2.fact_id, "CaseFact", "t.facts", 1, 0, {}), tx)
    with store.transaction() as tx:
        assert sink.deliver(tx) == ["bfs-shs-so-2026-02.csv"]  # both partitions past February


def test_what_is_not_a_case_fact_is_rejected(tmp_path: Path, store: EffectStore) -> None:
    sink = make_sink(tmp_path, store)
    fact = fx.facts()[0]

    with pytest.raises(Rejected, match="CaseClosed is not a CaseFact"), \
            store.transaction() as tx:
        sink.handle(Received(object(), fact.fact_id, "CaseClosed", "t", 0, 0, {}), tx)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"canton": "Solothurn"}, "canton: 'Solothurn' is not a canton abbreviation"),
        ({"first_month": "2026-13"}, "first_month: '2026-13' is not a month YYYY-MM"),
        ({"complete_through": 202603},
         "complete_through: Input should be a valid string, not an integer"),
        ({"grace_days": -1}, "grace_days: -1 is not a whole number of days"),
        ({"grace_days": True}, "grace_days: Input should be a valid integer, not a boolean"),
        ({"outbx": "x"}, "outbx: unknown option (declared: outbox, canton, "),
        ({"partitions": 0}, "partitions: 0 is not a number of partitions"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionsError) as refused:
        BfsStatisticsSink("bfs", options)
    assert str(refused.value).startswith("connectors.bfs.options." + message)


def test_fields_md_documents_every_column_and_its_source() -> None:
    text = FIELDS_MD.read_text()
    documented = re.findall(r"^\| `(\w+)` \|", text, re.MULTILINE)

    assert documented == [f.name for f in FIELDS]
    assert all(url in text for url in (s.split(": ")[-1] for s in SOURCES.values()
                                       if "http" in s))


def test_without_the_option_the_partitions_are_those_of_the_bus_topics(
    tmp_path: Path, connector_service: Any
) -> None:
    settings = load_settings({"NERVENBAHN_STORE": f"sqlite:///{tmp_path / 's.db'}",
                              "NERVENBAHN_KAFKA_PARTITIONS": "8"})
    spec = ConnectorSpec("bfs", "sink", "connectors.bfs_statistics:BfsStatisticsSink",
                         {"outbox": str(tmp_path / "outbox")}, base=tmp_path)
    host = ConnectorHost({"bfs": spec}, connector_service, tmp_path / "connectors",
                         files=private_files(), partitions=settings.kafka.partitions)
    try:
        sink = host.connector("bfs")
    finally:
        host.close()

    assert isinstance(sink, BfsStatisticsSink) and sink.partitions == 8
    assert BfsStatisticsSink("bfs", {}).partitions == 4  # unbound: the bus's default
