"""`nervenbahn users …`: the web application's accounts (NERVENBAHN_WEB_USERS).

An account has a role and the organisation it acts for: caseworker or supervisor of a social
region (`--organisation so-olten`), branch-office staff of an office (`akso-olten`), fund
officer (`akso`), canton analyst (`so`) or auditor (e.g. `finanzkontrolle`). Offices and
regions must exist in the reference data. A password is read from standard input
(`--password-stdin`) or made up and printed once; only its argon2id hash is stored. Who ran
the command (the operating-system user) is recorded with the account.
"""

from __future__ import annotations

import getpass
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from domain.errors import InvalidCommandError
from domain.reference import load_branch_offices, load_reference_data
from nervenbahn.accounts import ROLES, User, UserError, UserStore
from nervenbahn.config import load_settings

from .render import emit_json
from .session import Session, session

__all__ = ["app"]

app = typer.Typer(help="Accounts of the web application.", no_args_is_help=True)

Username = Annotated[str, typer.Argument(help="The user name (a-z, 0-9, '.', '_', '-').")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input "
                       "(default: make one up and print it once).")
]


def _store() -> UserStore:
    web = load_settings().web
    return UserStore(web.users, session_minutes=web.session_minutes,
                     lockout_attempts=web.lockout_attempts, lockout_minutes=web.lockout_minutes)


def _operator() -> str:
    """Who runs the command: the operating-system user (recorded with the account)."""
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):
        return "os:unknown"


def _password(from_stdin: bool) -> tuple[str, bool]:
    """The password and whether it was made up here (and must be shown)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    return secrets.token_urlsafe(15), True


def _check_organisation(role: str, organisation: str) -> None:
    if role in ("caseworker", "supervisor"):
        regions = load_reference_data().regions
        if organisation not in regions:
            raise UserError("organisation", f"social region {organisation!r} does not exist; "
                            f"use one of {', '.join(sorted(regions))}")
    elif role == "branch_office":
        offices = load_branch_offices()
        if organisation not in offices:
            raise UserError("organisation", f"branch office {organisation!r} does not exist; "
                            f"use one of {', '.join(sorted(offices))}")
    elif role == "fund_officer" and organisation != "akso":
        raise UserError("organisation", "a fund officer acts for the fund: akso")


@app.command("add")
def add(
    ctx: typer.Context,
    username: Username,
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")],
    organisation: Annotated[str, typer.Option(help="Region, office, akso, so, or the "
                                              "auditor's office.")],
    name: Annotated[str | None, typer.Option(help="The name shown (default: the user "
                                             "name).")] = None,
    language: Annotated[str, typer.Option(help="de or fr.")] = "de",
    password_stdin: PasswordStdin = False,
) -> None:
    """Add an account."""
    rt = session(ctx)
    password, made_up = _password(password_stdin)
    with _refused("users add"):
        if role in ROLES:
            _check_organisation(role, organisation)
        store = _store()
        try:
            user = store.add(username, role=role, organisation=organisation,
                             password=password, now=datetime.now(UTC), by=_operator(),
                             display_name=name, language=language)
        finally:
            store.close()
    _report(rt, user, "added", password if made_up else None)


@app.command("list")
def list_users(ctx: typer.Context) -> None:
    """Every account: name, role, organisation, language, state (never a password)."""
    rt = session(ctx)
    store = _store()
    try:
        users, now = store.users(), datetime.now(UTC)
    finally:
        store.close()
    rows = [_row(u, now) for u in users]
    if rt.as_json:
        emit_json(rt.console, rows)
        return
    table = Table(title="Web users", title_justify="left")
    for column in ("username", "name", "role", "organisation", "language", "state",
                   "created_at", "created_by"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    rt.console.print(table)


@app.command("disable")
def disable(ctx: typer.Context, username: Username) -> None:
    """Disable an account and end its sessions at once."""
    rt = session(ctx)
    with _refused("users disable"):
        store = _store()
        try:
            user = store.disable(username, now=datetime.now(UTC), by=_operator())
        finally:
            store.close()
    _report(rt, user, "disabled", None)


@app.command("reset")
def reset(
    ctx: typer.Context, username: Username, password_stdin: PasswordStdin = False,
    enable: Annotated[bool, typer.Option("--enable", help="Also enable a disabled account "
                                         "(a reset alone leaves it disabled).")] = False,
) -> None:
    """Give an account a new password; it is unlocked, its sessions end."""
    rt = session(ctx)
    password, made_up = _password(password_stdin)
    with _refused("users reset"):
        store = _store()
        try:
            user = store.reset(username, password, now=datetime.now(UTC), by=_operator(),
                               enable=enable)
        finally:
            store.close()
    _report(rt, user, "reset", password if made_up else None)


@contextmanager
def _refused(command: str) -> Iterator[None]:
    """Turn a refused account operation into the CLI's error naming the field."""
    try:
        yield
    except UserError as exc:
        raise InvalidCommandError(command, [(exc.field, exc.reason)]) from exc


def _row(user: User, now: datetime) -> dict[str, str]:
    state = "disabled" if user.disabled else "locked" if user.locked(now) else "active"
    return {"username": user.username, "name": user.display_name, "role": user.role,
            "organisation": user.organisation, "language": user.language, "state": state,
            "created_at": user.created_at.isoformat(timespec="seconds"),
            "created_by": user.created_by}


def _report(rt: Session, user: User, what: str, password: str | None) -> None:
    if rt.as_json:
        emit_json(rt.console, _row(user, datetime.now(UTC))
                  | ({"password": password} if password else {}))
        return
    rt.console.print(f"user {user.username} ({user.role}, {user.organisation}) {what}")
    if password:
        rt.console.print("password (shown this once; only its hash is stored):")
        rt.console.print(password, markup=False, highlight=False, soft_wrap=True)
