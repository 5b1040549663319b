"""Audit benchmark: chain verification and state-as-of, each beside a raw baseline in one run.

    .venv/bin/python benchmarks/audit.py [--events N] [--case-events N] [--calls N] [--json]

1. Chain verification (`nervenbahn.audit.verify.verify_chain`) as `audit verify` does it of a
   SQLite store with N events (a legacy import of 10-event cases, personal data sealed; one
   checkpoint signs the head and the Merkle tree over all of them): every link, the signed
   head and the signed root, on every core; in events/s and MB/s of stored state, beside (a)
   plain SHA-256 of the same record bytes already in memory and (b) reading the same rows
   from the database and hashing each, in one process. Targets: at least 0.5x the in-memory
   rate, 0.9x the read+hash rate (issue 17).
2. Merkle trees (`nervenbahn.audit.trees`) over the same store: signing a checkpoint after
   `--new-events` more events, extending the frontier kept with the last checkpoint, beside
   signing it with the tree computed afresh; one proof (`audit prove`) of the middle event; and
   chain verification comparing every signed root too (as `audit verify` does once
   checkpoints sign trees) beside the chain verification alone.
3. `CaseService.case_as_of` of one case with 10,000 events (imported), at several recorded
   times T, beside a full replay of the same case (every event folded) in the same run,
   p50/p99 ms. Target: p50 of 10 ms or less. The cold row is broken down into its stages
   (read the snapshot row, check its MAC, decode it, build the case, replay the tail) and set
   beside the physical floor of decoding that snapshot here: `json.loads` of its state without
   any hook, `orjson.loads` if orjson is installed (not a dependency), and `pickle.loads` of
   the decoded state (the objects built by C code alone). Measured 2026-12-07 (2 cores, loaded;
   as shares of today's decode, interleaved in one run): `json.loads` without a hook 0.48,
   `orjson.loads` 0.32, `msgspec` 0.30, `pickle.loads` of the state 0.49; reading the 2.7 MB
   row and its MAC add about 0.1 and 0.04. So no encoding of the whole state decodes in 10 ms
   here; only a layout that does not decode the whole history can (of the decode, the budget
   versions are about half, goals and measures about a third, the rest 0.1 %). The as-of
   points fall on snapshot versions (no events after the snapshot): this row is the decode.

Ratios are nervenbahn speed / raw speed (for latencies: raw p50 / nervenbahn p50).
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import io
import json
import os
import pickle
import random
import secrets
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from case_scripts import import_lines
from report import Row, add_output_arguments, emit_json, percentile, print_table

from bus.envelope import event_id
from domain.application.cases import CaseService
from domain.application.queries import fold
from domain.application.snapshots import MacSnapshotStore
from domain.personal_data import PersonalDataVault
from domain.reference import load_reference_data
from nervenbahn.audit.chain import event_record
from nervenbahn.audit.checkpoints import CheckpointStore, SigningKey, write_checkpoint
from nervenbahn.audit.database import open_audit_database
from nervenbahn.audit.snapshots import verify_snapshots
from nervenbahn.audit.trees import FRONTIERS_TABLE, prove_event
from nervenbahn.audit.verify import verify_chain
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import Container
from nervenbahn.logging import configure_logging

EVENTS = 30_000
NEW_EVENTS = 1_000
CASE_EVENTS = 10_000
CALLS = 30


def settings_for(path: str) -> Settings:
    """A SQLite store with keys of its own."""
    return load_settings({
        "NERVENBAHN_STORE": f"sqlite:///{path}",
        "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NERVENBAHN_AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NERVENBAHN_LOG_LEVEL": "warning",
    })


def best_of(runs: int, action: Callable[[], object]) -> float:
    """The fastest of `runs` timings of `action`, in seconds."""
    timings = []
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def best_interleaved(rounds: int, actions: list[Callable[[], object]]) -> list[float]:
    """The fastest of `rounds` timings of each action, in seconds; each round runs every
    action once, in a rotating order, so that load from other processes hits all alike."""
    timings: list[list[float]] = [[] for _ in actions]
    for round_ in range(rounds):
        for k in range(len(actions)):
            which = (k + round_) % len(actions)
            gc.collect()
            started = time.perf_counter()
            actions[which]()
            timings[which].append(time.perf_counter() - started)
    return [min(times) for times in timings]


def bench_verification(service: CaseService, settings: Settings) -> list[Row]:
    """Chain verification as `audit verify` does it (every link, the signed head and the
    signed Merkle root of a checkpoint over all events; both cores) beside SHA-256 in memory
    and beside reading the rows and hashing each, in one process."""
    key = SigningKey.from_seed(settings.signing_key.get_secret_value())
    db = open_audit_database(settings.store)
    try:
        (table,) = [t for t in db.chained_tables() if t.events_table == "stored_events"]
        write_checkpoint(db, key)  # signs the chain's head and its tree over every event
        signed = [(cp.sequence, cp.chains[table.chain], cp.created_at, cp.trees[table.chain])
                  for cp in CheckpointStore(db).all()]
        heads = [(sequence, head, at) for sequence, head, at, _ in signed]
        trees = [(sequence, head, tree) for sequence, head, _, tree in signed]
        rows = list(db.events(table))
        records = [event_record(*row) for row in rows]
        state_mb = sum(len(row[4]) for row in rows) / 1e6
        events = len(rows)

        def raw_memory() -> None:
            for record in records:
                hashlib.sha256(record).digest()

        def raw_read_and_hash() -> None:
            for row in db.events(table):
                hashlib.sha256(row[4]).digest()

        def chain() -> None:
            verified = verify_chain(db, table, heads, trees)
            assert verified.ok, verified
            assert verified.checkpoints_checked == len(signed)

        t_chain, t_memory, t_read = best_interleaved(5, [chain, raw_memory, raw_read_and_hash])
    finally:
        db.close()
    rate = events / t_chain
    detail = {"events": events, "state_mb": round(state_mb, 2),
              "chain_mb_s": state_mb / t_chain, "cores": _cores()}
    return [
        Row("verify_vs_sha256_memory", "chain verification vs SHA-256 in memory", "sqlite",
            "events/s", rate, events / t_memory, t_memory / t_chain, ">= 0.5x",
            t_memory / t_chain >= 0.5, {**detail, "raw_mb_s": state_mb / t_memory}),
        Row("verify_vs_read_and_hash", "chain verification (signed heads and Merkle roots, "
            "every core) vs read rows + SHA-256 (one process)", "sqlite", "events/s", rate,
            events / t_read, t_read / t_chain, ">= 0.9x read+hash", t_read / t_chain >= 0.9,
            {**detail, "raw_mb_s": state_mb / t_read}),
    ]


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


def bench_trees(service: CaseService, settings: Settings, args: argparse.Namespace
                ) -> list[Row]:
    """Signing with the kept frontier vs afresh, one proof, and verifying the signed roots."""
    key = SigningKey.from_seed(settings.signing_key.get_secret_value())
    db = open_audit_database(settings.store)
    try:
        (table,) = [t for t in db.chained_tables() if t.events_table == "stored_events"]
        write_checkpoint(db, key)  # after bench_verification's: its frontier extended
        lines, _ = import_lines(random.Random(f"{args.seed}-new"), load_reference_data(),
                                max(1, args.new_events // 10), datetime.now(UTC))
        service.import_records(lines)
        t_kept = best_of(1, lambda: write_checkpoint(db, key))
        db.execute(f"DELETE FROM {FRONTIERS_TABLE}")
        t_afresh = best_of(1, lambda: write_checkpoint(db, key))
        signed = CheckpointStore(db).latest()
        assert signed is not None
        head, tree = signed.chains[table.chain], signed.trees[table.chain]
        middle = next(row for n, row in enumerate(db.events(table)) if n == tree.size // 2)
        assert isinstance(middle, tuple)
        wanted = event_id(uuid.UUID(middle[1]), middle[2])
        t_prove = best_of(3, lambda: prove_event(db, table, head, tree, wanted))
        trusted = [(cp.sequence, cp.chains[table.chain], cp.trees[table.chain])
                   for cp in CheckpointStore(db).all()]
        t_roots = best_of(3, lambda: verify_chain(db, table, trees=trusted))
        t_chain = best_of(3, lambda: verify_chain(db, table))
    finally:
        db.close()
    detail = {"events": tree.size, "new_events": args.new_events}
    return [
        Row("checkpoint_frontier", f"sign a checkpoint after {args.new_events} events: kept "
            "frontier vs tree afresh", "sqlite", "ms", t_kept * 1000, t_afresh * 1000,
            t_afresh / t_kept, "(context)", True, detail),
        Row("prove_event", "audit prove (middle event) vs chain verification", "sqlite", "ms",
            t_prove * 1000, t_chain * 1000, t_chain / t_prove, "(context)", True, detail),
        Row("verify_roots", "chain verification with the signed roots vs without", "sqlite",
            "ms", t_roots * 1000, t_chain * 1000, t_chain / t_roots, "(context)", True,
            {**detail, "checkpoints": len(trusted)}),
    ]


def bench_as_of(
    service: CaseService, settings: Settings, args: argparse.Namespace
) -> list[Row]:
    rng = random.Random(f"{args.seed}-as-of")
    lines, times = import_lines(rng, load_reference_data(), 1, datetime.now(UTC),
                                length=args.case_events)
    service.import_records(lines)
    case_id = uuid.UUID(json.loads(lines[0])["data"]["case_id"])
    points = [times[int(len(times) * f) - 1] for f in (0.1, 0.5, 0.9, 1.0)]

    def full_replay() -> Any:
        case = None
        for event in service.events.get(case_id):
            case = event.mutate(case)
        return case

    service.case_as_of(case_id, points[0])  # warm-up
    full_replay()
    gc.collect()
    as_of_ms, replay_ms = [], []
    for call in range(args.calls):  # alternate, so both see the same conditions
        started = time.perf_counter()
        service.case_as_of(case_id, points[call % len(points)])
        as_of_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        full_replay()
        replay_ms.append((time.perf_counter() - started) * 1000)
    cold_ms = []
    for call in range(args.calls):  # no decoded snapshot kept: the first query of a case
        service.forget_decoded_snapshots()
        started = time.perf_counter()
        service.case_as_of(case_id, points[call % len(points)])
        cold_ms.append((time.perf_counter() - started) * 1000)
    p50, raw_p50 = percentile(as_of_ms, 50), percentile(replay_ms, 50)
    cold = percentile(cold_ms, 50)
    stages = cold_stages(service, case_id, service.version_as_of(case_id, points[-1]), args.calls)
    db = open_audit_database(settings.store)
    try:
        started = time.perf_counter()
        checked, problems = verify_snapshots(db, [service])
        verify_ms = (time.perf_counter() - started) * 1000
    finally:
        db.close()
    assert not problems, problems
    return [Row(
        "case_as_of", f"case_as_of ({args.case_events} events) vs full replay", "sqlite", "ms",
        p50, raw_p50, raw_p50 / p50, "p50 <= 10 ms", p50 <= 10.0,
        {"calls": args.calls, "p99_ms": percentile(as_of_ms, 99),
         "replay_p99_ms": percentile(replay_ms, 99), "as_of_points": len(points)},
    ), Row(
        "case_as_of_cold", f"case_as_of ({args.case_events} events), cold, vs full replay",
        "sqlite", "ms", cold, raw_p50, raw_p50 / cold, "p50 <= 10 ms", cold <= 10.0,
        {"calls": args.calls, "p99_ms": percentile(cold_ms, 99), "stages_ms": stages},
    ), Row(
        "verify_snapshots", "audit verify: every snapshot recomputed vs one full replay",
        "sqlite", "ms", verify_ms, raw_p50, raw_p50 / verify_ms, "(context)", True,
        {"snapshots": checked},
    )]


def cold_stages(service: CaseService, case_id: uuid.UUID, version: int, calls: int
                ) -> dict[str, float]:
    """p50 ms of each stage of a cold `case_as_of` at `version`, then the floor of decoding
    the same snapshot on this machine (calls interleaved, so all see the same load). Empty
    if the case has no snapshot at `version` (fewer events than the snapshot interval)."""
    store = service.snapshots
    assert isinstance(store, MacSnapshotStore)
    found = store.recorder.select_events(case_id, desc=True, limit=1, lte=version)
    if not found:
        return {}
    stored = found[0]
    inner, problem = store.opened(stored)
    assert inner is not None, problem
    snapshot: Any = store.mapper.to_domain_event(inner)
    state = inner.state  # the JSON the decoder reads (before any cipher and compressor)
    if store.mapper.cipher:
        state = store.mapper.cipher.decrypt(state)
    if store.mapper.compressor:
        state = store.mapper.compressor.decompress(state)
    pickled = _VaultPickler.dumps(snapshot.state)
    stages: dict[str, Callable[[], object]] = {
        "read row": lambda: store.recorder.select_events(case_id, desc=True, limit=1,
                                                         lte=version),
        "MAC check": lambda: store.opened(stored),
        "decode (JSON parse + transcoding)": lambda: store.mapper.to_domain_event(inner),
        "build the case": lambda: snapshot.mutate(None),
        "replay the tail": lambda: fold(snapshot.mutate(None), service.events.get(
            case_id, gt=stored.originator_version, lte=version)),
        "floor: json.loads, no hook": lambda: json.loads(state),
        "floor: pickle.loads of the state": lambda: _VaultUnpickler(
            io.BytesIO(pickled), service.vault).load(),
    }
    try:
        import orjson  # type: ignore[import-not-found,unused-ignore]
        stages["floor: orjson.loads, no hook"] = lambda: orjson.loads(state)
    except ImportError:
        pass
    timings: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(calls):
        for name, action in stages.items():
            gc.collect()
            started = time.perf_counter()
            action()
            timings[name].append((time.perf_counter() - started) * 1000)
    return {name: percentile(values, 50) for name, values in timings.items()} | {
        "snapshot_mb": len(state) / 1e6, "tail_events": version - stored.originator_version}


class _VaultPickler(pickle.Pickler):
    """Pickles a decoded state, the vault its sealed personal data refer to left out."""

    def persistent_id(self, obj: Any) -> str | None:
        return "vault" if isinstance(obj, PersonalDataVault) else None

    @classmethod
    def dumps(cls, obj: Any) -> bytes:
        buffer = io.BytesIO()
        cls(buffer, protocol=5).dump(obj)
        return buffer.getvalue()


class _VaultUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, vault: PersonalDataVault) -> None:
        super().__init__(file)
        self._vault = vault

    def persistent_load(self, pid: Any) -> PersonalDataVault:
        return self._vault


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=EVENTS,
                        help=f"events in the store to verify (default {EVENTS})")
    parser.add_argument("--new-events", type=int, default=NEW_EVENTS,
                        help=f"events recorded before the timed checkpoint (default "
                             f"{NEW_EVENTS})")
    parser.add_argument("--case-events", type=int, default=CASE_EVENTS,
                        help=f"events of the as-of case (default {CASE_EVENTS})")
    parser.add_argument("--calls", type=int, default=CALLS, help=f"timed calls ({CALLS})")
    add_output_arguments(parser)
    args = parser.parse_args()
    started = time.perf_counter()
    # As the CLI: structured logs at info level, rendered as JSON (here thrown away).
    devnull = open(os.devnull, "w")  # noqa: SIM115
    configure_logging("json", "info", stream=devnull)
    with tempfile.TemporaryDirectory() as directory:
        settings = settings_for(os.path.join(directory, "store.db"))
        container = Container(settings)
        service = container.service
        try:
            rng = random.Random(args.seed)
            lines, _ = import_lines(rng, load_reference_data(), max(1, args.events // 10),
                                    datetime.now(UTC))
            service.import_records(lines)
            rows = bench_verification(service, settings)
            rows += bench_trees(service, settings, args)
            rows += bench_as_of(service, settings, args)
        finally:
            container.close()
    runtime = time.perf_counter() - started
    notes: list[str] = []
    if args.json:
        emit_json(runtime, args.seed, {"events": args.events, "case_events": args.case_events,
                                       "new_events": args.new_events},
                  rows, notes)
        return
    print_table("Audit: tamper evidence and state-as-of", rows, notes, fmt=_fmt,
                describe=_describe, seed=args.seed, runtime=runtime)


def _fmt(row: Row, side: str) -> str:
    value = row.nervenbahn if side == "nervenbahn" else row.raw
    return f"{value:.2f} ms" if row.unit == "ms" else f"{value:,.0f} ev/s"


def _describe(row: Row) -> list[str]:
    d = row.detail
    if row.key in ("checkpoint_frontier", "prove_event", "verify_roots"):
        return [f"  {row.key}: a tree of {d['events']} events (SQLite)"]
    if row.key == "verify_snapshots":
        return [f"  {row.key}: {d['snapshots']} snapshots of all cases (the as-of case's and "
                "the store's), each compared with its events replayed once per case"]
    if row.key == "case_as_of_cold":
        stages = dict(d["stages_ms"])
        cold = (f"  {row.key}: p99 {d['p99_ms']:.2f} ms ({d['calls']} calls, decoded snapshots "
                "dropped before each: the snapshot's JSON is decoded every time)")
        if not stages:
            return [cold, f"  {row.key}: no snapshot at the latest point (too few events)"]
        size, tail = stages.pop("snapshot_mb"), stages.pop("tail_events")
        return [f"  {row.key}: p99 {d['p99_ms']:.2f} ms ({d['calls']} calls, decoded snapshots "
                "dropped before each: the snapshot's JSON is decoded every time)",
                f"  {row.key} stages (p50, the latest point: {size:.1f} MB snapshot, {tail} "
                "events after it):",
                *(f"    {name}: {ms:.2f} ms" for name, ms in stages.items())]
    if row.unit == "ms":
        return [f"  {row.key}: p99 {d['p99_ms']:.2f} ms; full replay p99 "
                f"{d['replay_p99_ms']:.2f} ms ({d['calls']} calls, decoded snapshots kept)"]
    return [f"  {row.key}: {d['events']} events, {d['state_mb']} MB state; chain "
            f"{d['chain_mb_s']:.0f} MB/s on {d['cores']} cores, baseline {d['raw_mb_s']:.0f} "
            "MB/s in one process"]


if __name__ == "__main__":
    main()
