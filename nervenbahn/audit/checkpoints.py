"""Signed checkpoints: the head of every hash chain at one moment, signed with Ed25519.

A checkpoint's payload is canonical JSON (sorted keys, no spaces, ASCII) of its sequence, time,
key id, the head of every events chain (with the size and root of the chain's Merkle tree,
`nervenbahn.audit.trees`; absent in checkpoints signed before trees existed) and (optionally)
the access log's head with the log's identity (`log_id`, a random id kept in the log; absent
in checkpoints signed before identities existed) and its retention anchors (`anchors`: the
latest, and every one no earlier checkpoint named; absent while the log was never purged) — a
purge is vouched for only by a checkpoint naming its anchor; the signature covers exactly those
bytes. Checkpoints are kept in the store's database (`audit_checkpoints`),
exported as JSON Lines for the auditor's own copy, and published to the audit topic as Avro
(`schemas/audit/Checkpoint.avsc`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from kafka import KafkaProducer

from bus.errors import DecodeError
from bus.kafka_errors import kafka_errors_translated
from bus.kafka_settings import KafkaSettings
from bus.record_codec import RecordCodec, RecordType, current_schema
from bus.registry import SchemaRegistry
from bus.topics import TopicSpec
from nervenbahn.audit.database import AuditDatabase
from nervenbahn.audit.errors import AuditError
from nervenbahn.audit.hashing import HASH_SIZE, ChainHead, SignedAnchor, wrong_type
from nervenbahn.audit.merkle import TreeHead
from nervenbahn.audit.trees import tree_heads
from schemas import AUDIT_NAMESPACE, SCHEMA_DIR, load_schema, record_name
from schemas.sql import Component, Migration

__all__ = [
    "AUDIT_NAMESPACE",
    "CHECKPOINTS_TABLE",
    "Checkpoint",
    "CheckpointCodec",
    "CheckpointError",
    "CheckpointStore",
    "SigningKey",
    "checkpoint_schema",
    "public_key_from_text",
    "publish_checkpoints",
    "read_checkpoint_file",
    "write_checkpoint",
]

log = structlog.get_logger("nervenbahn.audit.checkpoints")

CHECKPOINTS_TABLE = "audit_checkpoints"
CHECKPOINT_RECORD = "Checkpoint"
_FORMAT = "nervenbahn checkpoint v1"


class CheckpointError(AuditError):
    """A checkpoint, a checkpoints file or a public key cannot be read."""


# --- keys ----------------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    """A key's id: the first 16 hex digits of SHA-256 of the raw public key."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """The public key as auditors keep it: base64 of the 32 raw bytes."""
    return base64.b64encode(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def public_key_from_text(text: str, where: str = "public key") -> Ed25519PublicKey:
    """Read a public key written by `public_key_text` (surrounding blank space ignored)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise CheckpointError(f"{where}: not valid base64") from None
    if len(raw) != 32:
        raise CheckpointError(f"{where}: an Ed25519 public key has 32 bytes, found {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True)
class SigningKey:
    """The installation's Ed25519 key that signs checkpoints (from `Settings.signing_key`)."""

    private: Ed25519PrivateKey

    @classmethod
    def from_seed(cls, seed_b64: str) -> SigningKey:
        """From the base64 of a 32-byte seed."""
        return cls(Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64)))

    @property
    def public(self) -> Ed25519PublicKey:
        """The public key auditors verify with."""
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        """The id checkpoints name their key by."""
        return key_id(self.public)


