"""Answers that rest on verified events: a query command checks what it is about to show.

`nervenbahn audit verify` checks every chain against the signed checkpoints, but only when
someone runs it; until then `case show` or `audit state` would answer from an event whose bytes
were altered in the database, and say nothing. So before a query answers:

- about one case (`case show|history`, `audit state|budget|diff`, `payments orders`, …):
  each of the case's stored events is checked against its hash-chain link, recomputed from the
  link before it and the event's record exactly as the recorder wrote it, and the case's
  versions must run 1, 2, 3 … without a gap (a deleted event);
- about a population (`case list`, `audit extract`, `payments runs|orders`): the chains of the
  stores it reads are recomputed from their first event (`verify.verify_chain`, without
  checkpoints).

Any finding is `UnverifiedReadError` (the CLI exits 4, as `audit verify` does): nothing is shown.

What this proves and what it does not: an event altered after recording, without its chain
being recomputed, is caught by the first query that reads it; an attacker who also rewrites
every link from there on is caught by `audit verify` against the signed checkpoints (or the
auditor's copy), which `audit case` runs in full. Cost: one indexed query per case read; for a
population, one pass over its chains (as `audit verify` without its signatures).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

from nervenbahn.audit.chain import ChainedTable, as_bytes, chain_hash, event_record, originator_text
from nervenbahn.audit.database import AuditDatabase
from nervenbahn.audit.errors import AuditError
from nervenbahn.audit.hashing import genesis

__all__ = ["UnverifiedReadError", "case_problems", "chain_problems", "require_verified"]


class UnverifiedReadError(AuditError):
    """What a query would show rests on stored events that do not match their hash chain;
    nothing is shown."""


def case_problems(db: AuditDatabase, case_id: UUID, events_table: str) -> list[str]:
    """Every stored event of `case_id` that does not match its chain link, and every gap in
    its versions; empty if the case's events hold (or the store has no such chained table)."""
    table = next((t for t in db.chained_tables() if t.events_table == events_table), None)
    if table is None:
        return []
    problems: list[str] = []
    expected = 1
    for row in db.originator_links(table, originator_text(case_id)):
        version = int(row[2])
        if version != expected:
            problems.append(
                f"{table.chain}: case {case_id} has no event version {expected} "
                f"(the next stored is {version}): an event was deleted"
            )
        expected = version + 1
        problem = _link_problem(table, case_id, row)
        if problem is not None:
            problems.append(
                f"{table.chain}: position {row[0]} (case {case_id} v{version}): {problem}"
            )
    return problems


def chain_problems(db: AuditDatabase, events_tables: Collection[str] | None = None) -> list[str]:
    """The first break of each chain (of `events_tables`, or every chained table),
    recomputed from its first event; empty if they hold."""
    # here, not at the top: verify's checkpoints bring Kafka and Avro, which a case command
    # about one case (`case_problems`) never needs (tests/cli/test_cli_start.py)
    from nervenbahn.audit.verify import verify_chain

    problems: list[str] = []
    for table in db.chained_tables():
        if events_tables is not None and table.events_table not in events_tables:
            continue
        verification = verify_chain(db, table)
        problems.extend(
            f"{table.chain}: bad position {b.position}: {b.reason}" for b in verification.all_breaks
        )
    return problems


def require_verified(problems: list[str], what: str) -> None:
    """Raise `UnverifiedReadError` naming `what` and the problems, if there are any."""
    if problems:
        raise UnverifiedReadError(
            f"{what} is not shown: the store does not match its hash chain ("
            + "; ".join(problems[:5])
            + (f"; {len(problems) - 5} more" if len(problems) > 5 else "")
            + "); run `nervenbahn audit verify`"
        )


def _link_problem(table: ChainedTable, case_id: UUID, row: tuple[Any, ...]) -> str | None:
    position, _origin, version, topic, state, stored, before = row
    if stored is None:
        return "no hash-chain link is stored for it"
    previous = genesis(table.chain) if before is None else as_bytes(before)
    record = event_record(int(position), case_id, int(version), str(topic), as_bytes(state))
    if chain_hash(previous, record) != as_bytes(stored):
        return "its stored bytes do not match its hash-chain link (altered after recording)"
    return None
