"""Reading one eCH-0020 v3 delivery file (eCH-0058 envelope): parse, validate, extract events.

A delivery is accepted whole or refused whole: the file is parsed (with the line of every
element kept) and validated against the eCH-0020 schema (`schema.load_schema`) before anything
is extracted. Because the schema derived from the f variant leaves eCH-0020's own elements
optional, the extraction then REQUIRES what eCH-0020 requires for the events this connector
acts on (the person, the event's date, the destination) and refuses their absence. Every
refusal is a `SourceInputError` naming the file, the line, the element and the reason.
"""

from __future__ import annotations

import pyexpat
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import xmlschema

from connectors.population_register.schema import load_schema
from connectors.sdk import SourceInputError
from domain.personal_data import normalise_ahvn13

__all__ = ["Delivery", "PersonId", "RegisterEvent", "read_delivery"]

NS = {
    "e20": "http://www.ech.ch/xmlns/eCH-0020/3",
    "e58": "http://www.ech.ch/xmlns/eCH-0058/5",
    "e44": "http://www.ech.ch/xmlns/eCH-0044/4",
    "e11": "http://www.ech.ch/xmlns/eCH-0011/8",
    "e07": "http://www.ech.ch/xmlns/eCH-0007/5",
}
PREFIX = {uri: "eCH-" + uri.rsplit("eCH-", 1)[1].split("/")[0] for uri in NS.values()}
"""The prefix an element path is shown with in messages (`eCH-0020:delivery`)."""


def _shown(path: str) -> str:
    """A path of `{uri}local` or `e20:local` steps, with the eCH prefixes of the messages."""
    for short, uri in NS.items():
        path = path.replace("{" + uri + "}", PREFIX[uri] + ":").replace(
            short + ":", PREFIX[uri] + ":"
        )
    return path


EventKind = Literal["move_in", "move", "move_out", "death", "other"]
HANDLED: dict[str, EventKind] = {
    "moveIn": "move_in",
    "move": "move",
    "moveOut": "move_out",
    "death": "death",
}
"""eCH-0020 event elements the connector acts on (children of `delivery`)."""


@dataclass(frozen=True)
class PersonId:
    """eCH-0044 identification of the person an event is about."""

    vn: str | None
    local_category: str
    local_id: str


@dataclass(frozen=True)
class RegisterEvent:
    """One event of a delivery, reduced to what the connector needs."""

    index: int
    element: str
    """The event element's name (`moveIn`, `death`, …)."""
    kind: EventKind
    line: int
    person: PersonId | None = None
    on: date | None = None
    """The event's date: arrival, moving, departure or death."""
    municipality_bfs: int | None = None
    """The municipality the person now lives in (move in, move; move out within Switzerland)."""
    canton: str | None = None
    """The canton of that municipality, if the delivery names it."""
    destination: str = ""
    """Where a move out goes, in words ("abroad: DE", "unknown", "Bern (BE)")."""
    note: str = ""
    """Why an event of a handled kind asks for nothing (e.g. a secondary residence)."""


@dataclass(frozen=True)
class Delivery:
    """A validated delivery: its eCH-0058 header and its events."""

    path: Path
    message_id: str
    message_date: datetime
    sender_id: str
    events: tuple[RegisterEvent, ...]

    @property
    def order(self) -> tuple[str, str]:
        """The delivery's place in the input: messageDate (UTC), then messageId."""
        return (utc_text(self.message_date), self.message_id)


