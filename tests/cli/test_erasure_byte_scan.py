"""Erasure reaches every file: after `person erase`, no byte of the store folder, the outputs or
the topics names the person.

The person goes through every output of a demo installation (real SQLite store, real embedded
broker under the store folder): an open supported case, a payout account, a payment run whose
pain.001 file the payments sink writes, a population-register delivery naming the person in the
inbox, the read models, the topics (relayed to the broker, whose log files lie in the store
folder), a quarterly report and an audit report. Then `person erase`, then every byte of every
file under the test's folder is searched for the person's name, AHVN13 (with and without dots),
IBAN (with and without spaces) and street.
"""

from __future__ import annotations

import re
import time
from datetime import date
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from bus.kafka_settings import KafkaSettings
from bus.topics import list_topics, partition_end_offsets
from tests.cli.conftest import Cli

pytestmark = pytest.mark.slow


def _needles(person: dict[str, str], iban: str) -> dict[str, bytes]:
    """What must not be found anywhere, by what it is."""
    compact_iban = iban.replace(" ", "")
    spaced_iban = " ".join(compact_iban[i : i + 4] for i in range(0, len(compact_iban), 4))
    texts = {
        "name": f"{person['given_name']} {person['family_name']}",
        "AHVN13": person["ahvn13"],
        "AHVN13 without dots": person["ahvn13"].replace(".", ""),
        "IBAN": compact_iban,
        "IBAN with spaces": spaced_iban,
        "street": person["street"],
    }
    return {what: text.encode("utf-8") for what, text in texts.items()}


def _found(folder: Path, needles: dict[str, bytes]) -> list[str]:
    """Every (file, what) where a needle occurs."""
    hits = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        content = path.read_bytes()
        hits += [f"{path.relative_to(folder)}: {what}" for what, needle in needles.items()
                 if needle in content]
    return hits


def _messages(kafka: KafkaSettings) -> list[bytes]:
    """Key, value and headers of every message on the test's topics, each as one blob."""
    topics = {name: n for name, n in list_topics(kafka).items()
              if name.startswith(kafka.topic_prefix)}
    partitions = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
    ends = partition_end_offsets(kafka, partitions)
    consumer = KafkaConsumer(**kafka.consumer_kwargs(None, "byte-scan"))
    blobs: list[bytes] = []
    try:
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            assert time.monotonic() < deadline, "the topics were not read to their ends"
            for records in consumer.poll(timeout_ms=500).values():
                blobs += [b"".join([r.key or b"", r.value or b"",
                                    *(v for _, v in r.headers)]) for r in records]
    finally:
        consumer.close()
    return blobs


def _iban_paid_to(outbox: Path, holder: str) -> str:
    """The IBAN the pain.001 files pay `holder` on."""
    for path in outbox.glob("*.xml"):
        for block in re.findall(r"<CdtTrfTxInf>.*?</CdtTrfTxInf>", path.read_text(), re.S):
            if f"<Nm>{holder}</Nm>" in block:
                iban = re.search(r"<IBAN>([^<]+)</IBAN>", block)
                assert iban, block
                return iban.group(1)
    raise AssertionError(f"no credit transfer to {holder} in {outbox}")


def test_no_byte_names_an_erased_person_after_every_output(
    cli: Cli, tmp_path: Path, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the session's broker keeps the topics after the demo (the demo's own would stop with it)
    monkeypatch.setenv("NERVENBAHN_KAFKA", ",".join(kafka_settings.bootstrap_servers))
    monkeypatch.setenv("NERVENBAHN_KAFKA_PROFILE", "embedded")
    monkeypatch.setenv("NERVENBAHN_TOPIC_PREFIX", kafka_settings.topic_prefix)
    # the operator reads and erases canton-wide (a caseworker reads only their own region)
    monkeypatch.setenv("NERVENBAHN_ACTOR", "ops:administrator:so-canton")
    demo = cli("demo", "--households", "60", "--reset")
    assert demo.code == 0, demo.err
    out = " ".join(demo.out.split())
    case_id = re.search(r"handover proposal on ([0-9a-f-]{36})", out)
    assert case_id, out
    case = cli("--json", "case", "show", case_id.group(1)).json()
    assert isinstance(case, dict)
    person = case["applicant"]
    iban = _iban_paid_to(tmp_path / "outbox" / "payments",
                         f"{person['given_name']} {person['family_name']}")
    quarter = f"{date.today().year}Q{(date.today().month - 1) // 3 + 1}"
    assert cli("projections", "rebuild", "reporting").code == 0
    reported = cli("report", "quarterly", quarter, "--out", str(tmp_path / "reports"))
    assert reported.code == 0, reported.err
    audited = cli("audit", "case", case_id.group(1), "--as-of", date.today().isoformat(),
                  "--out", str(tmp_path / "reports" / "audit.html"))
    assert audited.code == 0, audited.err
    needles = _needles(person, iban)
    reached = {hit.split(":")[0] for hit in _found(tmp_path, needles)}
    assert any(place.startswith("outbox/payments/") for place in reached)  # before erasure
    # the register's delivery naming the person was processed, and deleted with that
    status = cli("--json", "connectors", "status").json()
    assert isinstance(status, list)
    register = next(s for s in status if s["name"] == "population_register")
    assert register["position"] and register["lag"] == 0
    assert list((tmp_path / "inbox" / "register").iterdir()) == []
    assert not (tmp_path / "demo-history.jsonl").exists()  # deleted once imported
    messages = _messages(kafka_settings)
    assert len(messages) > 1000

    erased = cli("--json", "person", "erase", person["person_id"], "--yes")

    assert erased.code == 0, erased.out + erased.err
    assert _found(tmp_path, needles) == []
    assert [what for blob in _messages(kafka_settings) for what, needle in needles.items()
            if needle in blob] == []
    places = erased.json()["places"]  # type: ignore[index]
    assert {(Path(p["place"]).name, p["outcome"]) for p in places} >= {
        ("data key", "destroyed")} | {(path.name, "rewritten") for path in
                                      (tmp_path / "outbox" / "payments").glob("*.xml")}
