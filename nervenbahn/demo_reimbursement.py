"""The reimbursement part of `nervenbahn demo` (issue 15): once the fund has granted EL to a
household the social service advanced for, the claims process (the `advance-claims` worker of
`serve`) records the claim; the demo shows one, as a caseworker of its region sees it through
the API (its months, what the social service paid, the EL, the offset, the claim and the
surplus), and saves the person's statement the API answers (HTML, access-logged like every
read of personal data) into the demo's private folder.

Which claim: the first recorded, preferring one of the demo's region (so-olten) whose key the
demo has already; for another region it issues a region key of that region (the API reads its
key file anew when it changes). It waits for the worker with a deadline, not a fixed pause.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from domain.case import Case
from domain.events import Claim, advances_of, claims_of
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.demo_session import DemoSession
from nervenbahn.paths import write_private

__all__ = ["WITHIN", "first_claim", "granted_advances", "show_reimbursement", "unsettled",
           "wait_for_claim"]

WITHIN = 60.0
"""Seconds the demo waits for the claims process to record a claim."""


def first_claim(rt: DemoSession, region: str) -> tuple[Case, Claim] | None:
    """The first claim recorded on an advancing case, one of `region` if there is one."""
    found: list[tuple[Case, Claim]] = []
    for case in _advancing(rt):
        claims = claims_of(case)
        if claims:
            found.append((case, claims[0]))
    found.sort(key=lambda pair: pair[0].social_region != region)
    return found[0] if found else None


def granted_advances(rt: DemoSession) -> int:
    """How many advances were made in view of an application the fund has granted."""
    benefits = rt.container.benefits
    return sum(benefits.application(advance.application_id).stage in ("granted", "ended")
               for case in _advancing(rt) for advance in advances_of(case))


def unsettled(rt: DemoSession) -> bool:
    """Whether an advance the fund granted still waits for its claim to be recorded or paid
    (the demo's fund application runs until none does)."""
    benefits = rt.container.benefits
    for case in _advancing(rt):
        claims = claims_of(case)
        for advance in advances_of(case):
            granted = benefits.application(advance.application_id).stage in ("granted", "ended")
            mine = [c for c in claims if c.application_id == advance.application_id]
            if granted and (not mine or not all(c.is_paid for c in mine)):
                return True
    return False


def wait_for_claim(rt: DemoSession, region: str,
                   within: float = WITHIN) -> tuple[Case, Claim] | None:
    """`first_claim`, waiting up to `within` seconds for the claims process to record one;
    None at once if no advanced application was granted (nothing to claim)."""
    if not granted_advances(rt):
        return None
    deadline = time.monotonic() + within
    while True:
        found = first_claim(rt, region)
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(0.5)  # polls the store the worker writes to, until the deadline


def _advancing(rt: DemoSession) -> list[Case]:
    return [rt.service.get_case(case_id)
            for case_id in dict.fromkeys(case_id for _, case_id in rt.service.advances_started())]


def show_reimbursement(rt: DemoSession, url: str, keys_file: Path, region_key: str,
                       region: str, folder: Path) -> None:
    """Print one recorded claim as the API answers it and save its statement."""
    found = wait_for_claim(rt, region)
    if found is None:
        rt.console.print(
            "Reimbursement: no claim recorded (the fund granted none of the advanced "
            "applications in this run)" if not granted_advances(rt) else
            f"[red]Reimbursement: no claim recorded within {WITHIN:.0f} s although the fund "
            "granted an advanced application (see the advance-claims worker's log)[/red]")
        return
    case, claim = found
    key = region_key if case.social_region == region else ApiKeyRegistry(keys_file).add(
        f"demo-region-{case.social_region}", Scope("region", case.social_region),
        now=datetime.now(UTC))
    base = f"/v1/regions/{case.social_region}/cases/{case.id}/claims"
    claims = json.loads(_get(url, base, key))["claims"]
    recorded = next(c for c in claims if c["application_id"] == str(claim.application_id))
    _print_claim(rt, case, recorded, folder / "outbox" / "fund")
    statement = _get(url, f"{base}/{claim.application_id}/{recorded['sequence']}/statement", key)
    path = write_private(folder / f"statement-{case.id}-{recorded['sequence']}.html", statement)
    rt.console.print(
        f"The person's statement (German, ELV Art. 22 Abs. 4 und 5, SKOS F.2; its read is in "
        f"the access log): {path}")


def _print_claim(rt: DemoSession, case: Case, claim: dict[str, Any], payments: Path) -> None:
    table = Table(
        title=(f"Reimbursement claim {claim['sequence']} on case {case.id} "
               f"({case.social_region}), recorded {claim['recorded_on']}: EL granted for "
               "months the social service advanced"),
        title_justify="left")
    for column in ("month", "paid by social assistance", "EL", "IPV offset",
                   "claim (social service)", "surplus (person)"):
        table.add_column(column, justify="right")
    for month in claim["months"]:
        table.add_row(month["month"], month["paid"], month["el"], month["ipv_offset"],
                      month["claim"], month["surplus"])
    table.add_row("[bold]this claim[/bold]", "", "", claim["ipv_offset_total"],
                  claim["claim_total"], claim["surplus_total"])
    rt.console.print(table)
    if claim.get("paid_on"):
        rt.console.print(
            f"Paid by the fund on {claim['paid_on']}: CHF {claim['paid_to_region']} to the "
            f"social region, CHF {claim['paid_to_person']} to the person (pain.001 "
            f"{payments / ('claim-' + str(claim['payment_message_id']) + '.xml')}); reported "
            "back over the bus and recorded on the case (ReimbursementPaid).")
    else:
        rt.console.print("Not paid by the fund yet.")


def _get(url: str, path: str, key: str) -> str:
    request = urllib.request.Request(url + path, headers={"X-API-Key": key})  # noqa: S310
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        return str(response.read().decode("utf-8"))
