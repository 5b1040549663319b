"""Merkle trees in signed checkpoints and per-record proofs (`audit prove`): each checkpoint
signs the root over the events up to its head, kept incrementally (SQLite and PostgreSQL);
proofs of first, middle and last events lead to the signed root; verification compares every
signed root with the events; checkpoints signed before trees still verify; and the verifier
printed in docs/audit.md — run exactly as printed, importing nothing of ours — accepts a real
proof and rejects an altered event, path or payload."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bus.envelope import event_id
from domain.commands import swiss_today
from nervenbahn.audit.chain import ChainedTable, event_record
from nervenbahn.audit.checkpoints import (
    CheckpointStore,
    SigningKey,
    parse_checkpoint,
    public_key_from_text,
    public_key_text,
    sign_checkpoint,
    write_checkpoint,
)
from nervenbahn.audit.database import AuditDatabase, open_audit_database
from nervenbahn.audit.merkle import TreeHead, consistent, leaf_hash, root_from_path, tree_root
from nervenbahn.audit.trees import FRONTIERS_TABLE, prove_event
from nervenbahn.audit.verify import EXIT_CHAIN_BROKEN, verify_roots, verify_store
from nervenbahn.config import Settings, StoreConfig, load_settings
from nervenbahn.container import build_payment_service, build_service, close_service
from tests.audit.cli import Invoke, make_installation
from tests.audit.test_extract_cli import _account, _run
from tests.bus.pipeline import open_supported_case

DOCS = Path(__file__).resolve().parents[2] / "docs" / "audit.md"
CASES_BEFORE_CHECKPOINTS = (1, 1, 3, 2)
"""Cases (three events each) recorded before each checkpoint: trees of 3, 6, 15, 21 events."""


# --- a store with checkpoints, on both backends ------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Settings, SigningKey]:
    """A store with a checkpoint after each group of `CASES_BEFORE_CHECKPOINTS`."""
    url = (
        f"sqlite:///{tmp_path / 'store.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_dsn")
    )
    return build(url, CASES_BEFORE_CHECKPOINTS)


def build(url: str, groups: Sequence[int]) -> tuple[Settings, SigningKey]:
    """A store at `url` with a checkpoint after each group of `groups` cases (three events
    each); its settings and signing key."""
    settings = load_settings(
        {
            "NERVENBAHN_STORE": url,
            "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "NERVENBAHN_AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        }
    )
    key = SigningKey.from_seed(settings.signing_key.get_secret_value())
    service = build_service(settings)
    try:
        with opened(settings.store) as db:
            n = 0
            for cases in groups:
                for _ in range(cases):
                    open_supported_case(service, n)
                    n += 1
                assert write_checkpoint(db, key) is not None
    finally:
        close_service(service)
    return settings, key


@contextmanager
def opened(store: StoreConfig) -> Iterator[AuditDatabase]:
    """The store's database for the auditor tools, closed afterwards."""
    db = open_audit_database(store)
    try:
        yield db
    finally:
        db.close()


def cases_table(db: AuditDatabase) -> ChainedTable:
    tables = [t for t in db.chained_tables() if t.events_table != "payments_events"]
    assert len(tables) == 1, tables
    return tables[0]


def stored(db: AuditDatabase, table: ChainedTable) -> list[tuple[int, UUID, bytes]]:
    """(position, event id, record) of every stored event, recomputed here."""
    rows = []
    for row in db.events(table):
        assert isinstance(row, tuple)
        rows.append((row[0], event_id(UUID(row[1]), row[2]), event_record(*row)))
    return rows


def test_each_checkpoint_signs_the_root_over_the_events_up_to_its_head(
    store: tuple[Settings, SigningKey],
) -> None:
    settings, key = store
    with opened(settings.store) as db:
        table = cases_table(db)
        events = stored(db, table)
        checkpoints = CheckpointStore(db).all()
        sizes = []
        for cp in checkpoints:
            head, tree = cp.chains[table.chain], cp.trees[table.chain]
            upto = [record for position, _, record in events if position <= head.position]
            assert tree == TreeHead(len(upto), tree_root([leaf_hash(r) for r in upto]))
            sizes.append(tree.size)
        assert sizes == [3, 6, 15, 21]
        assert verify_store(db, key.public).ok


