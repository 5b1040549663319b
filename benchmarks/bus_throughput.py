"""Bus benchmark: relay throughput and command → consumer-effect latency, beside raw Kafka.

    .venv/bin/python benchmarks/bus_throughput.py [--events N] [--commands M] [--batch-size B]
                                       [--seed S] [--json] [--profile]

Runs on an embedded Tansu broker it starts itself (or the Kafka of NERVENBAHN_KAFKA); each
part gets a topic prefix of its own.

1. Relay throughput: a SQLite store seeded with N events (import of a synthetic history), then
   `Relay.run(stop, until_caught_up=True)` from position 0, beside a plain kafka-python
   `KafkaProducer` (the same producer kwargs: idempotent, acks=all) sending the very messages
   the relay put on its topic, read back (the same keys, value bytes and headers, in the
   relay's order), flushed every batch, to a fresh topic with as many partitions. The same
   raw producer without the headers is printed for context.
2. End-to-end latency, command accepted (`CaseService.execute` returned) → the consumer's
   effect committed: the relay runs continuously in a thread, a consumer group of one in
   another; M commands are issued one at a time with small random gaps. Beside it, raw Kafka:
   `send()` → received by a plain group consumer, interleaved with the commands.

Ratios are nervenbahn speed / raw speed (for latency: raw p50 / nervenbahn p50).
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import random
import secrets
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from case_scripts import SWISS, case_script, interleaved
from raw_kafka import CONSUMER_POLL_MS, Loop, RawPings, Sent, raw_produce, read_back
from report import Row, add_output_arguments, emit_json, percentile, print_table

from bus.broker import EmbeddedBroker
from bus.checksums import checksums_in_c
from bus.consumer import Received
from bus.effects_sqlite import SQLiteEffectStore
from bus.envelope import event_id
from bus.kafka_settings import KafkaSettings
from bus.relay import _headers  # the relay's own header builder, for the stage breakdown
from bus.topics import TopicSpec, catalogue, ensure_topics, topic_name
from domain import commands
from domain.application.cases import CaseService
from domain.reference import load_reference_data
from nervenbahn.config import Settings, load_kafka_settings, load_settings
from nervenbahn.container import Container
from nervenbahn.keyfiles import create_keys
from nervenbahn.logging import configure_logging
from nervenbahn.synthetic import synthetic_history

DEFAULT_EVENTS = 20_000
DEFAULT_COMMANDS = 300
DEFAULT_BATCH = 500
RELAY_RATIO_TARGET = 0.9
LATENCY_P99_TARGET_MS = 50.0
WARMUP_COMMANDS = 20
"""Commands (and raw pings) before the measured ones; discarded."""
GAP_S = (0.005, 0.035)
"""Pause before each command and before each raw ping, uniform in this range (seeded)."""
RELAY_IDLE_S = 0.005
"""`Relay.run(idle_seconds=…)`: how long the relay sleeps when it found nothing to publish."""
STAGE_SAMPLE = 5000
"""Events on which the relay's own work (without Kafka) is timed, for the breakdown."""
JOIN_DEADLINE_S = 30.0
DRAIN_DEADLINE_S = 30.0


def _wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {within:g} s")
        time.sleep(0.002)


def _kafka_for(base: KafkaSettings, part: str) -> KafkaSettings:
    """The run's Kafka settings with a topic prefix of this part's own."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}-{part}"
    return KafkaSettings.model_validate(
        {**base.model_dump(), "topic_prefix": prefix, "client_id_prefix": "nervenbahn-bench"}
    )


@contextmanager
def _service(path: Path, master_key: str) -> Iterator[tuple[Settings, CaseService]]:
    settings = load_settings({"NERVENBAHN_STORE": f"sqlite:///{path}",
                              "NERVENBAHN_MASTER_KEY": master_key,
                              "NERVENBAHN_KEY_DIR": str(path.parent / "keys")})
    create_keys(settings)  # the store's other keys (reporting, signing), as `nervenbahn init`
    container = Container(settings)
    try:
        yield settings, container.service
    finally:
        container.close()


@contextmanager
def _bus(
    service: CaseService, settings: Settings, kafka: KafkaSettings
) -> Iterator[Container]:
    bus = Container(settings, kafka=kafka, service=service)
    ensure_topics(kafka, catalogue(kafka))
    try:
        yield bus
    finally:
        bus.close()


# ============================================================================================
# 1. Relay throughput
# ============================================================================================


def seed_store(service: CaseService, events: int, seed: int) -> tuple[int, float]:
    """Import a synthetic history of exactly `events` records (one event each). Cases, s."""
    households = events // 6 + 10
    now = datetime.now(UTC).isoformat()
    while True:
        records = [r for r in synthetic_history(service.reference, households, seed)
                   if r["recorded_at"] <= now]
        if len(records) >= events:
            break
        households = int(households * 1.3) + 10
    # Records are in recorded-time order, so a prefix is a valid (shorter) history per case.
    lines = [json.dumps(record) for record in records[:events]]
    started = time.perf_counter()
    report = service.import_records(lines)
    seconds = time.perf_counter() - started
    assert report.events == events, (report.events, events)
    return report.cases, seconds


def relay_order(service: CaseService, sent: list[Sent]) -> list[Sent]:
    """The messages read back in the order the relay sent them: the store's (by event id)."""
    position = {
        str(event_id(n.originator_id, n.originator_version)).encode(): n.id
        for n in service.notifications(gt=0, limit=len(sent))
    }
    return sorted(sent, key=lambda s: position[dict(s.headers)["event_id"]])


