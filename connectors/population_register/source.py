"""`RegisterSource`: eCH-0020 deliveries in an inbox folder → work-list proposals.

Options (configuration file, `[connectors.NAME.options]`, declared by `RegisterOptions`):

- `inbox` (required): the folder the register drops its delivery files (`*.xml`) into;
- `organisation` (default `so-canton`): the organisation of the system actor the proposals are
  made by (`population-register`, role `system`).

Order and position. Deliveries are read in the order of their eCH-0058 header (messageDate in
UTC, then messageId), whatever their file names; an item is one event of a delivery and its
position is `<messageDate UTC>/<messageId>/<event index>`, increasing in that order. The
external reference of a proposal is `<messageId>/<event index>`, so the same delivery read
twice (a second run, the file dropped again, a crash between executing and saving the
position) proposes nothing twice (rule `already-received`).

Retention. A delivery is deleted as soon as every event of it is processed (its last position
saved): it holds AHVN13, names and birth dates, and nothing reads it again — the position is
kept in the connectors' state, each proposal names the delivery's message id. A delivery found
processed at the start of a run (a run stopped before removing it) is deleted then. `person
erase` deletes a processed delivery naming the person and reports one not processed yet.

Every file of the inbox is parsed and validated before anything is yielded: one malformed or
invalid file refuses the run (`SourceInputError` naming file, line, element and reason), since
its place in the order cannot be known; nothing of it is applied, and the next run stops there
again until the file is fixed or removed.

What an event asks for (persons matched by AHVN13 or by our person id sent as local id, see
`matcher.py`; every member of an open case counts):

| event | condition | command |
| --- | --- | --- |
| moveIn (main residence), move | municipality of another region of the canton | ProposeHandover |
| moveIn, move | municipality of the case's own region | skipped: move within the region |
| moveOut | goes abroad, to another canton, or to an unknown place | ProposeClosure (moved_away) |
| moveOut | goes to a municipality of the canton | skipped: the move-in delivery decides |
| death | — | ProposeClosure (death) |
| any | no open case for the person; the person's case is closed | skipped, with the reason |
| other eCH-0020 events | — | skipped: not an event the connector acts on |
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
from pydantic import Field

from connectors.population_register.delivery import Delivery, RegisterEvent, read_delivery
from connectors.population_register.matcher import CaseMatch, PersonIndex
from connectors.sdk import ConnectorOptions, Source, SourceInputError, SourceItem
from domain.case import Case
from domain.commands import Actor, Command, ProposeClosure, ProposeHandover
from domain.errors import ReferenceDataError
from domain.personal_data import ErasedFile, ErasureSubject

__all__ = ["ACTOR_USER", "SOURCE", "RegisterOptions", "RegisterSource"]

log = structlog.get_logger("nervenbahn.connectors.population_register")

SOURCE = "population-register"
"""The `source` named on every proposal."""
ACTOR_USER = "population-register"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:nervenbahn:connector:population_register")
CANTON = "SO"


class RegisterOptions(ConnectorOptions):
    """The options of the population register source."""

    inbox: str = Field(
        description="The folder the register drops its delivery files (*.xml) into "
        "(relative: to the configuration file)."
    )
    organisation: str = Field(
        "so-canton", description="The organisation of the system actor that makes the "
        "proposals (user population-register, role system)."
    )


class RegisterSource(Source):
    """Handover and closure proposals from the population register's eCH-0020 deliveries."""

    Options = RegisterOptions
    options: RegisterOptions

    def read(self, after: str | None) -> Iterator[SourceItem]:
        deliveries = self._deliveries()  # every file validated before anything is yielded
        start = _key(after)
        for delivery in deliveries:
            if _processed(delivery, start):  # from a run that stopped before removing it
                _remove(delivery)
        pending = [
            (delivery, event)
            for delivery in deliveries
            for event in delivery.events
            if _after(_position(delivery, event), start)
        ]
        if not pending:
            return
        open_cases, closed_cases = self._indexes()
        for delivery, event in pending:
            yield self._item(delivery, event, open_cases, closed_cases)
            if event is delivery.events[-1]:
                # resumed: the runtime saved the position of the delivery's last event
                _remove(delivery)

    def erase(self, subject: ErasureSubject, after: str | None) -> list[ErasedFile]:
        """Delete every processed delivery that names the person (by AHVN13 or our person id);
        one not processed yet is not reached (it must be read first: run the connector, then
        erase again), nor is a file that cannot be read."""
        inbox = self._inbox()
        names = [text.encode("utf-8") for text in subject.identifiers()]
        found = []
        for path in sorted(inbox.glob("*.xml")) if inbox.is_dir() else []:
            if any(name in path.read_bytes() for name in names):
                found.append(self._erase_delivery(path, _key(after)))
        return found

    def _erase_delivery(self, path: Path, start: tuple[str, str, str] | None) -> ErasedFile:
        try:
            delivery = read_delivery(path)
        except SourceInputError as exc:
            return ErasedFile(str(path), "not reached",
                              f"names the person but cannot be read ({exc}); remove it by hand")
        if not _processed(delivery, start):
            return ErasedFile(str(path), "not reached",
                              "a delivery naming the person not processed yet: run the "
                              "connector (it deletes processed deliveries), then erase again")
        _remove(delivery)
        return ErasedFile(str(path), "deleted", "processed register delivery")

    def pending(self, after: str | None) -> int | None:
        start = _key(after)
        return len(
            [
                event
                for delivery in self._deliveries()
                for event in delivery.events
                if _after(_position(delivery, event), start)
            ]
        )

    # --- input ------------------------------------------------------------------------------

    def _inbox(self) -> Path:
        assert self.context is not None, "bound by the runtime"
        return self.context.path(self.options.inbox)

    def _deliveries(self) -> list[Delivery]:
        inbox = self._inbox()
        files = sorted(inbox.glob("*.xml")) if inbox.is_dir() else []
        deliveries = [read_delivery(path) for path in files]
        return sorted(deliveries, key=lambda d: d.order)

    def _indexes(self) -> tuple[PersonIndex, PersonIndex]:
        """The person index of the open cases, and one of the closed cases (for the reason)."""
        assert self.context is not None
        service = self.context.service
        cases: list[Case] = [service.get_case(case_id) for case_id in service.case_ids()]
        closed = PersonIndex()
        for case in cases:
            if case.phase == "closed":
                closed.add(case)
        return PersonIndex.of_open_cases(cases), closed

    # --- items ------------------------------------------------------------------------------

    def _item(
        self,
        delivery: Delivery,
        event: RegisterEvent,
        open_cases: PersonIndex,
        closed_cases: PersonIndex,
    ) -> SourceItem:
        position = _position(delivery, event)
        reference = f"{delivery.message_id}/{event.index}"
        where = f"{delivery.path.name} line {event.line} {event.element} ({reference})"

        def skipped(reason: str) -> SourceItem:
            return SourceItem(position, (), where, skipped=reason)

        if event.kind == "other" or event.person is None:
            return skipped(f"{event.element}: not an event this connector acts on")
        if event.note:
            return skipped(event.note)
        matches = _matches(open_cases, event)
        if not matches:
            if _matches(closed_cases, event):
                return skipped("the person's case is closed")
            return skipped("no open case for this person")
        commands: list[Command] = []
        reasons: list[str] = []
        for match in matches:
            command, reason = self._command(event, match, reference)
            if command is not None:
                commands.append(command)
            else:
                reasons.append(reason)
        if not commands:
            return skipped("; ".join(dict.fromkeys(reasons)))
        return SourceItem(position, tuple(commands), where)

    def _command(
        self, event: RegisterEvent, match: CaseMatch, reference: str
    ) -> tuple[Command | None, str]:
        assert event.on is not None
        common: dict[str, Any] = {
            "actor": self._actor(),
            "correlation_id": uuid.uuid5(NAMESPACE, f"{reference}/{match.case_id}"),
            "case_id": match.case_id,
            "external_reference": reference,
            "source": SOURCE,
            "effective_date": event.on,
        }
        if event.kind == "death":
            return ProposeClosure(reason="death", **common), ""
        if event.kind == "move_out":
            if event.municipality_bfs is not None and self._in_canton(event):
                return None, (
                    f"move out to {event.destination or event.municipality_bfs} within the "
                    "canton: the move-in delivery of the new municipality decides"
                )
            return ProposeClosure(reason="moved_away", **common), ""
        # move in, move: the municipality the person lives in now
        assert event.municipality_bfs is not None
        region = self._region(event.municipality_bfs)
        if region is None:
            return None, (
                f"municipality {event.municipality_bfs} is not in the canton's reference data"
            )
        if region == match.social_region:
            return None, f"move within the social region {region}"
        return ProposeHandover(to_municipality_bfs=event.municipality_bfs, **common), ""

    def _actor(self) -> Actor:
        return Actor(ACTOR_USER, "system", self.options.organisation)

    def _region(self, bfs: int) -> str | None:
        assert self.context is not None
        try:
            return self.context.service.reference.municipality(bfs).region_id
        except ReferenceDataError:
            return None

    def _in_canton(self, event: RegisterEvent) -> bool:
        if event.canton is not None and event.canton != CANTON:
            return False
        return (
            event.municipality_bfs is not None and self._region(event.municipality_bfs) is not None
        )


