"""`nervenbahn advances …`: advances in view of EL and their reimbursement.

The claims recorded from decided advances and their reads (`advances claim|list|show|claims`):
`nervenbahn.cli.advance_claims`.

`advances statement CASE_ID APPLICATION_ID --out DIR [--earlier-as-of TIME]` writes the
person's statement of the reimbursement (`nervenbahn.reimbursement_statement`): an HTML page in
German naming the person the advance was made for, and a CSV of the per-month figures.

The figures are computed from the recorded facts as known now: the case's advance (case
service), its payment orders (payments service) and the application as known (benefits
service), each opened through the container. With `--earlier-as-of TIME` the statement is a
correction against the statement computed from the facts recorded up to TIME (what was claimed
then), otherwise the first statement.

Read scope as `case show`: a case of another region is not found, with the message of a
missing case; auditors are refused (the statement holds personal data). The read is appended
to the access log (one entry per person of the household) before anything is written.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from domain.reimbursement import claimed_so_far
from nervenbahn.reimbursement_statement import (
    STATEMENT_FIELDS,
    Statement,
    advance_for,
    person_for,
    reimbursement_from_services,
    write_statement,
)

from .advance_claims import add_commands
from .inputs import parse_uuid
from .reads import log_case_read, readable_case, require_personal_data
from .render import emit_json
from .session import parse_as_of, session

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
    earlier_as_of: Annotated[str | None, typer.Option(
        "--earlier-as-of",
        help="A correction against the statement from the facts recorded up to this time "
             "(a date means the end of that day, Swiss time).")] = None,
) -> None:
    """Write the person's statement of the reimbursement of an advance (HTML and CSV)."""
    rt = session(ctx)
    case = readable_case(rt, parse_uuid(COMMAND, "case_id", case_id))
    require_personal_data(rt)
    application = parse_uuid(COMMAND, "application_id", application_id)
    person = person_for(case, advance_for(case, application))
    container, now = rt.container, datetime.now().astimezone()
    before = {}
    if earlier_as_of is not None:
        earlier = reimbursement_from_services(
            case, application, container.payments, container.benefits,
            parse_as_of(earlier_as_of, COMMAND, "earlier_as_of"))
        before = claimed_so_far([earlier])
    result = reimbursement_from_services(case, application, container.payments,
                                         container.benefits, now, before)
    log_case_read(rt, case, STATEMENT_FIELDS, COMMAND)
    html, csv = write_statement(Statement(case.id, application, person, result, now, before),
                                out)
    if rt.as_json:
        emit_json(rt.console, {"html": str(html), "csv": str(csv),
                               "claim": result.claim_total, "surplus": result.surplus_total})
    else:
        rt.console.print(f"statement written: {html} and {csv}")
