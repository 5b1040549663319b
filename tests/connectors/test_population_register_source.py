"""The population-register source through the connector runtime on a real SQLite store (and,
end to end, the real broker): proposals on the right cases, skips with their reasons, the same
delivery twice, malformed deliveries refused whole, a crash mid-delivery resumed."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from bus.consumer import Received
from bus.effects_sqlite import SQLiteEffectStore
from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, ensure_topics
from connectors.host import ConnectorHost, ConnectorSpec
from domain.application.cases import CaseService
from domain.case import SWISS_TIME
from domain.commands import parse_command
from domain.events import ClosureProposed, HandoverProposed
from domain.personal_data import ErasureSubject
from domain.reference import load_reference_data
from nervenbahn.config import Settings
from nervenbahn.container import Container, build_service, close_service, private_files
from tests.bus.waiting import wait_until
from tests.domain.case_desk import person_input

DATA = Path(__file__).parent / "data" / "ech0020"
REFERENCE = load_reference_data()

# The fixtures' persons (AHVN13 in the delivery files) and where their cases are opened.
MOVES_TO_OLTEN = "7561000000016"  # case in Solothurn (so-solothurn); moves in to Olten
DIES = "7561000000023"  # case in Olten
MOVES_IN_REGION = "7561000000030"  # case in Bettlach; moves in to Grenchen (same region)
UNKNOWN = "7561000000047"  # no case
CLOSED = "7561000000054"  # closed case in Solothurn; moves out to Germany


TODAY = datetime(2025, 10, 25, 9, 0, tzinfo=SWISS_TIME)
"""The fixtures' deliveries were sent 17-22 October 2025; the store's clock reads a few days on."""


@pytest.fixture
def register_service(connector_settings: Settings) -> Iterator[CaseService]:
    """The case service on the test's SQLite store, its clock at TODAY."""
    service = build_service(connector_settings, clock=lambda: TODAY)
    yield service
    close_service(service)


@pytest.fixture
def register_bus(
    connector_settings: Settings, register_service: CaseService, kafka_settings: KafkaSettings
) -> Iterator[Container]:
    """The bus of that service on the real broker (a topic prefix of the test's own)."""
    bus = Container(connector_settings, kafka=kafka_settings, service=register_service)
    ensure_topics(kafka_settings, catalogue(kafka_settings))
    yield bus
    bus.close()


def _actor(bfs: int, role: str = "caseworker") -> dict[str, str]:
    return {"user_id": "cw-1", "role": role, "organisation": REFERENCE.municipality(bfs).region_id}


def _open(service: CaseService, ahvn13: str, bfs: int) -> UUID:
    opened = service.execute(
        parse_command(
            "open_case",
            {
                "actor": _actor(bfs),
                "correlation_id": str(uuid.uuid4()),
                "municipality_bfs": bfs,
                "household_size": 1,
                "applicant": person_input(int(ahvn13[-4:]), ahvn13=ahvn13),
            },
        )
    )
    return opened.case_id


def _cases(service: CaseService) -> dict[str, UUID]:
    cases = {
        MOVES_TO_OLTEN: _open(service, MOVES_TO_OLTEN, 2601),
        DIES: _open(service, DIES, 2581),
        MOVES_IN_REGION: _open(service, MOVES_IN_REGION, 2543),
        CLOSED: _open(service, CLOSED, 2601),
    }
    service.execute(
        parse_command(
            "close_case",
            {
                "actor": _actor(2601),
                "correlation_id": str(uuid.uuid4()),
                "case_id": str(cases[CLOSED]),
                "reason": "other",
            },
        )
    )
    return cases


def _runtime(tmp_path: Path, service: CaseService, bus: Container | None = None) -> ConnectorHost:
    spec = ConnectorSpec(
        "register",
        "source",
        "connectors.population_register:RegisterSource",
        {"inbox": "inbox", "organisation": "so-canton"},
        base=tmp_path,
    )
    return ConnectorHost(
        {"register": spec}, service, tmp_path / "connectors", None if bus is None else lambda: bus,
        files=private_files(),
    )


def _inbox(tmp_path: Path, *names: str) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(DATA / name, inbox / name.removesuffix(".bad"))
    return inbox


GOOD = sorted(p.name for p in DATA.glob("*.xml"))


def _proposals(service: CaseService, case_id: UUID) -> dict[str, tuple[str, Any]]:
    """Each proposal of the case: its kind, and the region (handover) or reason (closure)."""
    case = service.get_case(case_id)
    return {
        ref: (p.kind, p.to_region if p.kind == "handover" else p.reason)
        for ref, p in case.proposals.items()
    }


def _count(service: CaseService, case_id: UUID, event: str) -> int:
    return [entry.event for entry in service.history(case_id)].count(event)


