"""The established identity beside the declared actor, and imports as migration steps, in the
domain: what every event records, how events stored before read (upcast, never rewritten), and
what a migration step is refused for (domain/identity.py, domain/application/importer.py)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent

from domain.application.importer import MigrationStep
from domain.commands import Actor
from domain.errors import ImportRejectedError, RuleViolationError
from domain.events import CaseEvent, CaseOpened
from domain.identity import UNKNOWN_IDENTITY, EstablishedIdentity
from tests.storage.contract import LEGACY_CASE_ID, LEGACY_FILE

from .case_desk import Desk

ADMINISTRATOR = Actor(user_id="admin-so", role="administrator", organisation="so-canton")
ALICE = EstablishedIdentity("os", "alice", "host-1")
LINES = [line + "\n" for line in LEGACY_FILE]
DIGEST = hashlib.sha256("".join(LINES).encode()).hexdigest()


def step(**fields: Any) -> MigrationStep:
    """A migration step of the legacy file by an administrator established as alice."""
    return MigrationStep(**{"importer": ADMINISTRATOR, "recorded_by": ALICE,
                            "file_name": "legacy.jsonl", "file_sha256": DIGEST, **fields})


def test_a_command_records_the_identity_the_edge_established(desk: Desk) -> None:
    web = EstablishedIdentity("web", "anna.keller")
    opened = desk.service.execute(desk.commands("open_case"), recorded_by=web)
    desk.run("complete_assessment", case_id=opened.case_id)  # the service's own: unknown here

    events = desk.events(opened.case_id)

    assert [(e.recorded_by, e.import_origin) for e in events] == [
        (web, None), (UNKNOWN_IDENTITY, None)]
    assert [str(e.recorded_by) for e in events] == ["web:anna.keller", "unknown"]
    assert [e.actor.user_id for e in events] == ["anna.keller"] * 2


def test_events_stored_before_identities_read_as_unknown_without_rewriting(desk: Desk) -> None:
    case_id = desk.assessed()
    opening, assessed = desk.service.recorder.select_events(case_id)
    old = [_stripped(desk, opening, class_version=2), _stripped(desk, assessed, class_version=1)]

    events = [desk.service.mapper.to_domain_event(stored) for stored in old]

    assert isinstance(events[0], CaseOpened) and isinstance(events[1], CaseEvent)
    assert [(e.recorded_by, e.import_origin) for e in events] == [(UNKNOWN_IDENTITY, None)] * 2
    assert events[0].household_structure is None  # v2 kept: not recorded in this opening
    assert all(b"recorded_by" not in stored.state for stored in old)  # read, not rewritten


def test_an_accepted_migration_step_puts_importer_and_digest_on_every_event(
    desk: Desk,
) -> None:
    began = desk.clock()

    report = desk.service.import_records(LINES, step())
    events = desk.events(LEGACY_CASE_ID)

    assert report.events == len(events) == len(LEGACY_FILE)
    for event in events:
        origin = event.import_origin
        assert event.imported and event.recorded_by == ALICE
        assert (origin.importer, origin.imported_at) == (ADMINISTRATOR, began)
        assert (origin.file_name, origin.file_sha256, origin.forced_reason) == (
            "legacy.jsonl", DIGEST, None)
        assert event.actor.role == "caseworker"  # the legacy record's own claim


@pytest.mark.parametrize(("fields", "rule", "field"), [
    ({"importer": Actor("cw", "caseworker", "so-solothurn")}, "import-by-administrator",
     "actor.role"),
    ({"importer": Actor("sys", "system", "so-canton")}, "import-by-administrator", "actor.role"),
    ({"recorded_by": UNKNOWN_IDENTITY}, "import-identity-established", "recorded_by"),
    ({"forced_reason": " "}, "import-forced-with-reason", "reason"),
    ({"forced_reason": "x" * 501}, "import-forced-with-reason", "reason"),
])
def test_a_migration_step_without_administrator_identity_records_nothing(
    desk: Desk, fields: dict[str, Any], rule: str, field: str
) -> None:
    before = desk.store_state(None)

    with pytest.raises(RuleViolationError) as refused:
        desk.service.import_records(LINES, step(**fields))

    assert refused.value.rule == rule and str(refused.value).startswith(f"{field}: ")
    assert desk.store_state(None) == before


def test_a_migration_step_into_a_store_in_live_use_needs_a_reason(desk: Desk) -> None:
    desk.open()
    before = desk.store_state(None)

    with pytest.raises(RuleViolationError, match=r"^force: .*\[rule: import-before-live-use\]"):
        desk.service.import_records(LINES, step())
    assert desk.store_state(None) == before

    desk.service.import_records(LINES, step(forced_reason="late file"))
    assert {e.import_origin.forced_reason for e in desk.events(LEGACY_CASE_ID)} == {"late file"}


def test_a_store_of_imported_history_alone_is_not_in_live_use(desk: Desk) -> None:
    desk.service.import_records(LINES, step())

    assert desk.service.has_live_events() is False
    desk.open()
    assert desk.service.has_live_events() is True


def test_lines_that_do_not_have_the_declared_digest_are_refused(desk: Desk) -> None:
    before = desk.store_state(None)
    changed = [*LINES, "\n"]  # a blank line: no record, another file

    with pytest.raises(ImportRejectedError, match="file_sha256: the lines read do not have"):
        desk.service.import_records(changed, step())

    assert desk.store_state(None) == before


def _stripped(desk: Desk, stored: StoredEvent, *, class_version: int) -> StoredEvent:
    """`stored` as a release before identities wrote it (at `class_version`)."""
    transcoder = desk.service.mapper.transcoder
    state = transcoder.decode(stored.state)
    del state["recorded_by"], state["import_origin"]
    if class_version == 1:
        del state["class_version"]
    else:
        state["class_version"] = class_version
    return StoredEvent(stored.originator_id, stored.originator_version, stored.topic,
                       transcoder.encode(state))