def relay_stages(service: CaseService, bus: Container, sample: int) -> dict[str, float]:
    """µs per event of the relay's own work, without Kafka, on the first `sample` events."""
    codec = bus.codec("case-events")
    codec.register_schemas()
    times = dict.fromkeys(("read_store", "decode_event", "encode_avro", "headers"), 0.0)
    started = time.perf_counter()
    notifications = service.recorder.select_notifications(start=1, limit=sample)
    times["read_store"] = time.perf_counter() - started
    for notification in notifications:
        t0 = time.perf_counter()
        event = service.mapper.to_domain_event(notification)
        t1 = time.perf_counter()
        encoded = codec.encode(event)
        t2 = time.perf_counter()
        _headers(event, encoded)
        t3 = time.perf_counter()
        times["decode_event"] += t1 - t0
        times["encode_avro"] += t2 - t1
        times["headers"] += t3 - t2
    count = max(len(notifications), 1)
    return {f"{name}_us": 1e6 * seconds / count for name, seconds in times.items()}


def bench_relay(
    directory: Path, base: KafkaSettings, args: argparse.Namespace, master_key: str,
    notes: list[str],
) -> Row:
    kafka = _kafka_for(base, "relay")
    with _service(directory / "relay.db", master_key) as (settings, service), \
            _bus(service, settings, kafka) as bus:
        cases, seed_seconds = seed_store(service, args.events, args.seed)
        topic = bus.topic("case-events")
        profile = cProfile.Profile() if args.profile else None
        with bus.relay("case-events", batch_size=args.batch_size) as relay:
            if profile:
                profile.enable()
            started, cpu_started = time.perf_counter(), time.process_time()
            status = relay.run(threading.Event(), until_caught_up=True)
            relay_seconds = time.perf_counter() - started
            relay_cpu = time.process_time() - cpu_started
            if profile:
                profile.disable()
            preparing = relay.preparing
            prepared = (preparing.batches, preparing.from_lag) if preparing else (0, 0)
        if status.published != args.events or status.lag:
            raise RuntimeError(f"the relay published {status.published} of {args.events}")
        read_started, read_cpu_started = time.perf_counter(), time.process_time()
        sent = read_back(kafka, topic.name, args.events)
        read_seconds = time.perf_counter() - read_started
        read_cpu = time.process_time() - read_cpu_started
        sent = relay_order(service, sent)
        raw_topics = {
            flag: TopicSpec(topic_name(kafka, "bench", name), partitions=topic.partitions)
            for flag, name in ((False, "raw-produce"), (True, "raw-produce-same"))
        }
        ensure_topics(kafka, list(raw_topics.values()))
        cpu_started = time.process_time()
        raw_seconds = raw_produce(kafka, raw_topics[True].name, sent, args.batch_size,
                                  headers=True)
        raw_cpu = time.process_time() - cpu_started
        raw_plain_seconds = raw_produce(kafka, raw_topics[False].name, sent, args.batch_size,
                                        headers=False)
        stages = relay_stages(service, bus, min(args.events, STAGE_SAMPLE))
    if profile:
        notes.append("relay profile (cProfile, top 25 by internal time) printed to stderr")
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue(), file=sys.stderr)
    n = args.events
    relay_rate, raw_rate, raw_plain_rate = (n / relay_seconds, n / raw_seconds,
                                            n / raw_plain_seconds)
    ratio = relay_rate / raw_rate
    return Row(
        key="relay_throughput", what="relay catch-up (Relay.run)",
        backend=f"sqlite → {_broker_name(base)}", unit="events/s",
        nervenbahn=relay_rate, raw=raw_rate, ratio=ratio,
        target=f"≥ {RELAY_RATIO_TARGET}× raw (same messages)",
        met=ratio >= RELAY_RATIO_TARGET,
        detail={
            "events": n, "cases": cases, "batch_size": args.batch_size,
            "partitions": topic.partitions, "seed_import_seconds": seed_seconds,
            "relay_seconds": relay_seconds, "raw_seconds": raw_seconds,
            "relay_us_per_event": 1e6 * relay_seconds / n,
            "raw_us_per_event": 1e6 * raw_seconds / n,
            "relay_cpu_us_per_event": 1e6 * relay_cpu / n,
            "raw_cpu_us_per_event": 1e6 * raw_cpu / n,
            "raw_plain_events_per_s": raw_plain_rate,
            "raw_plain_us_per_event": 1e6 * raw_plain_seconds / n,
            "ratio_vs_raw_plain": relay_rate / raw_plain_rate,
            "value_bytes_mean": sum(s.value_size for s in sent) / n,
            "header_bytes_mean": sum(len(k) + len(v) for s in sent for k, v in s.headers) / n,
            "headers_per_message": len(sent[0].headers),
            "stage_sample_events": min(n, STAGE_SAMPLE),
            **stages,
            "read_back_us_per_event": 1e6 * read_seconds / n,
            "read_back_cpu_us_per_event": 1e6 * read_cpu / n,
            "checksums_in_c": checksums_in_c(),
            "batches": math.ceil(n / args.batch_size),
            "batches_prepared_by_its_process": prepared[0],
            "prepare_from_lag": prepared[1],
        },
    )


