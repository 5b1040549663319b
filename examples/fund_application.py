"""A reference fund application: a SIMULATION of AKSO's new software, written only against the
nervenbahn bus (confluent-kafka and the standard library; no nervenbahn code).

It reads the topics and the schema registry from `serve`'s `GET /asyncapi.json` (or takes them
as options), consumes the benefit applications topic in a consumer group of its own, tracks
each application, and when one has been forwarded to the fund decides it and writes a
`FundDecision` to the decisions topic (key = application id; Confluent's AvroSerializer against
the served registry, `auto.register.schemas=False`, `use.latest.version=True`,
TopicRecordNameStrategy; the decisions topic carries no headers). nervenbahn's fund-decisions
connector records each decision; the relay then publishes it on the applications topic.

**The decisions are simulated.** Nothing here is AKSO's rules or anyone's real finances:

- The applicant's finances are not on the bus (the applicant is sealed; no financial fields),
  so they are invented, deterministically, from the application id (SHA-256 of its text):
  monthly rent CHF 900-1,990, AHV or IV pension between the minimum and the maximum full
  pension, an occupational pension of CHF 0-1,190 a month, assets CHF 0-119,000.
- EL (ELG Art. 9-11, simplified): annual EL = recognised expenses (general living needs of a
  single person, rent up to the maximum of region 2, the health-insurance premium as a lump
  sum) minus recognised income (the pensions, and 1/10 of assets above the allowance for an
  old-age pension, 1/15 for an IV pension). Annual figures of the decision's year from
  `examples/el_figures.json` (sources, and which figures could not be confirmed, are in it);
  one person living alone at home, nothing else (no earnings, no property, no couple).
  Refused `assets_above_limit` above the asset threshold (ELG Art. 9a), `income_sufficient` if
  expenses <= income; else granted from the month of the application (ELG Art. 12) with
  monthly CHF = annual / 12 rounded to the franc, one period.
- IPV: a flat simulated premium reduction a month, from the month of the application.
- An application forwarded with documents missing (and not received since) is refused
  `documents_missing` for about half of them (chosen by the id), decided as above otherwise.

Idempotent: the decision id is a UUID v5 of the application id and the decision's kind, so a
restart never publishes a second, different decision. At each start the program reads the
applications topic from its beginning (it commits no offsets: the topic is its memory) and
decides only applications that are forwarded and not yet decided once it has caught up;
one decided already (a `BenefitGranted` or `BenefitRefused` event) is never decided again.
Should it publish a decision again before the first came back, the decision id is the same,
and nervenbahn records it once.

    python examples/fund_application.py --asyncapi http://127.0.0.1:8000/asyncapi.json \\
        --user akso-fund --key "$BUS_READER_KEY" --idle-seconds 30

**Paying claims** (with `--payments-dir DIR`; `examples/fund_payments.py` has the details):
the program also reads the claims topic (`<prefix>.benefits.claims.v1`, one
`ReimbursementClaim` per claim or correction a case recorded; from the AsyncAPI document or
`--claims`) and, once caught up, pays each `claim_id` once: one pain.001.001.09 file in DIR
(the shape of nervenbahn's payments sink), `claim_total` to the social region (its account
from `--region-accounts FILE`, else a simulated one), `surplus_total` to the person (a
simulated account of the fund's own records), from the fund's account (`--fund-iban`, else
simulated); a negative total is not paid but reported as `to_return`. The files are its
memory: a claim whose file exists is paid. For each claim it then writes a `ClaimPaid` to the
decisions topic (key = application id), and again at every start for the claims whose files
exist (a crash between the file and the report loses nothing); nervenbahn records it on the
case once (`ReimbursementPaid`). Order per claim: the file (atomically), its output line,
then the report.

    python examples/fund_application.py --asyncapi http://127.0.0.1:8000/asyncapi.json \\
        --user akso-fund --key "$BUS_READER_KEY" --payments-dir outbox/fund \\
        --region-accounts region_accounts.json

The key is a `bus_reader` API key (`nervenbahn apikeys add --consumer akso-fund --scope
bus_reader`): it may look up the FundDecision and ClaimPaid schemas' latest versions, which
is all a producer needs (registering is neither needed nor allowed). Output: JSON lines (a
`simulation` notice, one line per decision, one per payment (`claim_paid`), a `caught_up`
line whenever it has read all there is, a summary at the end). SIGTERM or SIGINT stops it cleanly;
`--idle-seconds` stops it after that long without a new message once it has its partitions
(tests, demo).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fund_payments import (
    FUND_NAME,
    Account,
    ClaimRefusedError,
    Payment,
    Payments,
    iban_is_valid,
    load_region_accounts,
    simulated_iban,
)

NAMESPACE = "ch.nervenbahn.benefits"
DECISION_IDS = uuid.UUID("5d0c7f4e-2b1a-4c7e-9f3d-6a1e0b8c4f21")
"""The namespace of the decision ids (uuid5 of `<application id>:<kind>`)."""
FIGURES = Path(__file__).with_name("el_figures.json")
SWISS = ZoneInfo("Europe/Zurich")
SIMULATION = ("SIMULATION: decisions of a reference fund application with invented finances "
              "and a simplified EL calculation (examples/fund_application.py), not AKSO's")


@dataclass
class Application:
    """What the fund knows of one application from the applications topic."""

    application_id: str
    kind: str = ""
    received_on: date | None = None
    forwarded: bool = False
    missing: set[str] = field(default_factory=set)
    decided: str | None = None
    """The kind decided (granted, refused), once the decision came back."""
    decision_id: str | None = None


@dataclass(frozen=True)
class Finances:
    """The applicant's simulated finances (CHF, invented from the application id)."""

    rent_monthly: int
    pension_monthly: int
    occupational_monthly: int
    assets: int