def test_a_delivery_run_proposes_exactly_what_the_register_reported(
    tmp_path: Path, register_service: CaseService
) -> None:
    cases = _cases(register_service)
    _inbox(tmp_path, *GOOD)
    runtime = _runtime(tmp_path, register_service)
    report = runtime.run("register", until_idle=True)

    assert report.ok
    # 5 events: a handover, a closure; move within the region, unknown person, closed case
    assert (report.items, report.applied, report.skipped, report.refused) == (5, 2, 3, 0)
    assert _proposals(register_service, cases[MOVES_TO_OLTEN]) == {
        "so-ewr-2025-000101/0": ("handover", "so-olten")
    }
    assert _proposals(register_service, cases[DIES]) == {
        "so-ewr-2025-000099/0": ("closure", "death")
    }
    assert _proposals(register_service, cases[MOVES_IN_REGION]) == {}
    assert _proposals(register_service, cases[CLOSED]) == {}
    moved = register_service.get_case(cases[MOVES_TO_OLTEN])
    assert moved.social_region == "so-solothurn"  # a proposal, never a handover
    proposal = moved.proposals["so-ewr-2025-000101/0"]
    assert proposal.proposed_on.isoformat() == "2025-10-15"  # the arrival date
    # the last position is the latest delivery by header (0005, sent 2025-10-22 07:45 +02:00)
    assert report.position == "2025-10-22T05:45:00.000000Z/so-ewr-2025-000104/0000"
    status = runtime.status_of("register")
    assert (status.lag, status.error_count) == (0, 0)
    runtime.close()


def test_skipped_events_carry_their_reasons(tmp_path: Path, register_service: CaseService) -> None:
    _cases(register_service)
    _inbox(tmp_path, *GOOD)
    runtime = _runtime(tmp_path, register_service)
    source = runtime.connector("register")
    items = list(source.read(None))  # type: ignore[union-attr]
    reasons = {item.reference.split(" ")[0]: item.skipped for item in items}
    assert reasons == {
        "0002-death.xml": None,
        "0001-move-in-olten.xml": None,
        "0003-move-in-grenchen.xml": "move within the social region so-oberer-leberberg",
        "0004-death-unknown-person.xml": "no open case for this person",
        "0005-move-out-abroad.xml": "the person's case is closed",
    }
    # in the order of the eCH-0058 headers, not of the file names
    assert [i.reference.split(" ")[0] for i in items][:2] == [
        "0002-death.xml",
        "0001-move-in-olten.xml",
    ]
    runtime.close()


def test_the_same_delivery_twice_and_a_second_run_change_nothing(
    tmp_path: Path, register_service: CaseService
) -> None:
    cases = _cases(register_service)
    inbox = _inbox(tmp_path, *GOOD)
    runtime = _runtime(tmp_path, register_service)
    first = runtime.run("register", until_idle=True)
    again = runtime.run("register", until_idle=True)
    assert (again.items, again.applied) == (0, 0)
    # the register sends the death delivery again under another file name: same header, same
    # position, nothing new
    shutil.copy(DATA / "0002-death.xml", inbox / "0002-death-resent.xml")
    resent = runtime.run("register", until_idle=True)
    assert (resent.items, resent.applied) == (0, 0)
    runtime.close()
    # even read from the start (its positions lost), the domain refuses the proposals again
    _inbox(tmp_path, *GOOD)
    shutil.copy(DATA / "0002-death.xml", inbox / "0002-death-resent.xml")
    fresh = ConnectorHost(runtime.specs, register_service, tmp_path / "connectors-anew",
                          files=private_files())
    anew = fresh.run("register", until_idle=True)
    # 5 events and the resent copy of the death: both proposals and the copy found applied
    assert (anew.items, anew.applied, anew.already) == (6, 0, first.applied + 1)
    assert _count(register_service, cases[DIES], "ClosureProposed") == 1
    assert _count(register_service, cases[MOVES_TO_OLTEN], "HandoverProposed") == 1
    fresh.close()


def test_processed_deliveries_are_deleted_and_their_position_kept(
    tmp_path: Path, register_service: CaseService
) -> None:
    _cases(register_service)
    inbox = _inbox(tmp_path, *GOOD)
    runtime = _runtime(tmp_path, register_service)

    first = runtime.run("register", until_idle=True)

    assert first.items == len(GOOD) and first.ok
    assert list(inbox.iterdir()) == []  # AHVN13, names and birth dates gone with them
    assert runtime.state.position("register") == first.position
    runtime.close()


