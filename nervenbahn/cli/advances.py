"""`nervenbahn advances …`: advances in view of EL and their reimbursement.

The claims recorded from decided advances and their reads: `nervenbahn.cli.advance_claims`.
"""

from __future__ import annotations

import typer

from .advance_claims import add_commands

__all__ = ["app"]

app = typer.Typer(help="Advances in view of EL and their reimbursement.", no_args_is_help=True)
add_commands(app)