@dataclass(frozen=True)
class Decision:
    """A decision of the fund, as the FundDecision record needs it."""

    application_id: str
    kind: str
    from_month: date | None
    monthly_chf: Decimal | None
    reason: str | None

    @property
    def decision_id(self) -> str:
        """The same for the same application and kind, whenever it is decided."""
        return str(uuid.uuid5(DECISION_IDS, f"{self.application_id}:{self.kind}"))

    def record(self, decided_on: date) -> dict[str, Any]:
        """The FundDecision record (Avro field names)."""
        amounts = ([{"from_month": self.from_month, "monthly_chf": self.monthly_chf}]
                   if self.monthly_chf is not None else [])
        return {"decision_id": self.decision_id, "application_id": self.application_id,
                "kind": self.kind, "decided_on": decided_on, "from_month": self.from_month,
                "amounts": amounts, "reason": self.reason, "condition_ceased_on": None}


# --- the simulation ------------------------------------------------------------------------------


def simulated_finances(application_id: str, kind: str, figures: dict[str, Any]) -> Finances:
    """Invented, reproducible finances: the bytes of SHA-256 of the application id pick them."""
    digest = hashlib.sha256(application_id.encode()).digest()
    low, high = figures["ahv_pension_monthly_min"], figures["ahv_pension_monthly_max"]
    return Finances(rent_monthly=900 + digest[0] % 110 * 10,
                    pension_monthly=low + digest[1] * (high - low) // 255,
                    occupational_monthly=digest[2] % 120 * 10,
                    assets=digest[3] % 120 * 1000)


def documents_not_handed_in(application_id: str) -> bool:
    """Whether the applicant of an application forwarded with documents missing never hands
    them in (about half, by the id)."""
    return hashlib.sha256(f"documents:{application_id}".encode()).digest()[0] % 2 == 0


def annual_el(finances: Finances, kind: str, figures: dict[str, Any]) -> Decimal:
    """Recognised expenses minus recognised income, a year (negative: income suffices)."""
    expenses = (Decimal(figures["living_needs_single"])
                + min(Decimal(finances.rent_monthly * 12),
                      Decimal(figures["rent_maximum_single_region_2"]))
                + Decimal(str(figures["health_premium_lump_sum"])))
    share = Fraction(figures["asset_share_invalidity" if kind == "el_iv"
                             else "asset_share_old_age"])
    above = max(0, finances.assets - figures["asset_allowance_single"])
    income = (Decimal((finances.pension_monthly + finances.occupational_monthly) * 12)
              + Decimal(above * share.numerator) / share.denominator)
    return expenses - income