# ============================================================================================
# 2. Latency: command accepted → consumer effect committed
# ============================================================================================


class TimedEffects(SQLiteEffectStore):
    """A consumer database that notes when each handled event's transaction committed.

    The consumer commits once per polled partition batch (a savepoint per message): an event's
    time is that commit's, taken right after COMMIT returns.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS effects (case_id TEXT, version INTEGER, event_type TEXT)"
        )
        self._pending: list[tuple[str, int]] = []
        self.committed: dict[tuple[str, int], float] = {}

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._pending.clear()
        with super().transaction() as tx:
            yield tx
        done = time.perf_counter()  # right after COMMIT
        for key in self._pending:
            self.committed[key] = done
        self._pending.clear()

    @contextmanager
    def savepoint(self, tx: sqlite3.Connection) -> Iterator[None]:
        before = len(self._pending)
        try:
            with super().savepoint(tx):
                yield
        except BaseException:
            del self._pending[before:]  # undone with the savepoint: never committed
            raise

    def handle(self, received: Received, tx: sqlite3.Connection) -> None:
        """The effect: one row per event (in the consumer's transaction)."""
        event = received.event
        key = (str(event.originator_id), int(event.originator_version))
        tx.execute("INSERT INTO effects VALUES (?, ?, ?)", (*key, received.event_type))
        self._pending.append(key)


def latency_commands(total: int, seed: int) -> list[commands.Command]:
    """`total` valid commands (10 per case, cases worked on at once), as the CLI parses them."""
    rng = random.Random(f"{seed}-latency")
    reference = load_reference_data()
    today = datetime.now(SWISS).date()
    scripts = [case_script(rng, reference, [today] * 10)
               for _ in range(math.ceil(total / 10))]
    cases = [[commands.parse_command(n, d) for n, d in s] for s in scripts]
    issued = [command for _, _, command in interleaved(cases)]
    return issued[:total]


def bench_latency(
    directory: Path, base: KafkaSettings, args: argparse.Namespace, master_key: str,
) -> Row:
    kafka = _kafka_for(base, "latency")
    rng = random.Random(f"{args.seed}-gaps")
    issued = latency_commands(WARMUP_COMMANDS + args.commands, args.seed)  # validated here
    effects = TimedEffects(directory / "consumer.db")
    with _service(directory / "latency.db", master_key) as (settings, service), \
            _bus(service, settings, kafka) as bus:
        raw_spec = TopicSpec(topic_name(kafka, "bench", "raw-latency"),
                             partitions=bus.topic("case-events").partitions)
        ensure_topics(kafka, [raw_spec])
        relay = bus.relay("case-events", batch_size=args.batch_size)
        relay_stop = threading.Event()
        relay_thread = threading.Thread(
            target=relay.run, args=(relay_stop,), kwargs={"idle_seconds": RELAY_IDLE_S},
            name="relay", daemon=True,
        )
        consumer = bus.consumer("case-events", "bench-latency", effects.handle, effects)
        consumer_thread = Loop("consumer", lambda: consumer.poll_once(CONSUMER_POLL_MS),
                               consumer.close)
        raw = RawPings(kafka, raw_spec.name, value_size=256)
        accepted: dict[tuple[str, int], float] = {}
        events_per_command: list[int] = []
        relay_thread.start()
        consumer_thread.start()
        raw.thread.start()
        join_seconds = 0.0
        try:
            join_started = time.perf_counter()
            # Warm-up: the first command and ping wait until the groups have joined.
            for number, command in enumerate(issued):
                if number == 1:
                    _wait_for(lambda: len(effects.committed) >= 1 and 0 in raw.received,
                              JOIN_DEADLINE_S, "consumer groups joined")
                    join_seconds = time.perf_counter() - join_started
                if number == WARMUP_COMMANDS:
                    _wait_for(lambda: all(k in effects.committed for k in accepted)
                              and len(raw.received) >= WARMUP_COMMANDS,
                              DRAIN_DEADLINE_S, "warm-up drained")
                    accepted.clear()
                    raw.sent.clear()
                    raw.received.clear()
                time.sleep(rng.uniform(*GAP_S))
                result = service.execute(command)
                accepted[(str(result.case_id), result.version)] = time.perf_counter()
                events_per_command.append(len(result.events))
                time.sleep(rng.uniform(*GAP_S))
                raw.ping(number, str(result.case_id).encode())
                for thread in (consumer_thread, raw.thread):
                    if thread.error:
                        raise thread.error
            _wait_for(lambda: all(k in effects.committed for k in accepted)
                      and all(n in raw.received for n in raw.sent),
                      DRAIN_DEADLINE_S, "every effect committed")
        finally:
            relay_stop.set()
            relay_thread.join(timeout=30)
            relay.close()
            consumer_thread.halt()
            raw.close()
    effects.close()
    nb = [1000 * (effects.committed[k] - t) for k, t in accepted.items()]
    rw = [1000 * (raw.received[n] - t) for n, t in raw.sent.items()]
    nb_p = {p: percentile(nb, p) for p in (50, 95, 99)}
    rw_p = {p: percentile(rw, p) for p in (50, 95, 99)}
    return Row(
        key="latency", what="command → effect committed",
        backend=f"sqlite → {_broker_name(base)} → sqlite", unit="ms (p99)",
        nervenbahn=nb_p[99], raw=rw_p[99], ratio=rw_p[50] / nb_p[50],
        target=f"p99 < {LATENCY_P99_TARGET_MS:.0f} ms", met=nb_p[99] < LATENCY_P99_TARGET_MS,
        detail={
            "commands": len(nb), "warmup_commands": WARMUP_COMMANDS,
            "events_per_command_max": max(events_per_command),
            "gap_ms": [1000 * GAP_S[0], 1000 * GAP_S[1]], "relay_idle_ms": 1000 * RELAY_IDLE_S,
            "fetch_max_wait_ms": kafka.fetch_max_wait_ms, "linger_ms": kafka.linger_ms,
            "join_seconds": join_seconds,
            "nervenbahn_p50_ms": nb_p[50], "nervenbahn_p95_ms": nb_p[95],
            "nervenbahn_p99_ms": nb_p[99], "nervenbahn_max_ms": max(nb),
            "nervenbahn_over_100_ms": sum(v > 100 for v in nb),
            "raw_p50_ms": rw_p[50], "raw_p95_ms": rw_p[95], "raw_p99_ms": rw_p[99],
            "raw_max_ms": max(rw),
        },
    )


# ============================================================================================
# Output
# ============================================================================================


def _broker_name(kafka: KafkaSettings) -> str:
    return "tansu" if kafka.profile == "embedded" else "kafka"


def _fmt(row: Row, side: str) -> str:
    if row.key == "latency":
        d = row.detail
        return "\n".join(f"p{p} {d[f'{side}_p{p}_ms']:,.1f} ms" for p in (50, 95, 99)) + \
            f"\nmax {d[f'{side}_max_ms']:,.1f} ms"
    value = row.nervenbahn if side == "nervenbahn" else row.raw
    return f"{value:,.0f} ev/s"


def _describe(row: Row) -> list[str]:
    d = row.detail
    if row.key == "relay_throughput":
        return [
            f"relay: {d['events']} events of {d['cases']} cases in {d['relay_seconds']:.2f} s"
            f" ({d['relay_us_per_event']:.0f} µs/event), batch {d['batch_size']}, "
            f"{d['partitions']} partitions; raw, the same messages {d['raw_seconds']:.2f} s "
            f"({d['raw_us_per_event']:.0f} µs/event). Messages: "
            f"{d['value_bytes_mean']:.0f} B value + {d['headers_per_message']} headers of "
            f"{d['header_bytes_mean']:.0f} B; raw without the headers (context): "
            f"{d['raw_plain_events_per_s']:,.0f} ev/s "
            f"({d['raw_plain_us_per_event']:.0f} µs/event), ratio "
            f"{d['ratio_vs_raw_plain']:.2f}×.",
            f"batches prepared by the relay's process of its own (from "
            f"{d['prepare_from_lag']} events behind; the rest by the relay while it starts, "
            f"about 0.7 s): {d['batches_prepared_by_its_process']} of {d['batches']}; its CPU "
            "is not in the next line",
            f"CPU of this process per event (both threads; the broker's not counted): relay "
            f"{d['relay_cpu_us_per_event']:.0f} µs, raw the same messages "
            f"{d['raw_cpu_us_per_event']:.0f} µs (raw ÷ relay "
            f"{d['raw_cpu_us_per_event'] / d['relay_cpu_us_per_event']:.2f}×).",
            f"relay's own work without Kafka (first {d['stage_sample_events']} events, "
            f"µs/event): read store {d['read_store_us']:.0f}, decode event "
            f"{d['decode_event_us']:.0f}, Avro encode {d['encode_avro_us']:.0f}, "
            f"headers {d['headers_us']:.0f}",
            f"a plain consumer reading them back (context; batches' CRC-32C checked, "
            f"{'in C' if d['checksums_in_c'] else 'in pure Python'}): "
            f"{d['read_back_us_per_event']:.0f} µs/event, CPU "
            f"{d['read_back_cpu_us_per_event']:.0f} µs/event",
        ]
    return [
        f"latency: {d['commands']} commands (after {d['warmup_commands']} warm-up), "
        f"gaps {d['gap_ms'][0]:.0f}–{d['gap_ms'][1]:.0f} ms, relay idle "
        f"{d['relay_idle_ms']:.0f} ms, fetch_max_wait {d['fetch_max_wait_ms']} ms, "
        f"linger {d['linger_ms']} ms; {d['nervenbahn_over_100_ms']} over 100 ms; "
        f"group join {d['join_seconds']:.1f} s; ratio = raw p50 / nervenbahn p50"
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS,
                        help=f"events relayed in the throughput part (default {DEFAULT_EVENTS})")
    parser.add_argument("--commands", type=int, default=DEFAULT_COMMANDS,
                        help=f"measured commands in the latency part (default {DEFAULT_COMMANDS})")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                        help=f"relay batch size, also the raw flush interval "
                             f"(default {DEFAULT_BATCH})")
    add_output_arguments(parser)
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the relay run (slows it down; top 25 to stderr)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.commands < 1 or args.batch_size < 1:
        parser.error("--events, --commands and --batch-size must be ≥ 1")

    started = time.perf_counter()
    devnull = open(os.devnull, "w")  # noqa: SIM115
    configure_logging("json", "info", stream=devnull)  # as the services log: to /dev/null
    master_key = base64.b64encode(secrets.token_bytes(32)).decode()
    directory = Path(tempfile.mkdtemp(prefix="nervenbahn-bench-bus-"))
    rows: list[Row] = []
    notes: list[str] = []
    try:
        base = load_kafka_settings()
        with contextlib.ExitStack() as stack:
            if base.embedded:
                broker = stack.enter_context(EmbeddedBroker(directory / "broker"))
                base = base.with_bootstrap(broker.bootstrap)
                where = f"embedded Tansu at {broker.bootstrap} ({base.profile} profile)"
            else:
                where = f"{','.join(base.bootstrap_servers)} ({base.profile} profile)"
            rows.append(bench_relay(directory, base, args, master_key, notes))
            rows.append(bench_latency(directory, base, args, master_key))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        devnull.close()
    runtime = time.perf_counter() - started
    if args.json:
        emit_json(runtime, args.seed, {"events": args.events, "commands": args.commands,
                                       "batch_size": args.batch_size, "broker": where},
                  rows, notes)
    else:
        print_table("nervenbahn bus vs raw kafka-python (same run, same broker)", rows, notes,
                    fmt=_fmt, describe=_describe, seed=args.seed, runtime=runtime,
                    context=f"broker {where}; ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
