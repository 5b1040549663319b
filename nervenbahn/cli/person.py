"""`nervenbahn person`: personal data of household members."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import typer
from rich.table import Table

from domain.errors import InvalidCommandError

from .exit_codes import EXIT_INCOMPLETE, EXIT_REFUSED
from .render import emit_json
from .session import session

__all__ = ["app"]

app = typer.Typer(help="Personal data of household members.", no_args_is_help=True)


@app.command("erase")
def erase(
    ctx: typer.Context,
    person_id: Annotated[str, typer.Argument(help="The person id (UUID).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a person's data for good (crypto-shredding, and the files that name them in
    clear); case histories stay replayable. Exits 4 if a place could not be reached."""
    from nervenbahn.erasure import erase_person

    rt = session(ctx)
    try:
        uid = UUID(person_id)
    except ValueError:
        raise InvalidCommandError(
            "erase", [("person_id", f"{person_id!r} is not a UUID")]
        ) from None
    if not yes and not typer.confirm(f"Erase all personal data of {uid} irreversibly?"):
        raise typer.Exit(EXIT_REFUSED)
    report = erase_person(rt.container, uid)
    places = [{"place": p.path, "outcome": p.outcome, "detail": p.detail} for p in report.places()]
    if rt.as_json:
        emit_json(
            rt.console,
            {
                "person_id": uid,
                "erased": report.key_existed,
                "complete": report.complete,
                "places": places,
            },
        )
    else:
        table = Table(
            "place", "outcome", "detail", title=f"Erasure of person {uid}", title_justify="left"
        )
        for row in places:
            table.add_row(row["place"], row["outcome"], row["detail"])
        rt.console.print(table)
    if not report.complete:
        typer.echo(
            f"error: the erasure of {uid} is incomplete: see the places not reached; "
            "remove the cause and run `person erase` again",
            err=True,
        )
        raise typer.Exit(EXIT_INCOMPLETE)
