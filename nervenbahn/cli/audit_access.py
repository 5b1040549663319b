"""`nervenbahn audit access …`: who saw whose personal data, and the log's retention.

- `audit access --person ID [--case ID] [--json]`: every read of the person's data (and/or of
  one case), oldest first: when, which consumer with which scope, which case, which fields,
  through which endpoint.
- `audit access-purge [--json]`: remove the entries older than
  NERVENBAHN_ACCESS_LOG_RETENTION_DAYS (default 365, at least 365), leaving a retention anchor
  from which the chain is verified, and sign a checkpoint naming the anchor right after: a
  purge no signed checkpoint vouches for fails `audit verify`.
- `audit access-chain-existing --confirm`: chain entries that have no hash (a log from before
  the chain, or one whose hashes were removed; opening such a log is refused), logged and
  recorded in the log, which `audit verify` reports.

The log is NERVENBAHN_ACCESS_LOG (default `<store folder>/access-log.db`). `audit access`
needs neither the master key nor the event store; `access-purge` needs the store's database
and the signing key (it signs a checkpoint).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.table import Table

from domain.case import SWISS_TIME
from domain.errors import InvalidCommandError
from nervenbahn.api.settings import ApiSettings, load_api_settings
from nervenbahn.audit.access import access_log_signed
from nervenbahn.audit.access_log import LoggedAccess
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.audit.checkpoints import Checkpoint, SigningKey, write_checkpoint
from nervenbahn.audit.database import AuditDatabase
from nervenbahn.audit.errors import AccessLogTamperedError, AccessLogUnavailableError
from nervenbahn.config import ConfigError

from .audit_store import signing_key, store_database
from .reads import require_canton_wide
from .render import JsonOption, emit_json
from .session import Session, session

__all__ = ["register"]

_PAGE = 1000

def register(app: typer.Typer) -> None:
    """Add `access` and `access-purge` to the `audit` app."""
    app.command("access")(access)
    app.command("access-purge")(access_purge)
    app.command("access-chain-existing")(access_chain_existing)


def access(
    ctx: typer.Context,
    person: Annotated[
        str | None, typer.Option("--person", help="The person id (UUID) whose data was read.")
    ] = None,
    case: Annotated[
        str | None, typer.Option("--case", help="Only reads of this case (UUID).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Who saw what: every read of a person's (or a case's) personal data, oldest first."""
    rt = session(ctx)
    require_canton_wide(rt, "the access log")
    if person is None and case is None:
        raise InvalidCommandError("audit access", [("--person", "give --person ID or --case ID")])
    person_id, case_id = _uuid("--person", person), _uuid("--case", case)
    with _access_log(rt) as log:
        entries = _all(log, person_id, case_id)
    rows = [_row(item) for item in entries]
    if rt.as_json or as_json:
        emit_json(rt.console, {"person_id": person_id, "case_id": case_id, "entries": rows})
        return
    _print(rt, person_id, case_id, rows)


