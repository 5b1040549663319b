"""Each role's pages: the navigation of the layout and the home page after sign-in.

The labels are English source text, translated by the layout. A page author adds their
area's links here.
"""

from __future__ import annotations

from nervenbahn.accounts import User
from nervenbahn.web.i18n import N_

__all__ = ["ROLE_NAMES", "home", "navigation"]

ROLE_NAMES = (
    N_("caseworker"), N_("supervisor"), N_("branch_office"), N_("fund_officer"), N_("canton"),
    N_("auditor"),
)
"""The roles as the layout names them (translated)."""

_NAV: dict[str, tuple[tuple[str, str], ...]] = {
    "branch_office": (
        ("/web/office/{org}/applications", N_("Applications")),
        ("/web/office/{org}/applications/new", N_("New application")),
        ("/web/office/{org}/cases", N_("Social-assistance cases")),
    ),
    "caseworker": (
        ("/web/region/{org}/work", N_("Work list")),
        ("/web/region/{org}/cases", N_("Cases")),
    ),
    "supervisor": (
        ("/web/region/{org}/work", N_("Work list")),
        ("/web/region/{org}/cases", N_("Cases")),
    ),
    "fund_officer": (
        ("/web/fund/applications", N_("Forwarded applications")),
        ("/web/fund/delegations", N_("Delegations")),
    ),
    "canton": (
        ("/web/canton/quarterly", N_("Quarterly figures")),
        ("/web/canton/backlog", N_("Backlog")),
    ),
    "auditor": (
        ("/web/audit/case", N_("Case as of a date")),
        ("/web/audit/chains", N_("Hash chains")),
        ("/web/audit/access", N_("Access log")),
    ),
}


def navigation(user: User) -> list[tuple[str, str]]:
    """(url, English label) of each page of the user's role."""
    return [(url.format(org=user.organisation), label) for url, label in _NAV[user.role]]


def home(user: User) -> str:
    """Where a user lands after signing in: their role's first page."""
    return navigation(user)[0][0]
