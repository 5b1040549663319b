"""`nervenbahn audit prove EVENT [--checkpoint N]`: what an auditor needs to check one event
against a signed checkpoint offline; `nervenbahn audit consistency OLD NEW`: that a later
checkpoint's trees extend an earlier one's (nothing signed before was changed).

EVENT is the event's id as `audit extract` rows name it (`event_id`, `bus.envelope.event_id`).
The proof: the event's record as stored (the bytes its Merkle leaf hashes, base64), its leaf
index, the audit path, the tree's size and root, and the checkpoint that signs that root
(payload, signature, key id, public key). docs/audit.md prints a verifier of about ten lines
that checks it with hashlib and `cryptography` alone.

Like the other audit reads it is for auditors, administrators and system actors
(`reads.require_canton_wide`), and it is access-logged before it is shown: one entry per
person of the case whose event it is (field `audit_prove`). A consistency proof shows hashes
only, no event: it is not access-logged.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import typer

from domain.errors import CaseNotFoundError, InvalidCommandError
from nervenbahn.audit.access_log import AccessEntry, case_read_entries
from nervenbahn.audit.checkpoints import Checkpoint, CheckpointStore, public_key_text
from nervenbahn.audit.database import AuditDatabase
from nervenbahn.audit.errors import ProofError
from nervenbahn.audit.trees import LeafProof, prove_consistency, prove_event

from .audit_store import signing_key, store_database
from .reads import log_reads, reader, require_canton_wide
from .render import JsonOption, emit_json
from .session import Session, session

__all__ = ["register"]

_COMMAND = "audit prove"
_FIELD = "audit_prove"


def register(app: typer.Typer) -> None:
    """Add `prove` and `consistency` to the `audit` app."""
    app.command("prove")(prove)
    app.command("consistency")(consistency)


def prove(
    ctx: typer.Context,
    event: Annotated[str, typer.Argument(help="The event's id (`event_id` of `audit extract`).")],
    checkpoint: Annotated[
        int | None,
        typer.Option(
            "--checkpoint",
            help="Prove against this checkpoint (default: the newest).",
            min=1,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The proof that one event is in the Merkle tree a signed checkpoint signs: its stored
    record, leaf index, audit path, tree size and root, and the checkpoint (docs/audit.md has
    the offline verifier)."""
    rt = session(ctx)
    rt.as_json = rt.as_json or as_json
    require_canton_wide(rt, "a per-record proof")
    wanted = _event_id(event)
    with store_database(rt) as db:
        signed = _checkpoint(db, checkpoint)
        proof = _prove(db, signed, wanted)
    _log(rt, proof)
    document = _document(rt, wanted, proof, signed)
    if rt.as_json:
        emit_json(rt.console, document)
        return
    _print(rt, document)