def access_purge(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Remove access-log entries older than the retention period (at least one year), then
    sign a checkpoint naming the retention anchor (a purge nobody signed fails verification)."""
    rt = session(ctx)
    require_canton_wide(rt, "the access log")
    settings = _settings()
    days = settings.access_log_retention_days
    key = signing_key(rt)  # before purging: a purge that cannot be signed is not done
    with store_database(rt) as db, _access_log(rt, settings) as log:
        try:
            anchor = log.purge(now=datetime.now(UTC), retention_days=days)
        except AccessLogTamperedError as exc:
            raise InvalidCommandError("audit access-purge", [("access log", str(exc))]) from None
        signed = _vouch(db, key, log) if anchor else None
    purged = anchor.entries if anchor else 0
    if rt.as_json or as_json:
        emit_json(rt.console, {"retention_days": days, "purged": purged,
                               "anchor": anchor.to_json() if anchor else None,
                               "checkpoint": signed.sequence if signed else None})
    elif anchor is None:
        rt.console.print(f"nothing to purge: no entry is older than {days} days")
    else:
        rt.console.print(
            f"purged {purged} entries (up to position {anchor.position}, the last recorded "
            f"{_swiss(anchor.last_at)}); retention {days} days; the chain now starts at the "
            f"anchor {anchor.position} {anchor.hash.hex()[:16]}…, named in signed checkpoint "
            f"#{signed.sequence if signed else '?'}",
            markup=False, highlight=False,
        )


def access_chain_existing(
    ctx: typer.Context,
    confirm: Annotated[
        bool, typer.Option("--confirm", help="Required: chaining makes the chain vouch for "
                           "entries nobody verified; run `audit verify` first.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Chain the access-log entries that have no hash (opening such a log is refused); logged
    as a warning and recorded in the log, which `audit verify` reports."""
    rt = session(ctx)
    require_canton_wide(rt, "the access log")
    if not confirm:
        raise InvalidCommandError(
            "audit access-chain-existing",
            [("confirm", "add --confirm: chaining existing entries makes the chain vouch for "
              "them; an auditor's earlier checkpoints still show whether they were altered")],
        )
    with _access_log(rt, chain_existing=True) as log:
        done = log.rechained
    if rt.as_json or as_json:
        emit_json(rt.console, {"access_log": str(log.path),
                               "rechained": done.to_json() if done else None})
    elif done is None:
        rt.console.print("every access-log entry has its hash already; nothing done")
    else:
        rt.console.print(f"{log.path}: {done.entries} entries chained anew (positions "
                         f"{done.first}-{done.last}); recorded in the log, `audit verify` "
                         "reports it", markup=False, highlight=False)


def _vouch(db: AuditDatabase, key: SigningKey, log: SQLiteAccessLog) -> Checkpoint:
    """Sign a checkpoint naming the log's new retention anchor; if that fails, say that the
    purge is done but not yet vouched for."""
    try:
        made = write_checkpoint(db, key, **access_log_signed(log))
    except Exception as exc:
        raise ConfigError(
            f"the access log was purged, but no checkpoint could be signed ({exc}); run "
            "`nervenbahn audit checkpoint` now: `audit verify` fails on a purge no signed "
            "checkpoint names"
        ) from exc
    assert made is not None
    return made


def _settings() -> ApiSettings:
    return load_api_settings()


@contextmanager
def _access_log(
    rt: Session, settings: ApiSettings | None = None, *, chain_existing: bool = False
) -> Iterator[SQLiteAccessLog]:
    """The configured access log; ConfigError (exit 3) if it does not exist or cannot open
    (also if it has unchained entries, unless `chain_existing`)."""
    path = (settings or _settings()).access_log
    if not path.is_file():
        raise ConfigError(
            f"NERVENBAHN_ACCESS_LOG: there is no access log at {path} (the API creates it "
            "on its first start)"
        )
    try:
        log = SQLiteAccessLog(path, chain_existing=chain_existing)
    except AccessLogUnavailableError as exc:
        raise ConfigError(f"NERVENBAHN_ACCESS_LOG: {exc}") from None
    try:
        yield log
    except AccessLogUnavailableError as exc:
        raise ConfigError(f"NERVENBAHN_ACCESS_LOG: {exc}") from None
    finally:
        log.close()


def _uuid(option: str, text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return str(UUID(text))
    except ValueError:
        raise InvalidCommandError("audit access", [(option, f"{text!r} is not a UUID")]) from None


def _all(log: SQLiteAccessLog, person_id: str | None, case_id: str | None) -> list[LoggedAccess]:
    """Every matching entry, page by page."""
    found: list[LoggedAccess] = []
    while page := log.select(person_id=person_id, case_id=case_id,
                             gt=found[-1].id if found else 0, limit=_PAGE):
        found.extend(page)
    return found


def _row(item: LoggedAccess) -> dict[str, Any]:
    entry = item.entry
    return {"id": item.id, "at": entry.at, "consumer": entry.consumer, "scope": entry.scope,
            "case_id": entry.case_id, "person_id": entry.person_id,
            "fields": list(entry.fields), "endpoint": entry.endpoint}


def _print(
    rt: Session, person_id: str | None, case_id: str | None, rows: list[dict[str, Any]]
) -> None:
    whose = " and ".join(
        f"{what} {value}" for what, value in (("person", person_id), ("case", case_id)) if value
    )
    table = Table(title=f"Reads of the personal data of {whose} ({len(rows)})",
                  title_justify="left")
    columns = ["#", "when (Swiss time)", "consumer", "scope", "case", "person", "fields",
               "endpoint"]
    if person_id is not None:  # the title names the person
        columns.remove("person")
    for column in columns:
        uuid = column in ("case", "person")
        table.add_column(column, no_wrap=uuid, min_width=36 if uuid else None,
                         overflow="fold")
    for row in rows:
        cells = [str(row["id"]), _swiss(row["at"]), row["consumer"], row["scope"],
                 row["case_id"], row["person_id"], ", ".join(row["fields"]), row["endpoint"]]
        if person_id is not None:
            del cells[5]
        table.add_row(*cells)
    rt.console.print(table)


def _swiss(moment: datetime) -> str:
    return moment.astimezone(SWISS_TIME).strftime("%Y-%m-%d %H:%M:%S")