# --- checkpoints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """One signed checkpoint: its parsed fields, the signed payload and the signature."""

    sequence: int
    created_at: str
    key_id: str
    chains: dict[str, ChainHead]
    access_log: ChainHead | None
    payload: bytes
    signature: bytes
    published: bool = field(default=False, compare=False)
    access_log_id: str | None = None
    """The identity of the access log whose head `access_log` is (None: signed before logs had
    identities)."""
    access_log_anchors: tuple[SignedAnchor, ...] = ()
    """The access log's retention anchors this checkpoint vouches for (its purges)."""
    trees: dict[str, TreeHead] = field(default_factory=dict)
    """The Merkle tree of each events chain up to its head, by chain name (empty: signed
    before trees existed)."""

    def signature_problem(self, public_key: Ed25519PublicKey) -> str | None:
        """Why the signature does not hold under `public_key`; None if it does."""
        expected = key_id(public_key)
        if self.key_id != expected:
            return f"signed with another key (key id {self.key_id}, expected {expected})"
        try:
            public_key.verify(self.signature, self.payload)
        except InvalidSignature:
            return "the signature does not match the payload (forged or altered)"
        return None

    def to_line(self) -> str:
        """As a line of a checkpoints file (JSON: the payload and the base64 signature)."""
        return json.dumps(
            {"payload": self.payload.decode(), "signature": base64.b64encode(self.signature)
             .decode()},
            sort_keys=True,
        )

    def to_json(self) -> dict[str, object]:
        """As JSON (for `--json` output)."""
        return {
            "sequence": self.sequence,
            "created_at": self.created_at,
            "key_id": self.key_id,
            "chains": {name: head.to_json() for name, head in self.chains.items()},
            "access_log": self.access_log.to_json() if self.access_log else None,
            "access_log_id": self.access_log_id,
            "access_log_anchors": [a.to_json() for a in self.access_log_anchors],
            "trees": {name: tree.to_json() for name, tree in self.trees.items()},
            "published": self.published,
        }


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _head_json(name: str, head: ChainHead, log_id: str | None = None) -> dict[str, object]:
    document: dict[str, object] = {"chain": name, "position": head.position,
                                   "hash": head.hash.hex()}
    if log_id is not None:
        document["log_id"] = log_id
    return document


def sign_checkpoint(
    key: SigningKey,
    sequence: int,
    created_at: datetime,
    chains: dict[str, ChainHead],
    access_log: ChainHead | None = None,
    access_log_id: str | None = None,
    access_log_anchors: Sequence[SignedAnchor] = (),
    trees: dict[str, TreeHead] | None = None,
) -> Checkpoint:
    """Build and sign a checkpoint (`access_log_id`: the identity of the log `access_log` is
    the head of; `access_log_anchors`: the retention anchors of that log it vouches for;
    `trees`: the Merkle tree of each chain up to its head, signed beside the head)."""
    trees = trees or {}
    access: dict[str, object] | None = None
    if access_log is not None:
        access = _head_json("access-log", access_log, access_log_id)
        if access_log_anchors:
            access["anchors"] = [a.to_json() for a in access_log_anchors]
    payload = _canonical(
        {
            "format": _FORMAT,
            "sequence": sequence,
            "created_at": created_at.astimezone(UTC).isoformat(),
            "key_id": key.key_id,
            "chains": [_head_json(name, head) | (trees[name].to_json() if name in trees else {})
                       for name, head in sorted(chains.items())],
            "access_log": access,
        }
    )
    return parse_checkpoint(payload, key.private.sign(payload))


def parse_checkpoint(payload: bytes, signature: bytes, published: bool = False) -> Checkpoint:
    """A checkpoint from its payload and signature; CheckpointError naming the bad field."""
    try:
        document = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"payload: not JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise CheckpointError(f"payload.format: expected {_FORMAT!r}")
    sequence = document.get("sequence")
    if not isinstance(sequence, int) or sequence < 1:
        raise CheckpointError("payload.sequence: expected a whole number from 1")
    where = f"checkpoint #{sequence}"
    for name in ("created_at", "key_id"):
        if not isinstance(document.get(name), str):
            raise CheckpointError(f"{where}: payload.{name}: expected text")
    chains_json = document.get("chains")
    if not isinstance(chains_json, list):
        raise CheckpointError(f"{where}: payload.chains: expected a list of chain heads")
    chains = dict(_parse_head(item, f"{where}: payload.chains[{i}]")
                  for i, item in enumerate(chains_json))
    trees = {name: tree for i, item in enumerate(chains_json)
             for name, tree in [_parse_tree(item, f"{where}: payload.chains[{i}]")]
             if tree is not None}
    access = document.get("access_log")
    access_log = None if access is None else _parse_head(access, f"{where}: payload.access_log")[1]
    access_log_id = None if access is None else access.get("log_id")
    if access_log_id is not None and not isinstance(access_log_id, str):
        raise CheckpointError(f"{where}: payload.access_log.log_id: expected text")
    anchors = () if access is None else _parse_anchors(access.get("anchors", []),
                                                       f"{where}: payload.access_log.anchors")
    if len(signature) != 64:
        raise CheckpointError(f"{where}: signature: an Ed25519 signature has 64 bytes, "
                              f"found {len(signature)}")
    return Checkpoint(sequence, document["created_at"], document["key_id"], chains, access_log,
                      bytes(payload), bytes(signature), published, access_log_id, anchors,
                      trees)