def decide(application: Application, figures: dict[str, Any]) -> Decision:
    """The fund's (simulated) decision on a forwarded application."""
    assert application.received_on is not None
    month = application.received_on.replace(day=1)  # ELG Art. 12: from the month applied in
    app_id = application.application_id
    if application.missing and documents_not_handed_in(app_id):
        return Decision(app_id, "refused", None, None, "documents_missing")
    if application.kind == "ipv":
        flat = Decimal(figures["ipv_premium_reduction_monthly"]).quantize(Decimal("0.01"))
        return Decision(app_id, "granted", month, flat, None)
    finances = simulated_finances(app_id, application.kind, figures)
    if finances.assets > figures["asset_threshold_single"]:
        return Decision(app_id, "refused", None, None, "assets_above_limit")
    annual = annual_el(finances, application.kind, figures)
    if annual <= 0:
        return Decision(app_id, "refused", None, None, "income_sufficient")
    monthly = (annual / 12).quantize(Decimal("1"), rounding=ROUND_HALF_UP)
    return Decision(app_id, "granted", month, monthly.quantize(Decimal("0.01")), None)


def next_to_decide(applications: Iterable[Application], room: int | None) -> list[Application]:
    """The forwarded, undecided applications the fund decides next: those received first
    (they have waited longest), at most `room` of them (None: all)."""
    waiting = sorted((a for a in applications if a.forwarded and a.decided is None
                      and a.received_on is not None),
                     key=lambda a: (a.received_on, a.application_id))
    return waiting if room is None else waiting[:max(room, 0)]


def figures_of(year: int, path: Path = FIGURES) -> tuple[int, dict[str, Any]]:
    """The figures of `year`, or of the latest year before it that the file has."""
    years = {int(y): values for y, values in json.loads(path.read_text())["years"].items()}
    known = [y for y in years if y <= year]
    if not known:
        raise SystemExit(f"error: {path} has no figures for {year} or before")
    return max(known), years[max(known)]


# --- the bus -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bus:
    """Where the application reads and writes."""

    bootstrap: str
    applications: str
    decisions: str
    registry: str
    claims: str | None = None
    """The claims topic (only read with `--payments-dir`)."""


