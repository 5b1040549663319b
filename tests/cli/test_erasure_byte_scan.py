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

import json
import re
import time
from datetime import date
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from bus.kafka_settings import KafkaSettings
from bus.topics import list_topics, partition_end_offsets
from domain.commands import swiss_today
from domain.reference import load_branch_offices
from tests.cli.conftest import Cli
from tests.domain.case_desk import person_input, valid_ahvn13

pytestmark = pytest.mark.slow


def _needles(person: dict[str, str], iban: str | None = None) -> dict[str, bytes]:
    """What must not be found anywhere, by what it is (the IBAN's forms if one is given)."""
    texts = {
        "name": f"{person['given_name']} {person['family_name']}",
        "AHVN13": person["ahvn13"],
        "AHVN13 without dots": person["ahvn13"].replace(".", ""),
        "street": person["street"],
    }
    if iban is not None:
        compact = iban.replace(" ", "")
        texts["IBAN"] = compact
        texts["IBAN with spaces"] = " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
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


FUND = "max.akso:fund_officer:akso"
PERSON_FIELDS = ("given_name", "family_name", "ahvn13", "birth_date", "street", "postal_code",
                 "town")


def _apply_for_el(cli: Cli, person: dict[str, str], municipality: int, folder: Path,
                  known: bool) -> tuple[str, Path]:
    """The person applies for EL at the office of `municipality` (as a person nervenbahn knows
    if `known`): received, checked (nothing handed in), forwarded with a reason, granted by the
    fund from this month; `benefits show` written to a file in `folder`, and this week's
    backlog report. The application id and the file."""
    office = next(o.id for o in load_branch_offices().values()
                  if municipality in o.municipalities)
    clerk = f"eva.frei:branch_office:{office}"
    born = date.fromisoformat(person["birth_date"])
    kind = "el_ahv" if (swiss_today() - born).days >= 65 * 366 else "el_iv"
    args = [arg for key in PERSON_FIELDS for arg in (f"--{key.replace('_', '-')}", person[key])]
    if known:
        args += ["--person-id", person["person_id"]]
    received = cli("--json", "--actor", clerk, "benefits", "receive", "--kind", kind,
                   "--municipality", str(municipality), *args)
    assert received.code == 0, received.err
    application = str(received.json()["id"])  # type: ignore[index]
    month = swiss_today().strftime("%Y-%m")
    for actor, *command in (
        (clerk, "check", application),
        (clerk, "forward", application, "--override-reason", "the applicant is in hospital"),
        (FUND, "grant", application, "--from-month", month, "--amount", f"{month}=812.40"),
    ):
        done = cli("--json", "--actor", actor, "benefits", *command)
        assert done.code == 0, done.err
    shown = cli("--json", "--actor", clerk, "benefits", "show", application)
    assert shown.code == 0, shown.err
    assert shown.json()["decision"]["outcome"] == "granted"  # type: ignore[index]
    show_file = folder / "benefits-show.json"
    show_file.write_text(shown.out)
    week = swiss_today().isocalendar()
    backlog = cli("--actor", FUND, "report", "backlog", f"{week.year}-W{week.week:02d}",
                  "--out", str(folder / "reports" / "backlog"))
    assert backlog.code == 0, backlog.err
    return application, show_file


def _erase_after_removing(cli: Cli, person_id: str, show_file: Path) -> list[dict[str, str]]:
    """`person erase`: it names the `benefits show` file (written outside nervenbahn, it holds
    the AHVN13 in clear) as not reached; once that file is removed as told, it erases again
    without a gap. The first erasure's places."""
    first = cli("--json", "person", "erase", person_id, "--yes")
    places: list[dict[str, str]] = first.json()["places"]  # type: ignore[index]
    assert first.code != 0 and [p["place"] for p in places if p["outcome"] == "not reached"] == [
        str(show_file)], first.out + first.err
    show_file.unlink()
    again = cli("--json", "person", "erase", person_id, "--yes")
    assert again.code == 0 and again.json()["complete"], again.out  # type: ignore[index]
    return places


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
    quarter = f"{swiss_today().year}Q{(swiss_today().month - 1) // 3 + 1}"
    assert cli("projections", "rebuild", "reporting").code == 0
    reported = cli("report", "quarterly", quarter, "--out", str(tmp_path / "reports"))
    assert reported.code == 0, reported.err
    audited = cli("audit", "case", case_id.group(1), "--as-of", swiss_today().isoformat(),
                  "--out", str(tmp_path / "reports" / "audit.html"))
    assert audited.code == 0, audited.err
    application, show_file = _apply_for_el(cli, person, case["municipality_bfs"], tmp_path,
                                           known=True)
    relayed = cli("relay", "run", "--relay", "benefits", "--until-caught-up")
    assert relayed.code == 0, relayed.err
    needles = _needles(person, iban)
    reached = {hit.split(":")[0] for hit in _found(tmp_path, needles)}
    assert any(place.startswith("outbox/payments/") for place in reached)  # before erasure
    assert show_file.name in reached
    # the register's delivery naming the person was processed, and deleted with that
    status = cli("--json", "connectors", "status").json()
    assert isinstance(status, list)
    register = next(s for s in status if s["name"] == "population_register")
    assert register["position"] and register["lag"] == 0
    assert list((tmp_path / "inbox" / "register").iterdir()) == []
    assert not (tmp_path / "demo-history.jsonl").exists()  # deleted once imported
    messages = _messages(kafka_settings)
    assert len(messages) > 1000
    assert any(application.encode() in blob for blob in messages)  # on the applications topic

    places = _erase_after_removing(cli, person["person_id"], show_file)

    assert _found(tmp_path, needles) == []
    assert [what for blob in _messages(kafka_settings) for what, needle in needles.items()
            if needle in blob] == []
    assert {(Path(p["place"]).name, p["outcome"]) for p in places} >= {
        ("data key", "destroyed")} | {(path.name, "rewritten") for path in
                                      (tmp_path / "outbox" / "payments").glob("*.xml")}


def test_an_applicant_known_only_to_the_benefits_store_is_erased_everywhere(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a pensioner with no social-assistance case: erasure finds them in the benefits store
    monkeypatch.setenv("NERVENBAHN_ACTOR", "ops:administrator:so-canton")
    assert cli("init").code == 0
    person = person_input(7, given_name="Erna", family_name="Zumstein", birth_date="1950-01-02",
                          ahvn13=valid_ahvn13(4_242_424), street="Rosenweg 3",
                          postal_code="2540", town="Grenchen")
    application, show_file = _apply_for_el(cli, person, 2546, tmp_path, known=False)
    person_id = json.loads(show_file.read_text())["applicant"]["person_id"]
    needles = _needles(person)
    assert {hit.split(":")[0] for hit in _found(tmp_path, needles)} == {show_file.name}
    assert application in (tmp_path / "benefits-show.json").read_text()

    places = _erase_after_removing(cli, person_id, show_file)

    assert _found(tmp_path, needles) == []
    assert places[0] == {"place": "data key", "outcome": "destroyed",
                         "detail": "the sealed data no longer opens"}
    shown = cli("--json", "--actor", "eva.frei:branch_office:akso-grenchen", "benefits",
                "show", application)
    assert shown.code == 0, shown.err
    assert [what for what, needle in needles.items() if needle in shown.out.encode()] == []
