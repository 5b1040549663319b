"""`nervenbahn audit …`: the hash chains, signed checkpoints and their verification.

- `audit public-key [--out FILE]`: the public key that verifies checkpoints (auditors keep it).
- `audit checkpoint [--publish]`: sign the current chain heads now (and publish unpublished
  checkpoints to the audit topic on NERVENBAHN_KAFKA).
- `audit checkpoints list | export FILE`: the checkpoints kept; JSON Lines for the auditor.
- `audit verify [--checkpoints FILE] [--public-key FILE] [--json]`: recompute every chain and
  every snapshot, check every checkpoint; exit 0 all good, 4 a chain or snapshot is broken, 5 a
  checkpoint is rejected.
- `audit rewrite-snapshots`: replace snapshots that do not hold by ones taken from the events.
- `audit chain-existing --confirm`: chain events the chain does not cover (a store from before
  the chain, or deleted chain rows), logged and recorded; opening such a store is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.application import Application
from rich.table import Table

from domain.application.payments import PaymentService
from domain.errors import InvalidCommandError
from nervenbahn.audit.access import access_log_check, access_log_to_sign
from nervenbahn.audit.access_log import AccessLogVerification
from nervenbahn.audit.anchors import describe_anchor
from nervenbahn.audit.chain_existing import UnchainedEventsError, chaining_existing
from nervenbahn.audit.checkpoints import (
    CheckpointError,
    CheckpointStore,
    export_checkpoints,
    public_key_from_text,
    public_key_text,
    read_checkpoint_file,
    write_checkpoint,
)
from nervenbahn.audit.database import AuditDatabase
from nervenbahn.audit.snapshots import rewrite_snapshots, verify_snapshots
from nervenbahn.audit.verify import AuditReport, verify_store
from nervenbahn.config import ConfigError
from nervenbahn.container import (
    StoreUnavailableError,
    build_payment_service,
    build_service,
    close_service,
)

from .audit_store import signing_key, store_database
from .render import JsonOption, emit_json
from .session import Session, session

__all__ = ["register", "verify_everything"]

T = TypeVar("T")

checkpoints_app = typer.Typer(help="The signed checkpoints kept in the store.",
                              no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add `public-key`, `checkpoint`, `checkpoints` and `verify` to the `audit` app."""
    app.command("public-key")(public_key)
    app.command("checkpoint")(checkpoint)
    app.command("verify")(verify)
    app.command("chain-existing")(chain_existing)
    app.command("rewrite-snapshots")(rewrite_snapshots_command)
    app.add_typer(checkpoints_app, name="checkpoints")


