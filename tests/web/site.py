"""The served web app of the browser tests: `nervenbahn serve` on the test broker and a SQLite
store seeded with a small realistic canton, and one user per role made through the CLI.

What is seeded (ids in `Site.cases` and `Site.applications`, so that page tests can try the
URL of something outside a user's scope):
- social-assistance cases of Olten (region so-olten: one in intake, one assessed, two
  supported) and of Grenchen (so-oberer-leberberg: one supported), opened by the region's
  caseworker, persons invented by `synthetic_person`;
- EL and IPV applications at the branch offices akso-olten and akso-grenchen: received,
  checked with documents missing and requested, forwarded to the fund.

Everything goes through the domain's command models and services, as an installation's data
would; only the clock is today's. Start-up, measured 2026-12-06 on the 2-core machine: about
16 s for the first browser test's set-up in all (broker, `init`, seeding 2 s, serve ready 2 s
later; most of the rest is the seven `nervenbahn users add` processes).
"""

from __future__ import annotations

import random
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from bus.kafka_settings import KafkaSettings
from domain import benefit_commands as bc
from domain.commands import Actor, parse_command, swiss_today
from nervenbahn.config import load_settings
from nervenbahn.container import Container
from nervenbahn.synthetic import synthetic_person
from tests.api.http import bus_variables, serve_environment, serving

__all__ = ["APPLICATION_OFFICES", "CASE_REGIONS", "Site", "WebUser", "served_site"]

READY_WITHIN_S = 60.0
"""How long `serve` may take until GET /health/ready answers 200."""

OLTEN, GRENCHEN = 2581, 2546
CASE_REGIONS = {"so-olten": OLTEN, "so-oberer-leberberg": GRENCHEN}
"""Social regions with seeded cases, and a municipality of each."""
APPLICATION_OFFICES = {"akso-olten": OLTEN, "akso-grenchen": GRENCHEN}
"""Branch offices with seeded applications, and a municipality each serves."""


@dataclass(frozen=True)
class WebUser:
    """A user account of the served web app (made with `nervenbahn users add`)."""

    username: str
    password: str
    role: str
    organisation: str
    name: str
    language: str = "de"


@dataclass(frozen=True)
class Site:
    """The served web app: its base URL, its users by role and the ids of seeded things."""

    url: str
    users: dict[str, WebUser]
    """One user per role (keys: the role), and `lockout`: a caseworker for lockout tests."""
    cases: dict[str, list[UUID]] = field(default_factory=dict)
    """Case ids by social region (CASE_REGIONS), first the supported ones."""
    applications: dict[str, list[UUID]] = field(default_factory=dict)
    """Application ids by branch office (APPLICATION_OFFICES)."""
    environment: dict[str, str] = field(default_factory=dict)
    """The served store's environment, for a `nervenbahn` command in a test (`nervenbahn`)."""

    def user(self, role: str) -> WebUser:
        """The user of `role` (or `lockout`)."""
        return self.users[role]

    def nervenbahn(self, *arguments: str, stdin: str | None = None) -> str:
        """Run `nervenbahn ARGUMENTS` on the served store; its output (fails if it fails)."""
        return _nervenbahn(self.environment, *arguments, stdin=stdin)


def _users() -> dict[str, WebUser]:
    """One user per role, with fresh passwords (the sessions's own)."""
    accounts = [
        ("caseworker", "marc.huber", "so-olten", "Marc Huber"),
        ("supervisor", "ursula.keller", "so-olten", "Ursula Keller"),
        ("branch_office", "eva.frei", "akso-olten", "Eva Frei"),
        ("fund_officer", "max.akso", "akso", "Max Meier"),
        ("canton", "sandra.vogt", "so", "Sandra Vogt"),
        ("auditor", "peter.brunner", "finanzkontrolle", "Peter Brunner"),
        ("lockout", "lea.roth", "so-olten", "Lea Roth"),
    ]
    return {
        key: WebUser(username, secrets.token_urlsafe(12), "caseworker" if key == "lockout"
                     else key, organisation, name)
        for key, username, organisation, name in accounts
    }