def consistency(
    ctx: typer.Context,
    old: Annotated[int, typer.Argument(help="The earlier checkpoint (its sequence).", min=1)],
    new: Annotated[int, typer.Argument(help="The later checkpoint (its sequence).", min=1)],
    as_json: JsonOption = False,
) -> None:
    """The proof that checkpoint NEW's Merkle trees extend checkpoint OLD's (RFC 6962
    consistency proofs, one per chain both sign), with both checkpoints."""
    rt = session(ctx)
    rt.as_json = rt.as_json or as_json
    require_canton_wide(rt, "a consistency proof")
    if old > new:
        raise InvalidCommandError("audit consistency", [("OLD", f"#{old} is later than #{new}")])
    with store_database(rt) as db:
        earlier, later = _checkpoint(db, old), _checkpoint(db, new)
        tables = {table.chain: table for table in db.chained_tables()}
        chains = [
            {
                "chain": chain,
                "old": earlier.trees[chain].to_json(),
                "new": tree.to_json(),
                "consistency_path": [
                    node.hex()
                    for node in prove_consistency(
                        db, tables[chain], earlier.trees[chain], later.chains[chain], tree
                    )
                ],
            }
            for chain, tree in sorted(later.trees.items())
            if chain in earlier.trees and chain in tables
        ]
    key = public_key_text(signing_key(rt).public)
    document = {"chains": chains, "old": _signed(earlier, key), "new": _signed(later, key)}
    if rt.as_json:
        emit_json(rt.console, document)
        return
    for item in chains:
        before, after, path = item["old"], item["new"], item["consistency_path"]
        assert isinstance(before, dict)
        assert isinstance(after, dict)
        assert isinstance(path, list)
        rt.console.print(
            f"{item['chain']}: the tree of {before['tree_size']} events (root {before['root']}) "
            f"is a prefix of the tree of {after['tree_size']} (root {after['root']}); "
            f"consistency path ({len(path)} hashes): {' '.join(path)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    for which, cp in (("old", earlier), ("new", later)):
        rt.console.print(
            f"{which}: checkpoint #{cp.sequence}: payload {cp.payload.decode()} "
            f"signature {base64.b64encode(cp.signature).decode()}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _signed(checkpoint: Checkpoint, public_key: str) -> dict[str, object]:
    """A checkpoint as proofs name it: payload, signature, key id, public key."""
    return {
        "sequence": checkpoint.sequence,
        "payload": checkpoint.payload.decode(),
        "signature": base64.b64encode(checkpoint.signature).decode(),
        "key_id": checkpoint.key_id,
        "public_key": public_key,
    }


def _event_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise InvalidCommandError(
            _COMMAND,
            [("EVENT", f"{text!r} is not an event id (a UUID, as `audit extract` rows name it)")],
        ) from None


def _checkpoint(db: AuditDatabase, sequence: int | None) -> Checkpoint:
    """The checkpoint asked for, or the newest; ProofError if it signs no Merkle tree."""
    store = CheckpointStore(db)
    chosen = store.one(sequence) if sequence is not None else store.latest()
    if chosen is None:
        raise ProofError("no checkpoint is signed yet: sign one (`nervenbahn audit checkpoint`)")
    if not chosen.trees:
        raise ProofError(
            f"checkpoint #{chosen.sequence} was signed before checkpoints signed "
            "Merkle trees: prove against a later one (`nervenbahn audit "
            "checkpoint` signs one now)"
        )
    return chosen


def _prove(db: AuditDatabase, signed: Checkpoint, event: UUID) -> LeafProof:
    """The event's proof in whichever chain's signed tree holds it."""
    tables = {table.chain: table for table in db.chained_tables()}
    for chain, tree in sorted(signed.trees.items()):
        if chain in tables:
            proof = prove_event(db, tables[chain], signed.chains[chain], tree, event)
            if proof is not None:
                return proof
    raise ProofError(
        f"EVENT: no event {event} up to checkpoint #{signed.sequence} (an event "
        "recorded after it needs a later checkpoint: `nervenbahn audit checkpoint`)"
    )


def _log(rt: Session, proof: LeafProof) -> None:
    """Log the read before anything is shown: one entry per person of the event's case, or
    one naming the originator when it is not a case (a payment run); exit 3 if the log cannot
    be written."""
    who, at = reader(rt), datetime.now(UTC)
    endpoint = f"nervenbahn {_COMMAND}"
    try:
        case = rt.service.get_case(UUID(proof.originator_id))
    except (CaseNotFoundError, ValueError):
        entries = [
            AccessEntry(
                at=at,
                consumer=who.consumer,
                scope=who.scope,
                case_id=proof.originator_id,
                person_id="",
                fields=(_FIELD,),
                endpoint=endpoint,
            )
        ]
    else:
        entries = case_read_entries(
            case, at=at, consumer=who.consumer, scope=who.scope, fields=(_FIELD,), endpoint=endpoint
        )
    log_reads(rt, entries, "proof")


def _document(rt: Session, event: UUID, proof: LeafProof, signed: Checkpoint) -> dict[str, object]:
    """The proof as `--json` prints it (and the verifier in docs/audit.md reads)."""
    return {
        "event_id": str(event),
        "chain": proof.chain,
        "position": proof.position,
        "originator_id": proof.originator_id,
        "version": proof.version,
        "record": base64.b64encode(proof.record).decode(),
        "leaf_index": proof.leaf_index,
        "tree_size": proof.tree.size,
        "root": proof.tree.root.hex(),
        "audit_path": [node.hex() for node in proof.path],
        "checkpoint": _signed(signed, public_key_text(signing_key(rt).public)),
    }


def _print(rt: Session, document: dict[str, object]) -> None:
    signed = document["checkpoint"]
    assert isinstance(signed, dict)
    path = document["audit_path"]
    assert isinstance(path, list)
    lines = [
        f"event {document['event_id']}: {document['chain']} position {document['position']} "
        f"(originator {document['originator_id']}, version {document['version']})",
        f"record (base64, the bytes its leaf hashes): {document['record']}",
        f"leaf {document['leaf_index']} of a tree of {document['tree_size']}, root "
        f"{document['root']}",
        f"audit path ({len(path)} hashes, nearest first):",
        *(f"  {node}" for node in path),
        f"signed by checkpoint #{signed['sequence']} (key id {signed['key_id']}, public key "
        f"{signed['public_key']})",
        f"payload: {signed['payload']}",
        f"signature: {signed['signature']}",
        "check it offline with the verifier in docs/audit.md (`audit prove --json`)",
    ]
    for line in lines:
        rt.console.print(line, markup=False, highlight=False, soft_wrap=True)