def test_erase_deletes_a_processed_delivery_and_reports_a_pending_one(
    tmp_path: Path, register_service: CaseService
) -> None:
    cases = _cases(register_service)
    inbox = _inbox(tmp_path, "0002-death.xml")
    runtime = _runtime(tmp_path, register_service)
    person = register_service.get_case(cases[DIES]).applicant.open()
    subject = ErasureSubject.of(person, person.person_id)
    pending = runtime.erase_person(subject)
    runtime.run("register", until_idle=True)
    _inbox(tmp_path, "0002-death.xml")  # processed (its position saved), dropped again

    erased = runtime.erase_person(subject)

    assert [(Path(f.path).name, f.outcome) for f in pending] == [
        ("0002-death.xml", "not reached")]
    assert "not processed yet" in pending[0].detail
    assert [(Path(f.path).name, f.outcome) for f in erased] == [("0002-death.xml", "deleted")]
    assert list(inbox.iterdir()) == []
    runtime.close()


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ("malformed.xml.bad", "malformed.xml line 28 column"),
        ("invalid-vn.xml.bad", "eCH-0020:deathPerson/eCH-0044:vn"),
        ("missing-death-date.xml.bad", "eCH-0020:deathData is required"),
        (
            "bad-check-digit-vn.xml.bad",
            "bad-check-digit-vn.xml line 23: element /eCH-0020:delivery/eCH-0020:death/"
            "eCH-0020:deathPerson/eCH-0044:vn: not a valid AHVN13",
        ),
    ],
)
def test_a_bad_delivery_is_refused_whole_and_listed_in_status(
    tmp_path: Path, register_service: CaseService, bad: str, where: str
) -> None:
    cases = _cases(register_service)
    _inbox(tmp_path, "0002-death.xml", bad)
    runtime = _runtime(tmp_path, register_service)
    report = runtime.run("register", until_idle=True)
    assert not report.ok and where in (report.stopped_by or "")
    assert report.items == 0 and _proposals(register_service, cases[DIES]) == {}
    status = runtime.status_of("register")
    assert status.error_count == 1 and where in status.errors[0]
    assert "input cannot be read" in status.lag_note
    assert "7569787756757" not in status.errors[0]  # the number is personal data
    assert (tmp_path / "inbox" / bad.removesuffix(".bad")).exists()
    # the file removed, the run goes on with what is there
    (tmp_path / "inbox" / bad.removesuffix(".bad")).unlink()
    assert runtime.run("register", until_idle=True).applied == 1
    runtime.close()


def test_a_crash_mid_delivery_resumes_without_loss_or_duplicate(
    tmp_path: Path, register_service: CaseService, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = _cases(register_service)
    _inbox(tmp_path, *GOOD)
    runtime = _runtime(tmp_path, register_service)
    execute = register_service.execute
    calls = {"n": 0}

    def crash_after_second(command: Any) -> Any:
        result = execute(command)
        calls["n"] += 1
        if calls["n"] == 2:  # the 2nd command is executed, its position not yet saved
            raise RuntimeError("store went away")
        return result

    monkeypatch.setattr(register_service, "execute", crash_after_second)
    with pytest.raises(RuntimeError, match="store went away"):
        runtime.run("register", until_idle=True)
    assert runtime.state.position("register") == (
        "2025-10-17T14:40:00.000000Z/so-ewr-2025-000099/0000"  # the death, 1st by header
    )
    monkeypatch.setattr(register_service, "execute", execute)
    resumed = runtime.run("register", until_idle=True)
    assert resumed.ok and (resumed.items, resumed.applied, resumed.already) == (4, 0, 1)
    for person, kind in ((MOVES_TO_OLTEN, "HandoverProposed"), (DIES, "ClosureProposed")):
        assert _count(register_service, cases[person], kind) == 1
    runtime.close()


def test_the_proposal_reaches_the_case_events_topic(
    tmp_path: Path, register_service: CaseService, register_bus: Container
) -> None:
    cases = _cases(register_service)
    _inbox(tmp_path, *GOOD)
    runtime = _runtime(tmp_path, register_service, register_bus)
    assert runtime.run("register", until_idle=True).applied == 2
    register_bus.relay("case-events").run(threading.Event(), until_caught_up=True)

    seen: list[Received] = []
    store = SQLiteEffectStore(tmp_path / "reader.db")
    consumer = register_bus.consumer(
        "case-events", "register-reader", lambda r, tx: seen.append(r), store
    )
    with consumer:
        wanted = {HandoverProposed.__name__, ClosureProposed.__name__}
        wait_until(
            lambda: wanted <= {r.event_type.rsplit(".", 1)[-1] for r in seen},
            step=lambda: consumer.poll_once(200),
            what="proposal events on the case-events topic",
        )
    store.close()
    proposals = [r for r in seen if r.event_type.rsplit(".", 1)[-1] == "HandoverProposed"]
    assert len(proposals) == 1
    assert proposals[0].event.originator_id == cases[MOVES_TO_OLTEN]
    assert proposals[0].event.external_reference == "so-ewr-2025-000101/0"
    runtime.close()


def test_the_demo_delivery_proposes_a_handover_and_a_closure(
    tmp_path: Path, register_service: CaseService
) -> None:
    from connectors.population_register.demo import demo_register_delivery

    cases = _cases(register_service)
    spec = ConnectorSpec(
        "population_register",
        "source",
        "connectors.population_register:RegisterSource",
        {"inbox": "inbox/register"},
        base=tmp_path,
    )
    runtime = ConnectorHost({spec.name: spec}, register_service, tmp_path / "connectors",
                            files=private_files())
    report = demo_register_delivery(runtime, cases[MOVES_TO_OLTEN], cases[DIES], today=TODAY.date())
    assert report.ok and (report.items, report.applied) == (2, 2)
    (moved,) = _proposals(register_service, cases[MOVES_TO_OLTEN]).values()
    assert moved[0] == "handover" and moved[1] != "so-solothurn"
    assert list(_proposals(register_service, cases[DIES]).values()) == [("closure", "death")]
    runtime.close()