def public_key(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option("--out", help="Also write it to this file.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The public key that verifies checkpoints (base64 of the raw Ed25519 key)."""
    rt = _rt(ctx, as_json)
    key = signing_key(rt)
    text = public_key_text(key.public)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    if rt.as_json:
        emit_json(rt.console, {"public_key": text, "key_id": key.key_id})
        return
    rt.console.print(text)
    rt.console.print(f"key id {key.key_id}", style="dim")


def checkpoint(
    ctx: typer.Context,
    publish: Annotated[
        bool, typer.Option("--publish", help="Then send unpublished checkpoints to the audit "
                           "topic on NERVENBAHN_KAFKA.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Sign the head of every chain (and the access log's) as the next checkpoint."""
    rt = _rt(ctx, as_json)
    key = signing_key(rt)
    access = access_log_to_sign(_access_log_path(rt))
    with store_database(rt) as db:
        made = write_checkpoint(db, key, **access)
        assert made is not None
        published = rt.container.publish_checkpoints(db) if publish else []
    if rt.as_json:
        emit_json(rt.console, {**made.to_json(), "published_now": published})
        return
    heads = ", ".join(f"{name} at {head.position}" for name, head in made.chains.items())
    rt.console.print(f"checkpoint #{made.sequence} signed ({heads or 'no chains'})")
    if publish:
        rt.console.print(f"published: {', '.join(f'#{s}' for s in published) or 'nothing new'}")


@checkpoints_app.command("list")
def list_checkpoints(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every checkpoint kept in the store, oldest first."""
    rt = _rt(ctx, as_json)
    with store_database(rt) as db:
        kept = _or_refused(lambda: CheckpointStore(db).all())
    if rt.as_json:
        emit_json(rt.console, [cp.to_json() for cp in kept])
        return
    table = Table("#", "signed at (UTC)", "key id", "chain heads", "published")
    for cp in kept:
        heads = ", ".join(f"{name} {head.position}" for name, head in cp.chains.items())
        table.add_row(str(cp.sequence), cp.created_at, cp.key_id, heads,
                      "yes" if cp.published else "no")
    rt.console.print(table)


@checkpoints_app.command("export")
def export(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON Lines file to write (the auditor's copy).")],
    as_json: JsonOption = False,
) -> None:
    """Write every checkpoint to FILE as JSON Lines: keep it outside the system."""
    rt = _rt(ctx, as_json)
    with store_database(rt) as db:
        count = _or_refused(lambda: export_checkpoints(db, file))
    if rt.as_json:
        emit_json(rt.console, {"file": str(file), "checkpoints": count})
        return
    rt.console.print(f"{count} checkpoints written to {file}")


def verify(
    ctx: typer.Context,
    checkpoints: Annotated[
        Path | None, typer.Option("--checkpoints", help="The auditor's copy (JSON Lines from "
                                  "`audit checkpoints export`).")
    ] = None,
    public_key_file: Annotated[
        Path | None, typer.Option("--public-key", help="The public key the auditor keeps "
                                  "(default: the installation's own).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute every chain, check every checkpoint; exit 0 good, 4 chain broken, 5 checkpoint
    rejected."""
    rt = _rt(ctx, as_json)
    key = _public_key(rt, public_key_file)
    report = verify_everything(rt, key, checkpoints)
    if rt.as_json:
        emit_json(rt.console, report.to_json())
    else:
        _print_report(rt, report)
    if not report.ok:
        raise typer.Exit(report.exit_code)


def verify_everything(rt: Session, key: Ed25519PublicKey, checkpoints: Path | None,
                      ) -> AuditReport:
    """What `audit verify` checks (and `audit case` reports): every chain, the access log and
    every snapshot, against the store's checkpoints and, if given, the auditor's copy in
    `checkpoints` (which wins: a checkpoint altered or dropped in the store is named)."""
    copy = _or_refused(lambda: read_checkpoint_file(checkpoints)) if checkpoints else []
    access_log = access_log_check(_access_log_path(rt))
    with store_database(rt) as db:
        report = verify_store(db, key, auditor_copy=copy, access_log=access_log)
        return _with_snapshots(rt, db, report)


def chain_existing(
    ctx: typer.Context,
    confirm: Annotated[
        bool, typer.Option("--confirm", help="Required: chaining makes the chain vouch for "
                           "events nobody verified; run `audit verify` first.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Chain the events the hash chain does not cover (opening such a store is refused);
    logged as a warning and recorded in the store, which `audit verify` reports."""
    rt = _rt(ctx, as_json)
    if not confirm:
        raise InvalidCommandError(
            "audit chain-existing",
            [("confirm", "add --confirm: chaining existing events rewrites the chain; an "
              "auditor's earlier checkpoints still show whether events were altered before")],
        )
    rt.close()
    with chaining_existing() as done:
        service = build_service(rt.settings)
        try:
            build_payment_service(rt.settings, service).close()
        finally:
            close_service(service)
    if rt.as_json:
        emit_json(rt.console, {"chained": [vars(r) for r in done]})
        return
    for r in done:
        rt.console.print(f"{r.events_table}: {r.events} events chained anew "
                         f"({r.unchained} had no link)")
    if not done:
        rt.console.print("every events table is chained already; nothing done")


def rewrite_snapshots_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Replace every snapshot that does not hold (no MAC, a failing MAC, a state other than its
    events') by one taken from the events alone. Run `audit verify` first and keep its report:
    an altered snapshot is evidence, and this replaces it."""
    rt = _rt(ctx, as_json)
    with store_database(rt) as db, _snapshotting_apps(rt) as apps:
        replaced = rewrite_snapshots(db, apps)
    if rt.as_json:
        emit_json(rt.console, {"rewritten": [r.to_json() for r in replaced]})
        return
    for r in replaced:
        rt.console.print(f"rewritten: {r.table} {r.originator_id} version {r.version} "
                         f"(was: {r.problem})")
    rt.console.print(f"{len(replaced)} snapshots rewritten from their events")


# --- helpers -------------------------------------------------------------------------------


def _rt(ctx: typer.Context, as_json: bool) -> Session:
    rt = session(ctx)
    rt.as_json = rt.as_json or as_json
    return rt


def _public_key(rt: Session, path: Path | None) -> Ed25519PublicKey:
    if path is None:
        return signing_key(rt).public
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidCommandError("audit verify", [("public-key", f"{path}: {exc}")]) from None
    return _or_refused(lambda: public_key_from_text(text, str(path)))


def _or_refused(action: Callable[[], T]) -> T:
    try:
        return action()
    except CheckpointError as exc:
        raise InvalidCommandError("audit", [("checkpoints", str(exc))]) from None


def _access_log_path(rt: Session) -> Path:
    return rt.settings.api.access_log


def _with_snapshots(rt: Session, db: AuditDatabase, report: AuditReport) -> AuditReport:
    """The report with every snapshot recomputed from its events (if the store opens)."""
    try:
        with _snapshotting_apps(rt) as apps:
            checked, problems = verify_snapshots(db, apps)
    except (UnchainedEventsError, StoreUnavailableError, ConfigError) as exc:
        return replace(report, notes=[*report.notes, f"snapshots not checked: {exc}"])
    return replace(report, snapshots_checked=checked, snapshot_problems=problems)


@contextmanager
def _snapshotting_apps(rt: Session) -> Iterator[list[Application[Any]]]:
    """The case service and the payments service, each with its snapshot store, so that any
    snapshot in their tables is checked."""
    service = rt.service
    payments = PaymentService({**rt.settings.store.eventsourcing_env(),
                               "IS_SNAPSHOTTING_ENABLED": "y"}, cases=service)
    try:
        yield [service, payments]
    finally:
        payments.close()


def _print_access_log(rt: Session, v: AccessLogVerification) -> None:
    """The retention anchors the access log's verification relied on, and its re-chainings."""
    previous = 0
    for anchor in v.anchors:
        vouched = (v.vouched_by or {}).get(anchor.seq, ())
        by = ("vouched for by signed checkpoint " + ", ".join(f"#{n}" for n in vouched)
              if vouched else "NOT vouched for by any signed checkpoint")
        rt.console.print(f"{v.chain}: {describe_anchor(anchor, previous)}: {by}",
                         markup=False, highlight=False)
        previous = anchor.position
    if not v.anchors:
        rt.console.print(f"{v.chain}: no retention anchor (never purged); verified from its "
                         "first entry")
    for done in v.rechained:
        rt.console.print(f"note: {v.chain}: positions {done.first}-{done.last} ({done.entries} "
                         f"entries without a hash) were chained anew by `audit "
                         f"access-chain-existing` at {done.at.isoformat()}")


def _print_report(rt: Session, report: AuditReport) -> None:
    table = Table("chain", "records", "head", "checkpoints matched", "result")
    rows = [*report.chains, *([report.access_log] if report.access_log else [])]
    for v in rows:
        breaks = v.all_breaks
        result = "ok" if not breaks else f"BROKEN at {', '.join(str(b.position) for b in breaks)}"
        name = v.chain if v.log_id is None else f"{v.chain} ({v.log_id})"
        table.add_row(name, str(v.records), f"{v.head.position} {v.head.hash.hex()[:16]}…",
                      str(v.checkpoints_checked), result)
    rt.console.print(table)
    for v in rows:
        for number, found in enumerate(v.all_breaks):
            which = "first bad position" if number == 0 else "bad position"
            rt.console.print(f"{v.chain}: {which} {found.position}: {found.reason}")
    if isinstance(report.access_log, AccessLogVerification):
        _print_access_log(rt, report.access_log)
    for damaged in report.damaged_rows:
        rt.console.print(f"BROKEN: {damaged.describe()}")
    for s in report.snapshot_problems:
        rt.console.print(f"snapshot {s.table} {s.originator_id} version {s.version}: "
                         f"{s.problem}")
    rt.console.print(f"snapshots: {report.snapshots_checked} recomputed from their events, "
                     f"{len(report.snapshot_problems)} do not match")
    for rewrite in report.chain_rewrites:
        rt.console.print(f"note: {rewrite['events_table']} was chained anew by `audit "
                         f"chain-existing` at {rewrite['at']} ({rewrite['events']} events, "
                         f"{rewrite['unchained']} had no link)")
    if report.missing_access_log is not None:
        rt.console.print(f"BROKEN: {report.missing_access_log.describe()}", markup=False,
                         highlight=False)
    for other in report.other_logs:
        rt.console.print(f"BROKEN: checkpoint #{other.sequence} signs access log "
                         f"{other.log_id}, which was not found here: the access log was "
                         "replaced or re-created since; its head was not compared")
    for note in report.notes:
        rt.console.print(f"note: {note}")
    for problem in report.checkpoint_problems:
        rt.console.print(f"rejected: {problem.describe()}")
    verdict = {0: "verified: every chain, snapshot and checkpoint holds",
               4: "NOT verified: a chain, snapshot or the signed access log does not match what "
                  "was recorded (or is missing)",
               5: "NOT verified: a checkpoint was rejected"}[report.exit_code]
    rt.console.print(f"{verdict} ({report.checkpoints} signed checkpoints relied on)")
