"""A purge counts only if a signed checkpoint vouches for its retention anchor; an access log
with entries that have no hash is refused on open and chained only by an explicit command.

Real SQLite files and the CLI: the attacks are the ones a security review ran on a store —
an anchor inserted (the anchor and permit tables accept INSERT) to hide recent deletions, or
to wipe the whole log; hashes removed and the schema version reset so that opening re-chains.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bus.registry_sqlite import SQLiteSchemaRegistry
from nervenbahn.audit.access_log import AccessEntry
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.audit.checkpoints import (
    CheckpointCodec,
    CheckpointError,
    CheckpointStore,
    SigningKey,
    parse_checkpoint,
    sign_checkpoint,
    write_checkpoint,
)
from nervenbahn.audit.database import open_audit_database
from nervenbahn.audit.hashing import ChainHead, SignedAnchor
from nervenbahn.config import Settings, StoreConfig
from tests.audit.cli import Invoke, make_installation

ENTRIES = 12
AUDITOR = "fk.meier:auditor:so-finanzkontrolle"


@pytest.fixture
def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> tuple[Settings, Invoke, UUID]:
    return make_installation(tmp_path, monkeypatch, capsys)


def _log(path: Path, *ages_in_days: int) -> None:
    """Append one read per age (days before now), oldest first."""
    log = SQLiteAccessLog(path)
    for n, days in enumerate(ages_in_days):
        log.append(AccessEntry(at=datetime.now(UTC) - timedelta(days=days),
                               consumer=f"office-{n}", scope="branch_office:akso-olten",
                               case_id=str(uuid4()), person_id=str(uuid4()),
                               fields=("given_name",), endpoint="/v1/branch-offices/x/cases/y"))
    log.close()


def _auditor_copy(run: Invoke, tmp_path: Path) -> tuple[str, ...]:
    """Export the checkpoints and the public key as the auditor keeps them; the options."""
    copy, key = tmp_path / "auditor" / "checkpoints.jsonl", tmp_path / "auditor" / "key.pub"
    assert run("audit", "checkpoints", "export", str(copy))[0] == 0
    assert run("audit", "public-key", "--out", str(key))[0] == 0
    return "--checkpoints", str(copy), "--public-key", str(key)


def _forge_anchor(log_path: Path, upto: int, purged_at: str, last_at: str) -> None:
    """The review's attack, verbatim but for the position and dates: no trigger dropped."""
    with sqlite3.connect(log_path) as db:
        db.executescript(
            f"insert into access_log_purge_permit values({upto}); "
            "insert into access_log_anchor(seq,position,hash,purged_at,last_at,entries,reason) "
            f"select 1,{upto},hash,'{purged_at}','{last_at}',{upto},'retention' "
            f"from access_log_chain where id={upto}; "
            f"delete from access_log where id<={upto}; "
            f"delete from access_log_chain where id<={upto}; "
            "delete from access_log_purge_permit;"
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- 1. retention anchors must be vouched for by a signed checkpoint ------------------------


def _anchor(seq: int, position: int) -> SignedAnchor:
    return SignedAnchor(seq, position, bytes([seq]) * 32, f"2026-0{seq}-01T00:00:00+00:00",
                        f"2025-0{seq}-01T00:00:00+00:00", 3)


def test_checkpoints_name_the_latest_anchor_and_each_one_no_earlier_checkpoint_named(
    tmp_path: Path,
) -> None:
    with closing(sqlite3.connect(tmp_path / "store.db")) as raw:
        raw.execute("VACUUM")
    db = open_audit_database(StoreConfig.parse(f"sqlite:///{tmp_path / 'store.db'}"))
    key = SigningKey(Ed25519PrivateKey.generate())
    head = ChainHead(9, b"\x01" * 32)
    signed = []
    try:
        for anchors in ([_anchor(1, 3), _anchor(2, 6)], [_anchor(1, 3), _anchor(2, 6),
                        _anchor(3, 9)], [_anchor(1, 3), _anchor(2, 6), _anchor(3, 9)]):
            made = write_checkpoint(db, key, access_log=head, access_log_id="log-a",
                                    access_log_anchors=anchors)
            assert made is not None
            signed.append([a.seq for a in made.access_log_anchors])
        unmoved = write_checkpoint(db, key, access_log=head, access_log_id="log-a",
                                   access_log_anchors=[_anchor(1, 3), _anchor(2, 6),
                                                       _anchor(3, 9)], only_if_moved=True)
        kept = CheckpointStore(db).all()
    finally:
        db.close()

    assert signed == [[1, 2], [3], [3]]
    assert unmoved is None
    assert [cp.access_log_anchors for cp in kept][1] == (_anchor(3, 9),)  # read back as signed


def test_anchors_survive_the_avro_round_trip_and_the_signature_covers_them(
    tmp_path: Path,
) -> None:
    key = SigningKey(Ed25519PrivateKey.generate())
    checkpoint = sign_checkpoint(key, 1, datetime.now(UTC), {}, ChainHead(6, b"\x02" * 32),
                                 "log-a", [_anchor(2, 6)])
    registry = SQLiteSchemaRegistry(tmp_path / "registry.db")
    codec = CheckpointCodec(registry, "nervenbahn.audit.checkpoints")
    try:
        decoded = codec.decode(codec.encode(checkpoint))
    finally:
        registry.close()
    forged = checkpoint.payload.replace(b'"entries":3', b'"entries":4')

    assert decoded == checkpoint and decoded.access_log_anchors == (_anchor(2, 6),)
    assert parse_checkpoint(forged, checkpoint.signature).signature_problem(key.public)


@pytest.mark.parametrize(("name", "bad"), [
    ("seq", "two"), ("position", -1), ("entries", None), ("purged_at", 1), ("last_at", None),
    ("hash", "zz"),
])
def test_a_malformed_anchor_in_a_checkpoint_is_refused_naming_the_field(
    name: str, bad: object
) -> None:
    key = SigningKey(Ed25519PrivateKey.generate())
    checkpoint = sign_checkpoint(key, 1, datetime.now(UTC), {}, ChainHead(6, b"\x09" * 32),
                                 "log-a", [_anchor(2, 6)])
    document = json.loads(checkpoint.payload)
    document["access_log"]["anchors"][0][name] = bad

    with pytest.raises(CheckpointError, match=rf"payload\.access_log\.anchors\[0\]\.{name}"):
        parse_checkpoint(json.dumps(document).encode(), checkpoint.signature)


def test_a_purge_by_the_command_verifies_and_lists_the_anchor_it_relied_on(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, run, _ = installation
    log_path = tmp_path / "access-log.db"
    _log(log_path, 800, 700, 400, 10, 1)
    assert run("audit", "checkpoint")[0] == 0                     # #1, before the purge
    monkeypatch.setenv("NERVENBAHN_ACTOR", AUDITOR)

    code, out, _ = run("--json", "audit", "access-purge")
    purged = json.loads(out)
    auditor = _auditor_copy(run, tmp_path)
    code_json, out_json, _ = run("audit", "verify", "--json", *auditor)
    code_text, out_text, _ = run("audit", "verify", *auditor)

    assert (code, purged["purged"], purged["checkpoint"]) == (0, 3, 2)
    report = json.loads(out_json)
    assert code_json == 0, report
    [anchor] = report["access_log"]["anchors"]
    assert (anchor["seq"], anchor["position"], anchor["entries"]) == (1, 3, 3)
    assert anchor["vouched_by"] == [2]
    assert anchor["hash"] == purged["anchor"]["hash"]
    assert code_text == 0
    assert ("access-log: retention anchor #1 (entries 1-3, the last recorded "
            f"{anchor['last_at']}, purged at {anchor['purged_at']}): vouched for by signed "
            "checkpoint #2") in _one_line(out_text)


def test_a_second_purge_is_vouched_for_too_and_both_anchors_are_listed(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, run, _ = installation
    log_path = tmp_path / "access-log.db"
    _log(log_path, 800, 700)
    monkeypatch.setenv("NERVENBAHN_ACTOR", AUDITOR)
    assert run("audit", "access-purge")[0] == 0                   # anchor #1 at 2, checkpoint #1
    _log(log_path, 500, 1)
    assert run("audit", "checkpoint")[0] == 0                     # #2 names the latest anchor
    assert run("audit", "access-purge")[0] == 0                   # anchor #2 at 3, checkpoint #3

    code, out, _ = run("audit", "verify", "--json", *_auditor_copy(run, tmp_path))

    report = json.loads(out)
    assert code == 0, report
    assert [(a["seq"], a["position"], a["vouched_by"]) for a in report["access_log"]["anchors"]
            ] == [(1, 2, [1, 2]), (2, 3, [3])]


@pytest.mark.parametrize(
    ("upto", "purged_at", "last_at"),
    [
        (9, "2026-12-06T03:50:00+00:00", "2026-12-06T03:48:09+00:00"),   # the review's
        (9, "2026-12-06T03:50:00+00:00", "2024-01-01T00:00:00+00:00"),   # old-looking dates
        (ENTRIES, "2026-12-06T03:50:00+00:00", "2024-01-01T00:00:00+00:00"),  # whole log
    ],
    ids=["recent-deletions", "plausible-dates", "whole-log"],
)
def test_a_forged_retention_anchor_fails_verification_naming_it(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path,
    upto: int, purged_at: str, last_at: str,
) -> None:
    _, run, _ = installation
    log_path = tmp_path / "access-log.db"
    _log(log_path, *([1] * ENTRIES))
    assert run("audit", "checkpoint")[0] == 0
    auditor = _auditor_copy(run, tmp_path)
    _forge_anchor(log_path, upto, purged_at, last_at)

    code_json, out_json, _ = run("audit", "verify", "--json", *auditor)
    code_text, out_text, _ = run("audit", "verify", *auditor)

    report = json.loads(out_json)
    assert code_json == 4, report
    reasons = [b["reason"] for b in report["access_log"]["breaks"]]
    named = f"retention anchor #1 (entries 1-{upto}, the last recorded {last_at}, purged at " \
            f"{purged_at})"
    assert f"{named} is not named by any signed checkpoint" in reasons[0]
    assert report["access_log"]["breaks"][0]["position"] == upto
    assert [a["vouched_by"] for a in report["access_log"]["anchors"]] == [[]]
    assert code_text == 4
    assert f"access-log: {named}: NOT vouched for by any signed checkpoint" in _one_line(out_text)
    assert "BROKEN" in out_text


def test_an_anchor_purged_before_its_entries_were_a_year_old_is_reported(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path,
) -> None:
    _, run, _ = installation
    log_path = tmp_path / "access-log.db"
    _log(log_path, *([1] * ENTRIES))
    _forge_anchor(log_path, 9, "2026-12-06T03:50:00+00:00", "2026-12-06T03:48:09+00:00")

    code, out, _ = run("audit", "verify", "--json")

    reasons = [b["reason"] for b in json.loads(out)["access_log"]["breaks"]]
    assert code == 4
    assert any("its last entry was 0 days old when purged; the access log is kept at least 365"
               in reason for reason in reasons)


def test_a_genuine_anchor_altered_afterwards_differs_from_its_checkpoint(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, run, _ = installation
    log_path = tmp_path / "access-log.db"
    _log(log_path, 800, 700, 1)
    monkeypatch.setenv("NERVENBAHN_ACTOR", AUDITOR)
    assert run("audit", "access-purge")[0] == 0
    with sqlite3.connect(log_path) as db:
        db.execute("DROP TRIGGER access_log_anchor_no_update")
        db.execute("UPDATE access_log_anchor SET last_at = '2020-01-01T00:00:00+00:00'")

    code, out, _ = run("audit", "verify", "--json")

    report = json.loads(out)
    assert code == 4
    assert "differs from what signed checkpoint #1 names: altered" in \
        report["access_log"]["breaks"][0]["reason"]


# --- 2. an unchained access log is refused, chained only explicitly ------------------------


def _strip_hashes(log_path: Path) -> None:
    """Remove every hash and reset the schema version, as if the log were unchained."""
    with sqlite3.connect(log_path) as db:
        db.executescript(
            "insert into access_log_purge_permit values(1000000); "
            "delete from access_log_chain; delete from access_log_purge_permit; "
            "pragma user_version = 0;"
        )


def test_opening_an_access_log_whose_hashes_were_removed_is_refused(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path,
) -> None:
    _, run, case_id = installation
    log_path = tmp_path / "access-log.db"
    _log(log_path, *([1] * ENTRIES))
    _strip_hashes(log_path)

    code, out, err = run("case", "show", str(case_id))

    assert code == 3
    assert len(err.strip().splitlines()) == 1
    assert str(log_path) in err and f"has {ENTRIES} entries without a hash-chain link" in err
    assert "access-chain-existing --confirm" in err
    assert "Nora" not in out  # nothing shown without an access-log entry
    with sqlite3.connect(log_path) as db:
        assert db.execute("SELECT count(*) FROM access_log_chain").fetchone() == (0,)
        assert db.execute("PRAGMA user_version").fetchone() == (0,)


@pytest.mark.parametrize("altered", [False, True], ids=["intact", "altered-before"])
def test_explicit_chaining_opens_the_log_and_verify_reports_it(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, altered: bool,
) -> None:
    _, run, case_id = installation
    log_path = tmp_path / "access-log.db"
    _log(log_path, *([1] * ENTRIES))
    assert run("audit", "checkpoint")[0] == 0
    auditor = _auditor_copy(run, tmp_path)
    _strip_hashes(log_path)
    if altered:
        with sqlite3.connect(log_path) as db:
            db.execute("DROP TRIGGER access_log_no_update")
            db.execute("UPDATE access_log SET consumer = 'someone-else' WHERE id = 4")
    monkeypatch.setenv("NERVENBAHN_ACTOR", AUDITOR)

    unconfirmed = run("audit", "access-chain-existing")
    chained = run("--json", "audit", "access-chain-existing", "--confirm")
    monkeypatch.setenv("NERVENBAHN_ACTOR", "cw-olten-01:caseworker:so-olten")
    shown = run("case", "show", str(case_id))
    code, out, _ = run("audit", "verify", "--json", *auditor)
    code_text, out_text, _ = run("audit", "verify", *auditor)

    assert unconfirmed[0] == 1 and "--confirm" in unconfirmed[2]
    done = json.loads(chained[1])["rechained"]
    assert (chained[0], done["entries"], done["first"], done["last"]) == (0, ENTRIES, 1, ENTRIES)
    assert shown[0] == 0
    report = json.loads(out)
    assert report["access_log"]["rechained"] == [done]
    assert "were chained anew by `audit access-chain-existing`" in _one_line(out_text)
    if altered:
        assert code == code_text == 4
        assert "differs from a signed checkpoint" in report["access_log"]["breaks"][0]["reason"]
    else:
        assert code == code_text == 0, report


def test_serve_refuses_to_start_on_an_unchained_access_log(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path,
) -> None:
    _, run, _ = installation
    log_path = tmp_path / "access-log.db"
    _log(log_path, 1, 1, 1)
    _strip_hashes(log_path)

    code, _, err = run("serve", "--port", "1")  # refused before any port or broker is used

    assert code == 3
    assert err.startswith("error: the access log") and len(err.strip().splitlines()) == 1
    assert str(log_path) in err and "3 entries without a hash-chain link" in err


@pytest.mark.parametrize("columns", [
    "1,9,hex(hash),'2026-01-01T00:00:00+00:00','2024-01-01T00:00:00+00:00',9",
    "1,9,hash,'yesterday','2024-01-01T00:00:00+00:00',9",
], ids=["hash-as-text", "unreadable-date"])
def test_a_badly_typed_forged_anchor_fails_verification_instead_of_crashing_it(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path, columns: str,
) -> None:
    _, run, _ = installation
    log_path = tmp_path / "access-log.db"
    _log(log_path, *([1] * ENTRIES))
    assert run("audit", "checkpoint")[0] == 0
    with sqlite3.connect(log_path) as db:
        db.executescript(
            "insert into access_log_purge_permit values(9); "
            "insert into access_log_anchor(seq,position,hash,purged_at,last_at,entries,reason) "
            f"select {columns},'retention' from access_log_chain where id=9; "
            "delete from access_log where id<=9; delete from access_log_chain where id<=9; "
            "delete from access_log_purge_permit;")

    code, out, _ = run("audit", "verify", "--json")

    report = json.loads(out)
    assert code == 4
    reasons = [b["reason"] for b in report["access_log"]["breaks"]]
    assert reasons[0].startswith("retention anchor 1") and "not relied on" in reasons[0]
    assert "entries 1-9 are missing (deleted)" in reasons[1]
