"""The locust scenario of `scale_out.py`: the API's readers of a canton, in their proportions.

    locust -f benchmarks/scale_locust.py --headless --plan PLAN.json ...

Started by `scale_out.py` as a process of its own (locust patches the standard library with
gevent at import; the script's own threads and nervenbahn stay out of it). PLAN.json, written
by `scale_out.py`, names the instances, the API keys per scope and the ids the users ask for.
Each user takes the next instance in turn when it starts and keeps it (a load balancer with
sticky keep-alive connections, round robin).

Users and their share (class weights), each waiting 0.2-1 s between requests (someone clicking
through screens quickly; a tool paging through lists):

- branch-office staff (60 %): their office's case list (filtered by phase, paged) and a case's
  detail (personal data, access-logged), the office's benefit applications and one
  application's detail (personal data, access-logged);
- regional caseworkers (30 %): their region's caseload and work list, a case's claims
  (read from the event store, access-logged);
- the canton (10 %): a quarter's figures and a week's backlog of benefit applications.

Requests are named by route template, so that locust's statistics are per endpoint.
"""

from __future__ import annotations

import itertools
import json
import random
from functools import cache
from typing import Any

from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser

_TURN = itertools.count()
"""Which instance the next user is given (round robin over all user classes)."""


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--plan", type=str, required=True, help="the plan JSON of scale_out.py")


@cache
def _plan(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as file:
        return dict(json.load(file))


class _Reader(FastHttpUser):
    """A user of one instance, with the plan's ids and a seeded random source of its own."""

    abstract = True
    wait_time = between(0.2, 1.0)
    host = "http://127.0.0.1"  # every request names its instance in full
    scope = ""
    """The plan's list this user takes its office or region from ("" for the canton)."""
    prefix = ""
    """The API path of that office or region, without its id."""

    def on_start(self) -> None:
        turn = next(_TURN)
        self.plan = _plan(self.environment.parsed_options.plan)
        self.base = self.plan["instances"][turn % len(self.plan["instances"])]
        self.rng = random.Random(f"{self.plan['seed']}-{turn}")
        self.mine = (self.rng.choice(self.plan[self.scope]) if self.scope
                     else {"id": "", "key": self.plan["canton_key"], "cases": []})
        self.path = self.prefix + self.mine["id"]

    def get(self, name: str, path: str) -> None:
        """GET base + path with the user's API key, counted under `name`."""
        self.client.get(self.base + path, name=name, headers={"X-API-Key": self.mine["key"]})


class BranchOfficeStaff(_Reader):
    """Staff of one branch office (AKSO Zweigstelle)."""

    weight = 6
    scope, prefix = "offices", "/v1/branch-offices/"

    @task(4)
    def cases(self) -> None:
        phase = self.rng.choice(("", "", "&phase=supported", "&phase=intake", "&phase=closed"))
        offset = self.rng.choice((0, 0, 0, 20, 100))
        self.get("office cases", f"{self.path}/cases?limit=20&offset={offset}{phase}")

    @task(3)
    def case(self) -> None:
        if self.mine["cases"]:
            self.get("office case (personal data)",
                     f"{self.path}/cases/{self.rng.choice(self.mine['cases'])}")

    @task(2)
    def applications(self) -> None:
        self.get("office benefit applications", f"{self.path}/benefit-applications?limit=50")

    @task(1)
    def application(self) -> None:
        if self.mine["applications"]:
            self.get("office benefit application (personal data)",
                     f"{self.path}/benefit-applications/"
                     f"{self.rng.choice(self.mine['applications'])}")


class RegionalCaseworker(_Reader):
    """A caseworker of one social region."""

    weight = 3
    scope, prefix = "regions", "/v1/regions/"

    @task(2)
    def caseload(self) -> None:
        self.get("region caseload", f"{self.path}/caseload")

    @task(4)
    def worklist(self) -> None:
        today = self.rng.choice(self.plan["days"])
        self.get("region worklist", f"{self.path}/worklist?today={today}")

    @task(2)
    def claims(self) -> None:
        if self.mine["cases"]:
            self.get("region case claims (personal data)",
                     f"{self.path}/cases/{self.rng.choice(self.mine['cases'])}/claims")


class Canton(_Reader):
    """The canton's social office: key figures and the benefits backlog."""

    weight = 1

    @task(1)
    def quarter(self) -> None:
        self.get("canton quarter", f"/v1/canton/quarters/{self.rng.choice(self.plan['quarters'])}")

    @task(1)
    def backlog(self) -> None:
        self.get("canton benefits backlog",
                 f"/v1/canton/benefits/backlog?week={self.rng.choice(self.plan['weeks'])}")