def _matches(index: PersonIndex, event: RegisterEvent) -> list[CaseMatch]:
    """Open cases of the event's person: by AHVN13, and by our person id sent as local id."""
    person = event.person
    if person is None:
        return []
    found = {m.case_id: m for m in index.by_local_id(person.local_category, person.local_id)}
    if person.vn:
        found.update((m.case_id, m) for m in index.by_ahvn13(person.vn))
    return sorted(found.values(), key=lambda m: str(m.case_id))


def _processed(delivery: Delivery, start: tuple[str, str, str] | None) -> bool:
    """True if every event of the delivery is at or before the completed position."""
    return start is not None and not any(
        _after(_position(delivery, event), start) for event in delivery.events
    )


def _remove(delivery: Delivery) -> None:
    """Delete a processed delivery: it holds personal data (AHVN13, name, birth date) and is
    not needed again — its position is kept, a proposal names its message id."""
    delivery.path.unlink(missing_ok=True)
    log.info("processed delivery deleted", file=delivery.path.name,
             message_id=delivery.message_id)


def _position(delivery: Delivery, event: RegisterEvent) -> str:
    when, message_id = delivery.order
    return f"{when}/{message_id}/{event.index:04d}"


def _key(position: str | None) -> tuple[str, str, str] | None:
    """A position as comparable parts (the messageId may itself contain '/')."""
    if position is None:
        return None
    when, rest = position.split("/", 1)
    message_id, index = rest.rsplit("/", 1)
    return (when, message_id, index)


def _after(position: str, start: tuple[str, str, str] | None) -> bool:
    key = _key(position)
    return start is None or (key is not None and key > start)