def utc_text(moment: datetime) -> str:
    """A messageDate as sortable UTC text (a date without zone is taken as UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def read_delivery(path: Path) -> Delivery:
    """Parse and validate the delivery file; SourceInputError naming line and element if not."""
    root, lines = _parse(path)
    _validate(path, root, lines)
    return _Extractor(path, lines).delivery(root)


# --- parsing with line numbers -----------------------------------------------------------------


def _parse(path: Path) -> tuple[ET.Element, dict[int, int]]:
    """The element tree and the line of each element (by id), from expat."""
    parser = pyexpat.ParserCreate(namespace_separator="}")
    builder = ET.TreeBuilder()
    lines: dict[int, int] = {}

    def name(raw: str) -> str:
        return "{" + raw if "}" in raw else raw

    def start(tag: str, attrs: dict[str, str]) -> None:
        element = builder.start(name(tag), {name(k): v for k, v in attrs.items()})
        lines[id(element)] = parser.CurrentLineNumber

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda tag: builder.end(name(tag))
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(path.read_bytes(), True)
    except pyexpat.ExpatError as exc:
        raise SourceInputError(
            f"{path.name} line {exc.lineno} column {exc.offset}: malformed XML: "
            f"{pyexpat.errors.messages[exc.code]}; nothing of this delivery was applied"
        ) from None
    except OSError as exc:
        raise SourceInputError(f"{path.name}: cannot be read: {exc}") from None
    return builder.close(), lines


def _validate(path: Path, root: ET.Element, lines: dict[int, int]) -> None:
    schema = load_schema()
    errors: list[xmlschema.XMLSchemaValidationError] = []
    for error in schema.iter_errors(root):
        errors.append(error)
        if len(errors) >= 5:
            break
    if not errors:
        return
    first = errors[0]
    element = first.elem if first.elem is not None else root
    line = lines.get(id(element), lines.get(id(root), 1))
    where = _shown(first.path or "/" + root.tag)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise SourceInputError(
        f"{path.name} line {line}: element {where}: invalid against eCH-0020 v3: "
        f"{first.reason or first.message}{more}; nothing of this delivery was applied"
    )


# --- extraction ----------------------------------------------------------------------------------


class _Extractor:
    """Reads the validated tree, requiring what eCH-0020 requires for the handled events."""

    def __init__(self, path: Path, lines: dict[int, int]) -> None:
        self.path = path
        self.lines = lines

    def refuse(self, element: ET.Element, path: str, reason: str) -> SourceInputError:
        line = self.lines.get(id(element), 1)
        return SourceInputError(
            f"{self.path.name} line {line}: element {_shown(path)}: {_shown(reason)}; "
            "nothing of this delivery was applied"
        )

    def child(self, element: ET.Element, path: str, step: str) -> ET.Element:
        """The required child `prefix:local` of element (at `path`), or refuse."""
        found = element.find(step, NS)
        if found is None:
            raise self.refuse(element, path, f"{step} is required by eCH-0020 for this event")
        return found

    def text(self, element: ET.Element, path: str, step: str) -> str:
        return (self.child(element, path, step).text or "").strip()

    def delivery(self, root: ET.Element) -> Delivery:
        header = self.child(root, "/e20:delivery", "e20:deliveryHeader")
        hpath = "/e20:delivery/e20:deliveryHeader"
        message_id = self.text(header, hpath, "e58:messageId")
        message_date = datetime.fromisoformat(self.text(header, hpath, "e58:messageDate"))
        sender = self.text(header, hpath, "e58:senderId")
        event_date = header.findtext("e58:eventDate", namespaces=NS)
        events = [
            self.event(index, element, event_date)
            for index, element in enumerate(e for e in root if e is not header)
        ]
        if not events:
            raise self.refuse(root, "/e20:delivery", "the delivery carries no event")
        return Delivery(self.path, message_id, message_date, sender, tuple(events))

    def event(self, index: int, element: ET.Element, header_date: str | None) -> RegisterEvent:
        local = element.tag.rsplit("}", 1)[-1]
        kind = HANDLED.get(local, "other")
        line = self.lines.get(id(element), 1)
        base = f"/e20:delivery/e20:{local}"
        if kind == "move_in":
            return self.move_in(index, element, base, line)
        if kind == "move":
            return self.move(index, element, base, line, header_date)
        if kind == "move_out":
            return self.move_out(index, element, base, line)
        if kind == "death":
            person = self.person(
                self.child(element, base, "e20:deathPerson"), base + "/e20:deathPerson"
            )
            data = self.child(element, base, "e20:deathData")
            period = self.child(data, base + "/e20:deathData", "e11:deathPeriod")
            ppath = base + "/e20:deathData/e11:deathPeriod"
            on = date.fromisoformat(self.text(period, ppath, "e11:dateFrom"))
            return RegisterEvent(index, local, kind, line, person, on)
        return RegisterEvent(index, local, "other", line)

    def person(self, element: ET.Element, path: str) -> PersonId:
        """eCH-0044 personIdentification (validated strictly by the schema; the AHVN13's
        prefix and check digit here, which the schema's pattern cannot check)."""
        local_id = self.child(element, path, "e44:localPersonId")
        lpath = path + "/e44:localPersonId"
        return PersonId(
            vn=self.vn(element, path),
            local_category=self.text(local_id, lpath, "e44:personIdCategory"),
            local_id=self.text(local_id, lpath, "e44:personId"),
        )

    def vn(self, element: ET.Element, path: str) -> str | None:
        """The person's AHVN13 (13 digits), if given; a number whose prefix or check digit is
        wrong refuses the delivery (the message leaves the number out: it is personal data,
        and status and logs show the message)."""
        found = element.find("e44:vn", NS)
        vn = (found.text or "").strip() if found is not None else ""
        if found is None or not vn:
            return None
        try:
            normalise_ahvn13(vn)
        except ValueError:
            raise self.refuse(
                found,
                path + "/e44:vn",
                "not a valid AHVN13: the 756 prefix or the check digit (EAN-13) is wrong",
            ) from None
        return vn

    def municipality(self, element: ET.Element, path: str) -> tuple[int, str | None]:
        """An eCH-0007 swissMunicipality: its BFS number (required here) and canton."""
        bfs = self.text(element, path, "e07:municipalityId")
        canton = (element.findtext("e07:cantonAbbreviation", namespaces=NS) or "").strip()
        return int(bfs), canton or None

    def move_in(self, index: int, element: ET.Element, base: str, line: int) -> RegisterEvent:
        who = self.child(element, base, "e20:moveInPerson")
        wpath = base + "/e20:moveInPerson"
        person = self.person(
            self.child(who, wpath, "e20:personIdentification"), wpath + "/e20:personIdentification"
        )
        residence = next(
            (
                r
                for step in (
                    "e20:hasMainResidence",
                    "e20:hasSecondaryResidence",
                    "e20:hasOtherResidence",
                )
                if (r := element.find(step, NS)) is not None
            ),
            None,
        )
        if residence is None:
            raise self.refuse(
                element,
                base,
                "hasMainResidence (or a secondary or other "
                "residence) is required by eCH-0020 for a move in",
            )
        rlocal = residence.tag.rsplit("}", 1)[-1]
        rpath = f"{base}/e20:{rlocal}"
        reporting = self.child(residence, rpath, "e20:reportingMunicipality")
        bfs, canton = self.municipality(reporting, rpath + "/e20:reportingMunicipality")
        on = date.fromisoformat(self.text(residence, rpath, "e20:arrivalDate"))
        note = (
            ""
            if rlocal == "hasMainResidence"
            else (f"a move in as {rlocal}: only the main residence decides the social region")
        )
        return RegisterEvent(index, "moveIn", "move_in", line, person, on, bfs, canton, note=note)

    def move(
        self, index: int, element: ET.Element, base: str, line: int, header_date: str | None
    ) -> RegisterEvent:
        person = self.person(self.child(element, base, "e20:movePerson"), base + "/e20:movePerson")
        reporting_type = self.child(element, base, "e20:moveReportingMunicipality")
        rpath = base + "/e20:moveReportingMunicipality"
        reporting = self.child(reporting_type, rpath, "e20:reportingMunicipality")
        bfs, canton = self.municipality(reporting, rpath + "/e20:reportingMunicipality")
        moving = reporting_type.findtext("e20:dwellingAddress/e11:movingDate", namespaces=NS)
        when = (moving or header_date or "").strip()
        if not when:
            raise self.refuse(
                reporting_type,
                rpath,
                "the moving date is required: "
                "e20:dwellingAddress/e11:movingDate or the header's eventDate",
            )
        return RegisterEvent(
            index, "move", "move", line, person, date.fromisoformat(when), bfs, canton
        )

    def move_out(self, index: int, element: ET.Element, base: str, line: int) -> RegisterEvent:
        person = self.person(
            self.child(element, base, "e20:moveOutPerson"), base + "/e20:moveOutPerson"
        )
        destination = self.child(element, base, "e20:moveOutReportingDestination")
        dpath = base + "/e20:moveOutReportingDestination"
        on = date.fromisoformat(self.text(destination, dpath, "e20:departureDate"))
        goes_to = self.child(destination, dpath, "e20:goesTo")
        gpath = dpath + "/e20:goesTo"
        town = goes_to.find("e11:swissTown", NS)
        if town is not None:
            bfs, canton = self.municipality(town, gpath + "/e11:swissTown")
            name = (town.findtext("e07:municipalityName", namespaces=NS) or "").strip()
            where = f"{name} ({canton})" if canton else name
            return RegisterEvent(
                index, "moveOut", "move_out", line, person, on, bfs, canton, destination=where
            )
        country = goes_to.find("e11:foreignCountry", NS)
        if country is not None:
            iso = (
                country.findtext(
                    "e11:country/{http://www.ech.ch/xmlns/eCH-0008/3}countryIdISO2", namespaces=NS
                )
                or ""
            ).strip()
            return RegisterEvent(
                index,
                "moveOut",
                "move_out",
                line,
                person,
                on,
                destination=f"abroad{': ' + iso if iso else ''}",
            )
        return RegisterEvent(index, "moveOut", "move_out", line, person, on, destination="unknown")