@contextmanager
def served_site(folder: Path, kafka: KafkaSettings, master_key: str) -> Iterator[Site]:
    """Seed a store in `folder`, add the users, and serve it until the block ends."""
    environment = serve_environment(
        folder, NERVENBAHN_MASTER_KEY=master_key, **bus_variables(kafka),
        NERVENBAHN_API_KEYS=str(folder / "api-keys.json"),
        NERVENBAHN_ACCESS_LOG=str(folder / "access.db"))
    _nervenbahn(environment, "init")
    cases, applications = _seed(environment)
    users = _users()
    for user in users.values():
        _nervenbahn(environment, "users", "add", user.username, "--role", user.role,
                    "--organisation", user.organisation, "--language", user.language,
                    "--name", user.name, "--password-stdin", stdin=user.password)
    with serving(environment, until="/health/ready", within=READY_WITHIN_S) as served:
        yield Site(served.url, users, cases, applications, environment)


def _nervenbahn(environment: dict[str, str], *arguments: str, stdin: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "nervenbahn", *arguments], env=environment,
                          input=stdin, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"nervenbahn {' '.join(arguments[:2])}: {done.stderr[-2000:]}"
    return done.stdout


def _seed(environment: dict[str, str]) -> tuple[dict[str, list[UUID]], dict[str, list[UUID]]]:
    """The cases and applications (see the module's docstring), recorded in-process."""
    rng = random.Random(16)
    container = Container(load_settings(environment))
    try:
        cases = {region: _cases(container, rng, region, bfs, supported=2 if bfs == OLTEN else 1)
                 for region, bfs in CASE_REGIONS.items()}
        applications = {office: _applications(container, rng, office, bfs)
                        for office, bfs in APPLICATION_OFFICES.items()}
    finally:
        container.close()
    return cases, applications


def _cases(container: Container, rng: random.Random, region: str, bfs: int,
           supported: int) -> list[UUID]:
    """`supported` supported cases, then (Olten only) one assessed and one in intake."""
    actor = Actor(f"seed.{region}", "caseworker", region)
    town = container.service.reference.municipality(bfs).name
    first = swiss_today().replace(day=1) - timedelta(days=1)
    ids: list[UUID] = []
    steps = ["supported"] * supported + (["assessed", "intake"] if bfs == OLTEN else [])
    for phase in steps:
        person = synthetic_person(rng, town)
        opened = _case(container, actor, "open_case", municipality_bfs=bfs, household_size=1,
                       applicant=person, application_date=(first - timedelta(days=20)).isoformat())
        case_id = opened.case_id
        if phase != "intake":
            _case(container, actor, "complete_assessment", case_id=str(case_id),
                  needs=["financial", "housing"], employability="employable")
        if phase == "supported":
            _case(container, actor, "grant_support", case_id=str(case_id),
                  support_from=first.replace(day=1).isoformat(), housing="1350",
                  health_insurance="410.50", income=str(rng.choice([0, 420, 980])))
        ids.append(case_id)
    return ids


def _case(container: Container, actor: Actor, name: str, **data: Any) -> Any:
    fields = {"actor": asdict(actor), "correlation_id": str(uuid.uuid4()), **data}
    return container.service.execute(parse_command(name, fields))


def _applications(container: Container, rng: random.Random, office: str,
                  bfs: int) -> list[UUID]:
    """An EL-to-AHV application forwarded with documents missing, one received and checked
    (documents requested), and a premium reduction just received."""
    actor = Actor(f"seed.{office}", "branch_office", office)
    town = container.service.reference.municipality(bfs).name
    today = swiss_today()
    ids: list[UUID] = []
    for kind, born, steps in (("el_ahv", date(1948, 1, 1), ("check", "request", "forward")),
                              ("el_iv", date(1970, 1, 1), ("check", "request")),
                              ("ipv", date(1975, 1, 1), ())):
        received = _benefit(container, actor, "receive_application", kind=kind,
                            municipality_bfs=bfs, applicant=synthetic_person(rng, town, born, 10),
                            received_on=(today - timedelta(days=rng.randint(10, 60))))
        app = received.id
        if "check" in steps:
            _benefit(container, actor, "check_completeness", application_id=app,
                     documents_present=["signed_application", "tax_assessment"])
        if "request" in steps:
            _benefit(container, actor, "request_documents", application_id=app,
                     documents=["account_statements", "rent_contract"],
                     due_on=today + timedelta(days=30))
        if "forward" in steps:
            _benefit(container, actor, "forward_application", application_id=app,
                     override_reason="Unterlagen folgen")
        ids.append(app)
    return ids


def _benefit(container: Container, actor: Actor, name: str, **fields: Any) -> Any:
    command = bc.BENEFIT_COMMANDS[name](actor=actor, correlation_id=uuid.uuid4(), **fields)
    return container.benefits.execute(command)
