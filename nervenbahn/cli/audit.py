"""`nervenbahn audit …`: what auditors use (each part registers its commands here).

- chain, checkpoints and verification: `audit_chain`
- the access log: `audit_access`
- bitemporal queries and the audit report: `audit_case`
- the auditor's population (sampling extracts): `audit_extract`
- per-record proofs against a signed checkpoint: `audit_prove`
"""

from __future__ import annotations

import typer

from . import audit_access, audit_case, audit_chain, audit_extract, audit_prove

__all__ = ["app"]

app = typer.Typer(
    help="For auditors: state at any date, tamper evidence, the access log, reports.",
    no_args_is_help=True,
)
audit_chain.register(app)
audit_access.register(app)
audit_case.register(app)
audit_extract.register(app)
audit_prove.register(app)