def test_proofs_of_first_middle_and_last_events_lead_to_each_signed_root(
    store: tuple[Settings, SigningKey],
) -> None:
    settings, _ = store
    with opened(settings.store) as db:
        table = cases_table(db)
        events = stored(db, table)
        for cp in CheckpointStore(db).all():
            head, tree = cp.chains[table.chain], cp.trees[table.chain]
            for index in sorted({0, tree.size // 2, tree.size - 1}):
                position, wanted, record = events[index]
                proof = prove_event(db, table, head, tree, wanted)
                assert proof is not None
                assert (proof.position, proof.leaf_index, proof.record) == (position, index, record)
                assert root_from_path(leaf_hash(record), index, tree.size, proof.path) == (
                    tree.root
                )
            _, later, _ = events[tree.size] if tree.size < len(events) else (0, None, b"")
            if later is not None:  # recorded after the checkpoint: not in its tree
                assert prove_event(db, table, head, tree, later) is None


def test_a_frontier_that_does_not_make_the_signed_root_is_not_used(tmp_path: Path) -> None:
    settings, key = _sqlite_store(tmp_path, cases=3)
    with sqlite3.connect(tmp_path / "store.db") as raw:  # 9 leaves: two nodes, both garbage
        raw.execute(f"UPDATE {FRONTIERS_TABLE} SET frontier = ?", (secrets.token_bytes(64).hex(),))
    _record_case(settings, 99)
    with opened(settings.store) as db:
        signed = write_checkpoint(db, key)
        assert signed is not None
        table = cases_table(db)
        records = [leaf_hash(r) for _, _, r in stored(db, table)]
        assert signed.trees[table.chain] == TreeHead(12, tree_root(records))
        assert verify_store(db, key.public).ok


def test_the_next_checkpoint_extends_the_signed_tree_not_events_altered_since(
    tmp_path: Path,
) -> None:
    settings, key = _sqlite_store(tmp_path, cases=3)
    with opened(settings.store) as db:
        table = cases_table(db)
        before = [leaf_hash(r) for _, _, r in stored(db, table)]
        db.execute("UPDATE stored_events SET state = ? WHERE rowid = 2", (b"{}",))
        _record_case(settings, 99)
        signed = write_checkpoint(db, key)
        assert signed is not None
        after = [leaf_hash(r) for _, _, r in stored(db, table)]
        # The frontier kept with checkpoint #1 was used: #2 signs the tree over the events as
        # they were signed, extended by the new ones, not over the altered event.
        assert signed.trees[table.chain].root == tree_root(before + after[9:])
        trusted = [
            (cp.sequence, cp.chains[table.chain], cp.trees[table.chain])
            for cp in CheckpointStore(db).all()
        ]
        assert [b.position for b in verify_roots(db, table, trusted)] == [9, 12]


def _record_case(settings: Settings, n: int) -> None:
    service = build_service(settings)
    try:
        open_supported_case(service, n)
    finally:
        close_service(service)


def _sqlite_store(tmp_path: Path, cases: int) -> tuple[Settings, SigningKey]:
    return build(f"sqlite:///{tmp_path / 'store.db'}", (cases,))


def test_an_altered_event_fails_verification_at_its_position_not_again_at_each_root(
    store: tuple[Settings, SigningKey],
) -> None:
    settings, key = store
    with opened(settings.store) as db:
        table = cases_table(db)
        position = stored(db, table)[4][0]  # in every tree but the first
        column = "rowid" if settings.store.kind == "sqlite" else "notification_id"
        p = db.placeholder
        db.execute(
            f"UPDATE {table.events_table} SET state = {p} WHERE {column} = {p}",
            (b"{}", position),
        )
        report = verify_store(db, key.public)
        chain = report.chains[0]
        assert report.exit_code == EXIT_CHAIN_BROKEN
        assert [b.position for b in chain.all_breaks] == [position]
        # The roots signed after it do disagree with the store: recomputed, as verify does.
        trusted = [
            (cp.sequence, cp.chains[table.chain], cp.trees[table.chain])
            for cp in CheckpointStore(db).all()
        ]
        heads = [head.position for _, head, _ in trusted]
        roots = verify_roots(db, table, trusted)
        assert [b.position for b in roots] == heads[1:]
        assert "differs from the one signed checkpoint #2" in roots[0].reason


def test_a_signed_root_the_events_do_not_make_fails_verification_by_itself(
    tmp_path: Path,
) -> None:
    settings, key = _sqlite_store(tmp_path, cases=2)
    with opened(settings.store) as db:
        store = CheckpointStore(db)
        latest = store.latest()
        assert latest is not None
        ((chain, tree),) = latest.trees.items()
        wrong = sign_checkpoint(
            key, 2, datetime.now(UTC), latest.chains, trees={chain: TreeHead(tree.size, bytes(32))}
        )
        store.add(wrong)
        report = verify_store(db, key.public)
        breaks = report.chains[0].all_breaks
        assert report.exit_code == EXIT_CHAIN_BROKEN
        assert [(b.position, "checkpoint #2" in b.reason) for b in breaks] == [
            (latest.chains[chain].position, True)
        ]


def test_a_checkpoint_signed_before_trees_still_verifies(tmp_path: Path) -> None:
    settings, key = _sqlite_store(tmp_path, cases=2)
    with opened(settings.store) as db:
        store = CheckpointStore(db)
        latest = store.latest()
        assert latest is not None
        old = sign_checkpoint(key, 2, datetime.now(UTC), latest.chains)
        assert b"tree_size" not in old.payload and b"root" not in old.payload
        store.add(old)
        assert store.one(2).trees == {}
        report = verify_store(db, key.public)
        assert report.ok and report.checkpoints == 2


# --- the command and the verifier of the docs --------------------------------------------------


def docs_verifier() -> str:
    """The Python block of docs/audit.md's *One event against a checkpoint*."""
    section = DOCS.read_text(encoding="utf-8").split("### One event against a checkpoint", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "docs/audit.md lost its proof verifier"
    return match.group(1)


@pytest.fixture
def proving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[Invoke, list[dict[str, Any]], Path]:
    """An installation with two cases (six events) and a checkpoint, the CLI acting as an
    auditor, the extract's rows, and the docs' verifier and the auditor's key in tmp_path."""
    _, run, _ = make_installation(tmp_path, monkeypatch, capsys)
    monkeypatch.setenv("NERVENBAHN_ACTOR", "rk-01:auditor:kanton")
    assert run("audit", "checkpoint")[0] == 0
    assert run("audit", "public-key", "--out", str(tmp_path / "nervenbahn.pub"))[0] == 0
    code, out, err = run("--json", "audit", "extract", "live", "--format", "json")
    assert code == 0, err
    (tmp_path / "check_proof.py").write_text(docs_verifier(), encoding="utf-8")
    return run, json.loads(out)["rows"], tmp_path


def _check(folder: Path, proof: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    (folder / "proof.json").write_text(json.dumps(proof), encoding="utf-8")
    return subprocess.run(
        [
            sys.executable,
            "-I",
            str(folder / "check_proof.py"),
            str(folder / "proof.json"),
            str(folder / "nervenbahn.pub"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=folder,
    )


def _prove(run: Invoke, event: str, *options: str) -> dict[str, Any]:
    code, out, err = run("--json", "audit", "prove", event, *options)
    assert code == 0, err
    proof: dict[str, Any] = json.loads(out)
    return proof


def test_the_verifier_from_the_docs_accepts_proofs_of_first_middle_and_last_event(
    proving: tuple[Invoke, list[dict[str, Any]], Path],
) -> None:
    run, rows, folder = proving
    ordered = sorted(rows, key=lambda r: r["position"])
    assert len(ordered) == 6
    for row in (ordered[0], ordered[3], ordered[5]):
        proof = _prove(run, row["event_id"])
        assert (proof["chain"], proof["position"]) == (row["chain"], row["position"])
        assert proof["tree_size"] == 6 and proof["leaf_index"] == row["position"] - 1
        assert len(proof["audit_path"]) == 3 or proof["leaf_index"] >= 4
        # The position printed is the record's: a proof claiming another one does not move it.
        checked = _check(folder, {**proof, "position": 999})
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.strip() == (
            f"{row['chain']} position {row['position']} is in signed checkpoint #1"
        )


def test_the_verifier_rejects_an_altered_event_path_or_payload(
    proving: tuple[Invoke, list[dict[str, Any]], Path],
) -> None:
    run, rows, folder = proving
    proof = _prove(run, rows[2]["event_id"])
    record = bytearray(base64.b64decode(proof["record"]))
    record[-10] ^= 1  # one byte of the stored state
    path = list(proof["audit_path"])
    path[1] = path[1][:-1] + ("0" if path[1][-1] != "0" else "1")
    event = {**proof, "record": base64.b64encode(bytes(record)).decode()}
    # The payload altered to sign the root the altered event leads to, or only its time.
    payload = json.loads(proof["checkpoint"]["payload"])
    root = root_from_path(
        leaf_hash(bytes(record)),
        proof["leaf_index"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["audit_path"]],
    )
    assert root is not None
    payload["chains"][0]["root"] = root.hex()
    rooted = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    payload = json.loads(proof["checkpoint"]["payload"])
    payload["created_at"] = "2020-01-01T00:00:00+00:00"
    dated = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    altered = {
        "event": event,
        "path": {**proof, "audit_path": path},
        "index": {**proof, "leaf_index": proof["leaf_index"] + 1},
        "size": {**proof, "tree_size": proof["tree_size"] + 1},
        "payload root": {**event, "checkpoint": {**proof["checkpoint"], "payload": rooted}},
        "payload time": {**proof, "checkpoint": {**proof["checkpoint"], "payload": dated}},
    }
    for what, bad in altered.items():
        checked = _check(folder, bad)
        assert checked.returncode != 0, what
        expected = "InvalidSignature" if what.startswith("payload") else "not in the tree"
        assert expected in checked.stderr, (what, checked.stderr)
    assert _check(folder, proof).returncode == 0
    other = Ed25519PrivateKey.generate().public_key()
    (folder / "nervenbahn.pub").write_text(public_key_text(other), encoding="utf-8")
    checked = _check(folder, proof)
    assert checked.returncode != 0 and "InvalidSignature" in checked.stderr


def test_prove_names_the_checkpoint_key_and_logs_the_read_before_showing(
    proving: tuple[Invoke, list[dict[str, Any]], Path],
) -> None:
    run, rows, folder = proving
    row = rows[0]
    proof = _prove(run, row["event_id"])
    key = SigningKey.from_seed(
        load_settings(
            {"NERVENBAHN_AUDIT_SIGNING_KEY": _env_key(folder)}
        ).signing_key.get_secret_value()
    )
    assert proof["checkpoint"]["key_id"] == key.key_id
    assert proof["checkpoint"]["public_key"] == public_key_text(key.public)
    with sqlite3.connect(folder / "access-log.db") as log:
        logged = log.execute(
            "SELECT consumer, scope, case_id, fields, endpoint FROM access_log "
            "WHERE endpoint = 'nervenbahn audit prove'"
        ).fetchall()
    assert logged == [
        ("cli:rk-01", "auditor:kanton", row["case_id"], '["audit_prove"]', "nervenbahn audit prove")
    ]
    code, out, _ = run("audit", "prove", row["event_id"])
    assert code == 0
    assert f"leaf {proof['leaf_index']} of a tree of 6" in out


def installed(folder: Path) -> Settings:
    """The settings of the installation `make_installation` made in `folder` (its keys are in
    the environment)."""
    return load_settings(
        {
            "NERVENBAHN_STORE": f"sqlite:///{folder / 'store.db'}",
            "NERVENBAHN_MASTER_KEY": os.environ["NERVENBAHN_MASTER_KEY"],
        }
    )


def _env_key(folder: Path) -> str:
    """The signing key the installation in `folder` runs with (set by `make_installation`)."""
    assert (folder / "store.db").exists()
    return os.environ["NERVENBAHN_AUDIT_SIGNING_KEY"]


def test_prove_refuses_caseworkers_bad_ids_unknown_events_and_checkpoints_without_trees(
    proving: tuple[Invoke, list[dict[str, Any]], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run, rows, folder = proving
    code, _, err = run("audit", "prove", "not-a-uuid")
    assert code == 1 and "EVENT: 'not-a-uuid' is not an event id" in err
    code, _, err = run("audit", "prove", str(UUID(int=7)))
    assert code == 1 and f"no event {UUID(int=7)} up to checkpoint #1" in err
    code, _, err = run("audit", "prove", rows[0]["event_id"], "--checkpoint", "9")
    assert code == 1 and "checkpoint #9: not in the store" in err
    with opened(
        load_settings({"NERVENBAHN_STORE": f"sqlite:///{folder / 'store.db'}"}).store
    ) as db:
        store = CheckpointStore(db)
        latest = store.latest()
        assert latest is not None
        key = SigningKey.from_seed(_env_key(folder))
        store.add(sign_checkpoint(key, 2, datetime.now(UTC), latest.chains))
    code, _, err = run("audit", "prove", rows[0]["event_id"], "--checkpoint", "2")
    assert code == 1 and "checkpoint #2 was signed before checkpoints signed Merkle trees" in err
    code, _, err = run("audit", "prove", rows[0]["event_id"])
    assert code == 1 and "#2 was signed before" in err
    assert _prove(run, rows[0]["event_id"], "--checkpoint", "1")["checkpoint"]["sequence"] == 1
    monkeypatch.setenv("NERVENBAHN_ACTOR", "cw-olten-01:caseworker:so-olten")
    code, _, err = run("audit", "prove", rows[0]["event_id"], "--checkpoint", "1")
    assert code == 1 and "not by a caseworker" in err


def test_consistency_proves_a_later_checkpoint_extends_an_earlier_one(
    proving: tuple[Invoke, list[dict[str, Any]], Path],
) -> None:
    run, _, folder = proving
    settings = installed(folder)
    _record_case(settings, 5)
    assert run("audit", "checkpoint")[0] == 0
    code, out, err = run("--json", "audit", "consistency", "1", "2")
    assert code == 0, err
    document = json.loads(out)
    key = public_key_from_text((folder / "nervenbahn.pub").read_text(encoding="utf-8"))
    signed = {}
    for which in ("old", "new"):
        item = document[which]
        checkpoint = parse_checkpoint(item["payload"].encode(), base64.b64decode(item["signature"]))
        assert checkpoint.signature_problem(key) is None
        signed[which] = checkpoint
    ((chain, *_),) = [(c["chain"], c) for c in document["chains"]]
    old, new = signed["old"].trees[chain], signed["new"].trees[chain]
    assert (old.size, new.size) == (6, 9)
    path = [bytes.fromhex(h) for h in document["chains"][0]["consistency_path"]]
    assert consistent(old, new, path)
    assert not consistent(TreeHead(6, bytes(32)), new, path)
    code, _, err = run("audit", "consistency", "2", "1")
    assert code == 1 and "OLD: #2 is later than #1" in err
    with sqlite3.connect(folder / "store.db") as raw:
        raw.execute("UPDATE stored_events SET state = ? WHERE rowid = 1", (b"{}",))
    code, _, err = run("audit", "consistency", "1", "2")
    assert code == 1 and "do not make the signed tree (size 9)" in err


def test_a_payment_event_is_proven_in_its_chain_and_logged_under_its_originator(
    proving: tuple[Invoke, list[dict[str, Any]], Path],
) -> None:
    run, rows, folder = proving
    settings = installed(folder)
    service = build_service(settings)
    payments = build_payment_service(settings, service)
    try:
        for case_id in sorted({row["case_id"] for row in rows}):
            _account(payments, UUID(case_id))
        _run(payments, swiss_today().strftime("%Y-%m"))
    finally:
        payments.close()
        close_service(service)
    assert run("audit", "checkpoint")[0] == 0
    code, out, err = run("--json", "audit", "extract", "actions", "--format", "json")
    assert code == 0, err
    paid = [r for r in json.loads(out)["rows"] if r["chain"] == "events:payments_events"]
    assert paid
    proof = _prove(run, paid[-1]["event_id"])
    assert (proof["chain"], proof["position"]) == ("events:payments_events", paid[-1]["position"])
    checked = _check(folder, proof)
    assert checked.returncode == 0, checked.stderr
    with sqlite3.connect(folder / "access-log.db") as log:
        logged = log.execute(
            "SELECT case_id, person_id FROM access_log WHERE endpoint = 'nervenbahn audit prove'"
        ).fetchall()
    assert logged == [(proof["originator_id"], "")]