def _parse_tree(item: dict[str, Any], where: str) -> tuple[str, TreeHead | None]:
    """The Merkle tree a chain head names (None for a head signed before trees existed);
    CheckpointError naming the bad field."""
    if "tree_size" not in item and "root" not in item:
        return item["chain"], None
    size = item.get("tree_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise CheckpointError(f"{where}.tree_size: expected a whole number from 0")
    root = _digest(item.get("root"))
    if root is None:
        raise CheckpointError(f"{where}.root: expected {HASH_SIZE * 2} hex digits")
    return item["chain"], TreeHead(size, root)


def _digest(value: Any) -> bytes | None:
    """A hash written as hex, or None if `value` is not one."""
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        return None
    return raw if len(raw) == HASH_SIZE else None


def _parse_anchors(items: Any, where: str) -> tuple[SignedAnchor, ...]:
    """The signed retention anchors; CheckpointError naming the bad field."""
    if not isinstance(items, list):
        raise CheckpointError(f"{where}: expected a list of retention anchors")
    anchors = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise CheckpointError(f"{at}: expected an object")
        for name in ("seq", "position", "entries"):
            if not isinstance(item.get(name), int) or item[name] < 0:
                raise CheckpointError(f"{at}.{name}: expected a whole number from 0")
        for name in ("purged_at", "last_at"):
            if not isinstance(item.get(name), str):
                raise CheckpointError(f"{at}.{name}: expected text (ISO 8601)")
        head = _parse_head({"chain": "access-log", "position": item["position"],
                            "hash": item.get("hash")}, at)[1]
        anchors.append(SignedAnchor(item["seq"], head.position, head.hash, item["purged_at"],
                                    item["last_at"], item["entries"]))
    return tuple(anchors)


def _parse_head(item: Any, where: str) -> tuple[str, ChainHead]:
    if not isinstance(item, dict):
        raise CheckpointError(f"{where}: expected an object with chain, position and hash")
    name, position, digest = item.get("chain"), item.get("position"), item.get("hash")
    if not isinstance(name, str):
        raise CheckpointError(f"{where}.chain: expected text")
    if not isinstance(position, int) or position < 0:
        raise CheckpointError(f"{where}.position: expected a whole number from 0")
    raw = _digest(digest)
    if raw is None:
        raise CheckpointError(f"{where}.hash: expected {HASH_SIZE * 2} hex digits")
    return name, ChainHead(position, raw)


# --- the checkpoints table -----------------------------------------------------------------


_CHECKPOINTS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {CHECKPOINTS_TABLE} ("
    "sequence BIGINT PRIMARY KEY, payload TEXT NOT NULL, signature TEXT NOT NULL, "
    "key_id TEXT NOT NULL, created_at TEXT NOT NULL, "
    "published INTEGER NOT NULL DEFAULT 0)",
)
CHECKPOINTS = Component(
    "audit_checkpoints",
    [Migration(1, "signed checkpoints", sqlite=_CHECKPOINTS_DDL, postgres=_CHECKPOINTS_DDL)],
    tables=[CHECKPOINTS_TABLE],
)
"""The checkpoints table: the same portable DDL on both backends (on PostgreSQL in the store's
schema, the audit connection's search path)."""


class CheckpointStore:
    """The checkpoints kept in the store's database."""

    def __init__(self, db: AuditDatabase) -> None:
        self.db = db
        db.migrate(CHECKPOINTS)

    def all(self) -> list[Checkpoint]:
        """Every checkpoint, oldest first; CheckpointError naming one that cannot be read."""
        rows = self.db.fetch(
            f"SELECT sequence, payload, signature, published FROM {CHECKPOINTS_TABLE} "  # noqa: S608
            "ORDER BY sequence"
        )
        return [_from_row(row) for row in rows]

    def readable(self) -> tuple[list[Checkpoint], list[tuple[int | None, str]]]:
        """Every checkpoint that can be read, oldest first, and each row that cannot: its
        sequence (None if that is not a whole number) and why (a value of the wrong type, or
        a payload or signature that does not parse)."""
        rows = self.db.fetch(
            f"SELECT sequence, payload, signature, published, key_id, created_at "  # noqa: S608
            f"FROM {CHECKPOINTS_TABLE} ORDER BY sequence"
        )
        checkpoints, unreadable = [], []
        for row in rows:
            sequence = row[0] if type(row[0]) is int else None
            try:
                checkpoint = _from_row(row[:4])
            except CheckpointError as exc:
                unreadable.append((sequence, str(exc)))
                continue
            checkpoints.append(checkpoint)
            altered = _altered_columns(checkpoint, *row[3:])
            if altered:
                unreadable.append((sequence, f"stored checkpoint #{sequence}: {altered} (its "
                                   "signed payload holds; this row was altered)"))
        return checkpoints, unreadable

    def one(self, sequence: int) -> Checkpoint:
        """One checkpoint; CheckpointError if it cannot be read."""
        rows = self.db.fetch(
            f"SELECT sequence, payload, signature, published FROM {CHECKPOINTS_TABLE} "  # noqa: S608
            f"WHERE sequence = {self.db.placeholder}", (sequence,)
        )
        if not rows:
            raise CheckpointError(f"checkpoint #{sequence}: not in the store")
        return _from_row(rows[0])

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint, if any."""
        rows = self.db.fetch(
            f"SELECT sequence, payload, signature, published FROM {CHECKPOINTS_TABLE} "  # noqa: S608
            "ORDER BY sequence DESC LIMIT 1"
        )
        return _from_row(rows[0]) if rows else None

    def add(self, checkpoint: Checkpoint) -> None:
        """Keep a new checkpoint (unpublished)."""
        self.db.execute(
            f"INSERT INTO {CHECKPOINTS_TABLE} "  # noqa: S608
            "(sequence, payload, signature, key_id, created_at, published) "
            f"VALUES ({', '.join([self.db.placeholder] * 5)}, 0)",
            (checkpoint.sequence, checkpoint.payload.decode(),
             base64.b64encode(checkpoint.signature).decode(), checkpoint.key_id,
             checkpoint.created_at),
        )

    def unpublished(self) -> list[Checkpoint]:
        """Checkpoints not yet acknowledged by the broker, oldest first."""
        return [cp for cp in self.all() if not cp.published]

    def mark_published(self, sequences: Sequence[int]) -> None:
        """Record that the broker acknowledged these checkpoints."""
        for sequence in sequences:
            self.db.execute(
                f"UPDATE {CHECKPOINTS_TABLE} SET published = 1 "  # noqa: S608
                f"WHERE sequence = {self.db.placeholder}", (sequence,)
            )


def _altered_columns(checkpoint: Checkpoint, published: Any, key_id: Any, created_at: Any
                     ) -> str | None:
    """Which of a stored checkpoint's unsigned columns do not fit its signed payload."""
    wrong = [f"{name} differs from the signed payload" for name, value, signed
             in (("key_id", key_id, checkpoint.key_id),
                 ("created_at", created_at, checkpoint.created_at)) if value != signed]
    if published not in (0, 1):
        wrong.append("published is neither 0 nor 1")
    return "; ".join(wrong) or None


def _from_row(row: tuple[Any, ...]) -> Checkpoint:
    sequence, payload, signature, published = row
    wrong = [wrong_type(name, value, expected) for name, value, kind, expected in (
        ("sequence", sequence, int, "INTEGER"), ("payload", payload, str, "TEXT"),
        ("signature", signature, str, "TEXT"), ("published", published, int, "INTEGER"),
    ) if not isinstance(value, kind) or isinstance(value, bool)]
    if wrong:
        which = f"#{sequence}" if type(sequence) is int else "(sequence unreadable)"
        raise CheckpointError(f"stored checkpoint {which}: {'; '.join(wrong)}")
    try:
        raw_signature = base64.b64decode(str(signature), validate=True)
    except binascii.Error:
        raise CheckpointError(f"checkpoint #{sequence}: signature: not valid base64") from None
    try:
        checkpoint = parse_checkpoint(str(payload).encode(), raw_signature, bool(published))
    except CheckpointError as exc:
        raise CheckpointError(f"stored checkpoint #{sequence}: {exc}") from None
    if checkpoint.sequence != int(sequence):
        raise CheckpointError(
            f"stored checkpoint #{sequence}: its payload names sequence {checkpoint.sequence}"
        )
    return checkpoint


def current_heads(db: AuditDatabase) -> dict[str, ChainHead]:
    """The head of every events chain of the store, by chain name."""
    return {table.chain: db.head(table) for table in db.chained_tables()}


def write_checkpoint(
    db: AuditDatabase,
    key: SigningKey,
    *,
    access_log: ChainHead | None = None,
    access_log_id: str | None = None,
    access_log_anchors: Sequence[SignedAnchor] = (),
    only_if_moved: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Checkpoint | None:
    """Sign the current heads (and the head of the access log `access_log_id`, with its
    retention anchors `access_log_anchors`, oldest first) as the next checkpoint and keep it.

    The checkpoint names the latest anchor and every anchor the checkpoint before it did not
    (so that each purge is vouched for once, however many there were). With `only_if_moved`,
    nothing is written (None) when no chain moved and no anchor is new since the last one.
    """
    store = CheckpointStore(db)
    heads = current_heads(db)
    latest = store.latest()
    anchors = _anchors_to_sign(latest, access_log_id, access_log_anchors)
    if only_if_moved and latest is not None and latest.chains == heads and (
        access_log is None or (latest.access_log, latest.access_log_id,
                               latest.access_log_anchors)
        == (access_log, access_log_id, anchors)
    ):
        return None
    sequence = 1 if latest is None else latest.sequence + 1
    checkpoint = sign_checkpoint(key, sequence, clock(), heads, access_log, access_log_id,
                                 anchors, tree_heads(db, heads, _signed_trees(latest, key)))
    store.add(checkpoint)
    log.info("checkpoint signed", sequence=sequence, key_id=key.key_id,
             heads={name: head.position for name, head in heads.items()})
    return checkpoint


def _signed_trees(latest: Checkpoint | None, key: SigningKey
                  ) -> dict[str, tuple[ChainHead, TreeHead]]:
    """The head and tree of each chain `latest` signs, if its signature holds under `key`
    (the next checkpoint extends those trees)."""
    if latest is None or latest.signature_problem(key.public) is not None:
        return {}
    return {name: (latest.chains[name], tree) for name, tree in latest.trees.items()
            if name in latest.chains}


def _anchors_to_sign(
    latest: Checkpoint | None, log_id: str | None, anchors: Sequence[SignedAnchor]
) -> tuple[SignedAnchor, ...]:
    """The latest anchor and those after the last one `latest` named (all, if it signed
    another log or none)."""
    if not anchors:
        return ()
    named = latest.access_log_anchors if latest and latest.access_log_id == log_id else ()
    after = max((a.seq for a in named), default=None)
    new = [a for a in anchors[:-1] if after is None or a.seq > after]
    return (*new, anchors[-1])


def export_checkpoints(db: AuditDatabase, path: Path) -> int:
    """Write every checkpoint to `path` as JSON Lines (the auditor's copy); how many."""
    checkpoints = CheckpointStore(db).all()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(cp.to_line() + "\n" for cp in checkpoints), encoding="utf-8")
    return len(checkpoints)


def read_checkpoint_file(path: Path) -> list[Checkpoint]:
    """The checkpoints of a JSON Lines file; CheckpointError naming the line and field."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc})") from None
    checkpoints = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("payload"), str):
            raise CheckpointError(f"{where}: payload: expected the signed JSON as text")
        try:
            signature = base64.b64decode(str(item.get("signature", "")), validate=True)
            checkpoints.append(parse_checkpoint(item["payload"].encode(), signature))
        except binascii.Error:
            raise CheckpointError(f"{where}: signature: not valid base64") from None
        except CheckpointError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
    return checkpoints


# --- on the bus ----------------------------------------------------------------------------


def checkpoint_schema(schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    """The current Avro schema of checkpoints (`schemas/audit/Checkpoint.avsc`)."""
    return load_schema("audit", CHECKPOINT_RECORD, schema_dir)


class CheckpointCodec:
    """Encodes checkpoints for the audit topic and decodes them (Confluent wire format): the
    bus's generic `RecordCodec` with the checkpoint's record mapping (the writer schema of a
    message is parsed once per schema id, not per message)."""

    def __init__(self, registry: SchemaRegistry, topic: str, *,
                 schema_dir: Path = SCHEMA_DIR) -> None:
        schema = current_schema("audit", CHECKPOINT_RECORD, schema_dir)
        record_type = RecordType(Checkpoint, schema, _checkpoint_record, _checkpoint_from_record,
                                 describe=lambda record: f"checkpoint #{record.get('sequence')}")
        self._codec = RecordCodec(registry, topic, [record_type],
                                  kind=record_name(CHECKPOINT_RECORD, AUDIT_NAMESPACE))

    @property
    def subject(self) -> str:
        """The registry subject of checkpoints on this codec's topic."""
        return self._codec.subject(CHECKPOINT_RECORD)

    def encode(self, checkpoint: Checkpoint) -> bytes:
        """The checkpoint as a message value; EncodeError if it does not fit the schema."""
        return self._codec.encode(checkpoint).value

    def decode(self, value: bytes) -> Checkpoint:
        """The checkpoint in a message value (rebuilt from its signed payload); DecodeError if
        it is not one."""
        checkpoint: Checkpoint = self._codec.decode(value)
        return checkpoint


def _checkpoint_record(checkpoint: Checkpoint) -> dict[str, Any]:
    return {
        "sequence": checkpoint.sequence,
        "created_at": checkpoint.created_at,
        "key_id": checkpoint.key_id,
        "chains": [_head_json(name, head) | {"log_id": None}
                   for name, head in sorted(checkpoint.chains.items())],
        "access_log": (_head_json("access-log", checkpoint.access_log,
                                  checkpoint.access_log_id) | {
                           "log_id": checkpoint.access_log_id}
                       if checkpoint.access_log else None),
        "payload": checkpoint.payload.decode(),
        "signature": checkpoint.signature,
    }


def _checkpoint_from_record(record: dict[str, Any]) -> Checkpoint:
    try:
        return parse_checkpoint(str(record["payload"]).encode(), bytes(record["signature"]))
    except CheckpointError as exc:
        raise DecodeError(str(exc)) from exc


def publish_checkpoints(
    db: AuditDatabase, kafka: KafkaSettings, codec: CheckpointCodec, topic: TopicSpec
) -> list[int]:
    """Send every unpublished checkpoint to the audit topic (key: the sequence), and mark each
    published once the broker acknowledged it; the sequences published."""
    store = CheckpointStore(db)
    pending = store.unpublished()
    if not pending:
        return []
    with kafka_errors_translated("publish checkpoints"):
        producer = KafkaProducer(**kafka.producer_kwargs(client_id="audit-checkpoints"))
        try:
            futures = [
                producer.send(topic.name, key=str(cp.sequence).encode(), value=codec.encode(cp))
                for cp in pending
            ]
            producer.flush(timeout=kafka.request_timeout_ms / 1000)
            for future in futures:
                future.get(timeout=kafka.request_timeout_ms / 1000)
        finally:
            producer.close(timeout=5)
    sequences = [cp.sequence for cp in pending]
    store.mark_published(sequences)
    log.info("checkpoints published", topic=topic.name, sequences=sequences)
    return sequences