def discover(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Bus:
    """The topics, brokers and registry: options first, the AsyncAPI document for the rest."""
    found = {"bootstrap": args.bootstrap, "applications": args.applications,
             "decisions": args.decisions, "registry": args.registry}
    described: dict[str, str] = {}
    if args.asyncapi is not None:
        if not args.asyncapi.startswith(("http://", "https://")):
            parser.error("--asyncapi: give an http:// or https:// URL")
        with urllib.request.urlopen(args.asyncapi, timeout=30) as response:  # noqa: S310
            document = json.load(response)
        described = _from_asyncapi(document)
        described["registry"] = args.asyncapi.rsplit("/", 1)[0] + "/registry"
        found = {name: found[name] or described.get(name) for name in found}
    missing = [f"--{name}" for name, value in found.items() if not value]
    claims = args.claims or described.get("claims")
    if args.payments_dir is not None and not claims:
        missing.append("--claims")
    if missing:
        parser.error(f"{', '.join(missing)}: not given and not in the AsyncAPI document")
    return Bus(**found, claims=claims)


def _from_asyncapi(document: dict[str, Any]) -> dict[str, str]:
    """The applications, decisions and claims topics (by the records on them) and the
    brokers."""
    found: dict[str, str] = {}
    for channel in document["channels"].values():
        names = {ref["$ref"].rsplit("/", 1)[-1] for ref in channel["messages"].values()}
        if "ApplicationReceived" in names:
            found["applications"] = channel["address"]
        if "FundDecision" in names:
            found["decisions"] = channel["address"]
        if "ReimbursementClaim" in names:
            found["claims"] = channel["address"]
    server = document.get("servers", {}).get("installation", {})
    if "{" not in server.get("host", "{"):
        found["bootstrap"] = server["host"]
    return found


class Fund:
    """Tracks the applications and publishes the fund's decisions; with `payments`, pays the
    claims and reports them paid."""

    def __init__(self, bus: Bus, registry: SchemaRegistryClient, producer: Producer,
                 today: Callable[[], date], capacity: int | None = None,
                 payments: Payments | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(SWISS)) -> None:
        self.bus = bus
        self.capacity = capacity
        """At most this many decisions in this run (None: every waiting application)."""
        self.applications: dict[str, Application] = {}
        self.today = today
        """Today in Swiss time, asked at each decision: a run past midnight or New Year dates
        its decisions (and picks its figures) on the day it makes them."""
        self.year, self.figures = figures_of(today().year)
        self.registry = registry
        self.deserialize = AvroDeserializer(registry)
        self.seen: set[str] = set()
        """The event ids taken."""
        self.counts = {"duplicates": 0, "mismatches": 0}
        subject = f"{bus.decisions}-{NAMESPACE}.FundDecision"
        latest = registry.get_latest_version(subject)  # a bus_reader may look it up
        self.serialize = AvroSerializer(registry, latest.schema.schema_str, conf={
            "auto.register.schemas": False, "use.latest.version": True,
            "subject.name.strategy": topic_record_subject_name_strategy})
        self.producer = producer
        self.published: list[Decision] = []
        self.payments = payments
        self.now = now
        self.claims: dict[str, dict[str, Any]] = {}
        """The claims taken and not yet paid in this run, by claim id."""
        self.paid: list[Payment] = []
        self.claim_ids: set[str] = set()
        if payments is not None:
            paid_subject = f"{bus.decisions}-{NAMESPACE}.ClaimPaid"
            paid_schema = registry.get_latest_version(paid_subject).schema.schema_str
            self.serialize_paid = AvroSerializer(registry, paid_schema, conf={
                "auto.register.schemas": False, "use.latest.version": True,
                "subject.name.strategy": topic_record_subject_name_strategy})

    def take(self, message: Message) -> None:
        """Track one message of the applications topic: once per `event_id` (a message may
        come twice), and only if its writer schema is the record its `event_type` names."""
        if self.bus.claims is not None and message.topic() == self.bus.claims:
            self.take_claim(message)
            return
        headers = {str(h[0]): (h[1].decode() if isinstance(h[1], bytes) else "")
                   for h in message.headers() or []}
        event_type, value = headers.get("event_type", ""), message.value() or b""
        event_id = headers.get("event_id")
        if event_id is not None and event_id in self.seen:
            self.counts["duplicates"] += 1
            return
        writer = self.registry.get_schema(int.from_bytes(value[1:5], "big"))
        name = str(json.loads(writer.schema_str or "{}").get("name", ""))
        if name.rsplit(".", 1)[-1] != event_type:
            self.counts["mismatches"] += 1  # never act on a value of another type
            return
        record = self.deserialize(value, SerializationContext(
            self.bus.applications, MessageField.VALUE))
        if not isinstance(record, dict):
            return
        if event_id is not None:
            self.seen.add(event_id)
        app_id = str(record["application_id"])
        application = self.applications.setdefault(app_id, Application(app_id))
        if event_type == "ApplicationReceived":
            application.kind, application.received_on = record["kind"], record["received_on"]
        elif event_type == "CompletenessChecked":
            application.missing = set(record["missing"])
        elif event_type == "DocumentsReceived":
            application.missing -= set(record["documents"])
        elif event_type == "ApplicationForwarded":
            application.forwarded, application.missing = True, set(record["missing"])
        elif event_type in ("BenefitGranted", "BenefitRefused"):
            application.decided = "granted" if event_type == "BenefitGranted" else "refused"
            application.decision_id = str(record["correlation_id"])
        elif event_type == "ApplicationWithdrawn":
            application.decided = "withdrawn"

    def take_claim(self, message: Message) -> None:
        """Keep one claim of the claims topic to pay: once per `claim_id` (a claim may come
        twice), and only a `ReimbursementClaim` (by its writer schema)."""
        value = message.value() or b""
        writer = self.registry.get_schema(int.from_bytes(value[1:5], "big"))
        if json.loads(writer.schema_str or "{}").get("name") != "ReimbursementClaim":
            self.counts["mismatches"] += 1
            return
        claim = self.deserialize(value, SerializationContext(self.bus.claims, MessageField.VALUE))
        if not isinstance(claim, dict):
            return
        claim_id = str(claim["claim_id"])
        if claim_id in self.claim_ids:
            self.counts["claim_duplicates"] = self.counts.get("claim_duplicates", 0) + 1
            return
        self.claim_ids.add(claim_id)
        self.claims[claim_id] = claim

    def pay_waiting(self, announce: Callable[[Payment], None]) -> list[Payment]:
        """Pay the claims taken (call when caught up): each one's file, `announce`d, then its
        `ClaimPaid` (a claim whose file exists: only the report, again)."""
        if self.payments is None:
            return []
        made = []
        for claim_id, claim in list(self.claims.items()):
            try:
                payment = self.payments.pay(claim, self.now())
            except ClaimRefusedError as refused:  # figures that do not add up: never paid
                print(json.dumps({"claim_refused": refused.claim_id, "reason": refused.reason}),
                      flush=True)
                del self.claims[claim_id]
                continue
            announce(payment)
            value = self.serialize_paid(payment.record(), SerializationContext(
                self.bus.decisions, MessageField.VALUE))
            self.producer.produce(self.bus.decisions, key=payment.application_id.encode(),
                                  value=value)
            del self.claims[claim_id]
            made.append(payment)
        if made and self.producer.flush(30) != 0:
            raise SystemExit("error: claims paid not reported within 30 s")
        self.paid.extend(made)
        return made

    def decide_waiting(self) -> list[Decision]:
        """Decide and publish the forwarded, undecided applications, those received first, up
        to the run's capacity (call when caught up)."""
        made = []
        room = None if self.capacity is None else self.capacity - len(self.published)
        for application in next_to_decide(self.applications.values(), room):
            today = self.today()
            if today.year != self.year:
                self.year, self.figures = figures_of(today.year)
            decision = decide(application, self.figures)
            value = self.serialize(decision.record(today), SerializationContext(
                self.bus.decisions, MessageField.VALUE))
            self.producer.produce(self.bus.decisions, key=application.application_id.encode(),
                                  value=value)
            application.decided, application.decision_id = decision.kind, decision.decision_id
            made.append(decision)
        if made and self.producer.flush(30) != 0:
            raise SystemExit("error: decisions not delivered within 30 s")
        self.published.extend(made)
        return made


# --- the program ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Decide forwarded applications until stopped (SIGTERM, SIGINT, or `--idle-seconds`)."""
    stopping = _stop_on_signals()  # first: a SIGTERM during start-up stops it cleanly too
    parser = _parser()
    args = parser.parse_args(argv)
    bus = discover(args, parser)
    registry = SchemaRegistryClient({"url": bus.registry,
                                     "basic.auth.user.info": f"{args.user}:{args.key}"})
    producer = Producer({"bootstrap.servers": bus.bootstrap, "enable.idempotence": True,
                         "acks": "all"})
    payments = _payments(args)
    fund = Fund(bus, registry, producer, lambda: datetime.now(SWISS).date(), args.capacity,
                payments)
    print(json.dumps({"simulation": SIMULATION, "figures_year": fund.year,
                      "applications_topic": bus.applications, "decisions_topic": bus.decisions,
                      "claims_topic": bus.claims if payments else None,
                      "payments_dir": str(args.payments_dir) if payments else None}),
          flush=True)
    timeout = args.session_timeout_ms
    consumer = Consumer({"bootstrap.servers": bus.bootstrap, "group.id": args.group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": timeout,
                         "heartbeat.interval.ms": max(timeout // 3, 100)})
    consumer.subscribe([bus.applications, *([bus.claims] if payments and bus.claims else [])])
    try:
        _run(consumer, fund, args.idle_seconds, stopping)
    finally:
        consumer.close()
        producer.flush(30)
        if payments is not None:
            payments.close()
    _summary(fund)
    return 0


def _run(consumer: Consumer, fund: Fund, idle_seconds: float | None,
         stopping: list[bool]) -> None:
    """Consume; whenever a poll finds nothing new (caught up), decide what waits."""
    idle_since = time.monotonic()
    reading = True
    while not stopping and (idle_seconds is None
                            or time.monotonic() - idle_since < idle_seconds):
        batch = consumer.consume(100, timeout=0.5)
        for message in batch:
            if message.error() is not None:
                raise SystemExit(f"error: {message.error()}")
            fund.take(message)
        if batch or not consumer.assignment():
            # Idle only counts with partitions: after a crash the group waits for the dead
            # member's session to time out before it assigns them again.
            idle_since, reading = time.monotonic(), reading or bool(batch)
            continue
        if reading:
            reading = False  # nothing new: say so once, until something arrives
            print(json.dumps({"caught_up": len(fund.applications), "decided": sum(
                1 for a in fund.applications.values() if a.decided)}), flush=True)
        fund.pay_waiting(lambda payment: print(json.dumps(payment.line()), flush=True))
        for decision in fund.decide_waiting():
            print(json.dumps({"decision_id": decision.decision_id,
                              "application_id": decision.application_id, "kind": decision.kind,
                              "from_month": decision.from_month, "reason": decision.reason,
                              "monthly_chf": decision.monthly_chf, "simulated": True},
                             default=str), flush=True)


def _summary(fund: Fund) -> None:
    apps = fund.applications.values()
    decided = sorted((a.application_id, a.decision_id) for a in apps if a.decision_id)
    print(json.dumps({
        "applications": len(fund.applications),
        "forwarded": sum(1 for a in apps if a.forwarded),
        "published": {kind: sum(1 for d in fund.published if d.kind == kind)
                      for kind in ("granted", "refused")},
        "decision_ids": dict(decided), **fund.counts,
        "payments": {"written": sum(1 for p in fund.paid if not p.paid_already),
                     "paid_already": sum(1 for p in fund.paid if p.paid_already)},
        "simulation": True,
    }), flush=True)


def _payments(args: argparse.Namespace) -> Payments | None:
    """The fund's payments, if `--payments-dir` is given (accounts checked first)."""
    if args.payments_dir is None:
        return None
    fund_iban = (args.fund_iban or simulated_iban("fund")).replace(" ", "")
    if not iban_is_valid(fund_iban) or not fund_iban.startswith("CH"):
        raise SystemExit(f"error: --fund-iban: {fund_iban!r} is no Swiss IBAN")
    return Payments(args.payments_dir, Account(FUND_NAME, fund_iban,
                                               simulated=args.fund_iban is None),
                    load_region_accounts(args.region_accounts))


def _stop_on_signals() -> list[bool]:
    """A flag list that SIGTERM and SIGINT make non-empty."""
    stopping: list[bool] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return stopping


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asyncapi", help="URL of serve's AsyncAPI document "
                        "(http://host:8000/asyncapi.json): topics, brokers and, beside it, the "
                        "registry (/registry)")
    parser.add_argument("--bootstrap", help="host:port[,host:port] (else from --asyncapi)")
    parser.add_argument("--applications", help="the applications topic (else from --asyncapi)")
    parser.add_argument("--decisions", help="the decisions topic (else from --asyncapi)")
    parser.add_argument("--registry", help="the schema registry's URL (else beside --asyncapi)")
    parser.add_argument("--user", required=True, help="the API key's consumer name")
    parser.add_argument("--key", required=True, help="a bus_reader API key")
    parser.add_argument("--group", default="akso-fund", help="this application's consumer group")
    parser.add_argument("--capacity", type=int, default=None,
                        help="decide at most this many applications in this run, those "
                        "received first (a fund with a backlog; default: all waiting)")
    parser.add_argument("--payments-dir", type=Path, default=None,
                        help="pay the claims of the claims topic: one pain.001 file per claim "
                        "in this folder, which is also the fund's memory of what it paid "
                        "(default: pay nothing)")
    parser.add_argument("--claims", help="the claims topic (else from --asyncapi)")
    parser.add_argument("--region-accounts", type=Path, default=None,
                        help='JSON {"<region id>": {"name": ..., "iban": ...}}: the social '
                        "regions' accounts (default: simulated accounts)")
    parser.add_argument("--fund-iban", default=None,
                        help="the fund's own account, a Swiss IBAN (default: simulated)")
    parser.add_argument("--idle-seconds", type=float, default=None,
                        help="stop after this long without a new message (default: never)")
    parser.add_argument("--session-timeout-ms", type=int, default=45000,
                        help="6000 on the embedded broker (docs/bus.md)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
