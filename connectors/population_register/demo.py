"""One register delivery for the demo: a move to another social region and a death.

`demo_register_delivery(runtime, moving, dying)` writes two eCH-0020 v3 deliveries (valid
against the schema) for the applicants of two open cases into the inbox of the configured
register source, runs the source until idle and returns its report: a handover proposal on the
first case, a closure proposal (death) on the second.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from uuid import UUID
from xml.sax.saxutils import escape

from connectors.host import ConnectorHost, RunReport
from domain.case import SWISS_TIME
from domain.personal_data import PersonalData, SealedPersonalData

__all__ = ["delivery_xml", "demo_register_delivery"]

_HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<eCH-0020:delivery xmlns:eCH-0020="http://www.ech.ch/xmlns/eCH-0020/3"
    xmlns:eCH-0058="http://www.ech.ch/xmlns/eCH-0058/5"
    xmlns:eCH-0044="http://www.ech.ch/xmlns/eCH-0044/4"
    xmlns:eCH-0011="http://www.ech.ch/xmlns/eCH-0011/8"
    xmlns:eCH-0007="http://www.ech.ch/xmlns/eCH-0007/5" version="3.0">
  <eCH-0020:deliveryHeader>
    <eCH-0058:senderId>sedex://T4-500000-1</eCH-0058:senderId>
    <eCH-0058:messageId>{message_id}</eCH-0058:messageId>
    <eCH-0058:messageType>http://www.ech.ch/xmlns/eCH-0020/3</eCH-0058:messageType>
    <eCH-0058:sendingApplication>
      <eCH-0058:manufacturer>Kanton Solothurn</eCH-0058:manufacturer>
      <eCH-0058:product>Einwohnerregister SO</eCH-0058:product>
      <eCH-0058:productVersion>3.0</eCH-0058:productVersion>
    </eCH-0058:sendingApplication>
    <eCH-0058:messageDate>{sent}</eCH-0058:messageDate>
    <eCH-0058:action>1</eCH-0058:action>
    <eCH-0058:testDeliveryFlag>true</eCH-0058:testDeliveryFlag>
  </eCH-0020:deliveryHeader>
{event}</eCH-0020:delivery>
"""


def _person(ahvn13: str, person_id: UUID, family: str, given: str, born: date) -> str:
    return f"""<eCH-0044:vn>{ahvn13}</eCH-0044:vn>
      <eCH-0044:localPersonId>
        <eCH-0044:personIdCategory>CH.NERVENBAHN</eCH-0044:personIdCategory>
        <eCH-0044:personId>{person_id}</eCH-0044:personId>
      </eCH-0044:localPersonId>
      <eCH-0044:officialName>{escape(family)}</eCH-0044:officialName>
      <eCH-0044:firstName>{escape(given)}</eCH-0044:firstName>
      <eCH-0044:sex>3</eCH-0044:sex>
      <eCH-0044:dateOfBirth><eCH-0044:yearMonthDay>{born}</eCH-0044:yearMonthDay></eCH-0044:dateOfBirth>"""


def delivery_xml(
    message_id: str,
    sent: datetime,
    person: str,
    *,
    death_on: date | None = None,
    move_in: tuple[int, str, date] | None = None,
) -> str:
    """A delivery of one event: a death, or a move in (municipality BFS, name, arrival)."""
    if death_on is not None:
        event = f"""  <eCH-0020:death>
    <eCH-0020:deathPerson>
      {person}
    </eCH-0020:deathPerson>
    <eCH-0020:deathData>
      <eCH-0011:deathPeriod><eCH-0011:dateFrom>{death_on}</eCH-0011:dateFrom></eCH-0011:deathPeriod>
    </eCH-0020:deathData>
  </eCH-0020:death>
"""
    elif move_in is not None:
        bfs, name, arrival = move_in
        event = f"""  <eCH-0020:moveIn>
    <eCH-0020:moveInPerson>
      <eCH-0020:personIdentification>
      {person}
      </eCH-0020:personIdentification>
    </eCH-0020:moveInPerson>
    <eCH-0020:hasMainResidence>
      <eCH-0020:reportingMunicipality>
        <eCH-0007:municipalityId>{bfs}</eCH-0007:municipalityId>
        <eCH-0007:municipalityName>{escape(name)}</eCH-0007:municipalityName>
        <eCH-0007:cantonAbbreviation>SO</eCH-0007:cantonAbbreviation>
      </eCH-0020:reportingMunicipality>
      <eCH-0020:arrivalDate>{arrival}</eCH-0020:arrivalDate>
    </eCH-0020:hasMainResidence>
  </eCH-0020:moveIn>
"""
    else:
        raise ValueError("a delivery needs death_on or move_in")
    return _HEADER.format(message_id=message_id, sent=sent.isoformat(), event=event)


def demo_register_delivery(
    runtime: ConnectorHost,
    moving: UUID,
    dying: UUID,
    name: str = "population_register",
    today: date | None = None,
) -> RunReport:
    """Write a move of `moving`'s applicant to another region and the death of `dying`'s
    applicant into the register source's inbox, and run the source until idle."""
    service = runtime.service
    spec = runtime.spec(name)
    inbox = Path(spec.options["inbox"]).expanduser()
    inbox = inbox if inbox.is_absolute() else spec.base / inbox
    inbox.mkdir(parents=True, exist_ok=True)
    today = today or datetime.now(SWISS_TIME).date()
    sent = datetime.now(SWISS_TIME).replace(microsecond=0)
    for n, (case_id, kind) in enumerate(((moving, "move"), (dying, "death"))):
        case = service.get_case(case_id)
        applicant = case.applicant
        if isinstance(applicant, SealedPersonalData):
            applicant = applicant.open()
        if not isinstance(applicant, PersonalData):
            raise ValueError(f"case {case_id}: the applicant's personal data is not open")
        person = _person(
            str(applicant.ahvn13).replace(".", ""),  # eCH-0044 vn: 13 digits
            applicant.person_id,
            str(applicant.family_name),
            str(applicant.given_name),
            applicant.birth_date,
        )
        message_id = f"demo-{uuid.uuid4().hex[:12]}"
        if kind == "move":
            target = next(
                m
                for m in sorted(service.reference.municipalities.values(), key=lambda m: m.bfs)
                if m.region_id != case.social_region
            )
            xml = delivery_xml(
                message_id, sent, person, move_in=(target.bfs, target.name, today - timedelta(2))
            )
        else:
            xml = delivery_xml(
                message_id, sent + timedelta(seconds=1), person, death_on=today - timedelta(3)
            )
        (inbox / f"{sent:%Y%m%d%H%M%S}-{n}-{message_id}.xml").write_text(xml, encoding="utf-8")
    return runtime.run(name, until_idle=True)
