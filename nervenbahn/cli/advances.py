"""`nervenbahn advances …`: advances in view of EL and their reimbursement.

The claims recorded from decided advances and their reads (`advances claim|list|show|claims`):
`nervenbahn.cli.advance_claims`.

`advances statement CASE_ID APPLICATION_ID --out DIR [--sequence N]` writes the person's
statement of a recorded claim (`nervenbahn.reimbursement_statement.statement_for_claim`): an
HTML page in German naming the person the advance was made for, and a CSV of the per-month
figures. The figures are those the case recorded (`advances claims` lists them; claim N of the
application, by default the latest), not computed again: the statement of a claim written
twice is the same. A correction (N > 1) shows what changed against the claims before it.

Read scope as `case show`: a case of another region is not found, with the message of a
missing case; auditors are refused (the statement holds personal data). The read is appended
to the access log (one entry per person of the household) before anything is written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from nervenbahn.reimbursement_statement import (
    statement_for_claim,
    statement_read_entries,
    write_statement,
)

from .advance_claims import add_commands
from .inputs import parse_uuid
from .reads import log_reads, readable_case, reader, require_personal_data
from .render import emit_json
from .session import session

__all__ = ["app"]

app = typer.Typer(help="Advances in view of EL and their reimbursement.", no_args_is_help=True)
add_commands(app)

COMMAND = "advances statement"


@app.command("statement")
def statement(
    ctx: typer.Context,
    case_id: Annotated[str, typer.Argument(help="The case id (UUID).")],
    application_id: Annotated[str, typer.Argument(help="The EL application's id (UUID).")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the HTML and CSV into.")],
    sequence: Annotated[int | None, typer.Option(
        "--sequence", min=1,
        help="The number of the recorded claim (1: the first claim, 2 and on: corrections; "
             "default: the latest).")] = None,
) -> None:
    """Write the person's statement of a recorded claim of an advance (HTML and CSV)."""
    rt = session(ctx)
    case = readable_case(rt, parse_uuid(COMMAND, "case_id", case_id))
    require_personal_data(rt)
    application = parse_uuid(COMMAND, "application_id", application_id)
    found = statement_for_claim(case, application, sequence)
    who = reader(rt)
    log_reads(rt, statement_read_entries(
        case, found, names_shown=True, at=datetime.now(UTC), consumer=who.consumer,
        scope=who.scope, endpoint=f"nervenbahn {COMMAND}"), "statement")
    html, csv = write_statement(found, out)
    if rt.as_json:
        changes = found.reimbursement
        emit_json(rt.console, {"html": str(html), "csv": str(csv), "kind": found.kind,
                               "sequence": found.sequence, "recorded_on": found.recorded_on,
                               "claim": changes.claim_total, "surplus": changes.surplus_total,
                               "ipv_offset": changes.ipv_offset_total})
    else:
        rt.console.print(f"statement written: {html} and {csv}")
