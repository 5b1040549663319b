"""The catalogue of what a sink receives: the committed docs/connector-catalogue.md is what
`nervenbahn connectors catalogue` writes now, and what it says is derived, not copied: the
names on `received.event`, the phase table, the examples a codec really decoded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domain.events import EVENT_TYPES
from nervenbahn.cli import main
from nervenbahn.connector_catalogue import (
    PhaseChange,
    SinkCatalogue,
    phase_changes,
    render,
    sink_catalogue,
)

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "connector-catalogue.md"


@pytest.fixture(scope="module")
def catalogue() -> SinkCatalogue:
    return sink_catalogue()


def test_the_committed_catalogue_is_the_generated_one(
    tmp_path: Path, catalogue: SinkCatalogue
) -> None:
    out = tmp_path / "catalogue.md"
    assert main(["connectors", "catalogue", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render(catalogue)
    assert COMMITTED.read_text(encoding="utf-8") == out.read_text(encoding="utf-8"), (
        "docs/connector-catalogue.md is stale: run "
        "`nervenbahn connectors catalogue --out docs/connector-catalogue.md`"
    )


def test_every_topic_a_sink_reads_and_every_case_event_is_listed(
    catalogue: SinkCatalogue,
) -> None:
    datasets = {topic.dataset: topic for topic in catalogue.topics}
    assert set(datasets) == {"case-events", "case-facts", "payment-orders", "applications",
                             "claims"}
    assert {e.name for e in datasets["case-events"].events} == {c.__name__ for c in EVENT_TYPES}


def test_renamed_fields_are_read_off_the_decoded_event(catalogue: SinkCatalogue) -> None:
    case_events = next(t for t in catalogue.topics if t.dataset == "case-events")
    opened = next(e for e in case_events.events if e.name == "CaseOpened")
    renamed = {f.avro: f.domain for f in opened.fields if f.avro != f.domain}
    assert renamed == {"case_id": "originator_id", "version": "originator_version",
                       "recorded_at": "timestamp"}
    assert "applicant=SealedPersonalData(person_id=UUID(" in opened.example  # sealed, as sinks
    payments = next(t for t in catalogue.topics if t.dataset == "payment-orders")
    assert {f.avro: f.domain for f in payments.events[0].fields}["run_id"] == "originator_id"


def test_the_phase_table_follows_the_domain() -> None:
    assert phase_changes() == (
        PhaseChange("CaseOpened", ("(new case)",), "intake"),
        PhaseChange("AssessmentCompleted", ("intake",), "assessed"),
        PhaseChange("SupportGranted", ("assessed",), "supported"),
        PhaseChange("SupportRefused", ("assessed",), "refused"),
        PhaseChange("CaseClosed", ("assessed", "intake", "refused", "supported"), "closed"),
        PhaseChange("CaseReopened", ("closed",), "intake"),
    )


def test_the_json_form_holds_the_same(catalogue: SinkCatalogue) -> None:
    data = json.loads(render(catalogue, "json"))
    assert [t["dataset"] for t in data["topics"]] == [t.dataset for t in catalogue.topics]
    assert data["phases"][0] == {"event": "CaseOpened", "before": ["(new case)"],
                                 "after": "intake"}
