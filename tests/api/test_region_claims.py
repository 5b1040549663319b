"""The hand-computed worked example through the API (issue 15, "Done when"): the claims a case
recorded, the person's statement of each (HTML and CSV), and the canton's figures of advances.

The worked example of docs/benefits.md (`tests.domain.test_reimbursement.
record_worked_example_to_may`): support of CHF 2,400.00 a month from January, advanced from
January; the fund grants EL on 20 May from February, 1,900.00 a month and 2,600.00 from April;
the claims process records the claim. On 10 June a budget change effective March (2,000.00)
is recorded, June's payment run claims back 400.00 for March to May, and the claims process
records the correction. The figures below are the hand-computed ones of that example.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from domain.application.claims import AdvanceClaims
from domain.commands import Actor, RecordReimbursementPaid
from domain.events import claims_of
from nervenbahn.audit.access_log import AccessEntry
from nervenbahn.reimbursement_statement import FIGURES_FIELDS, STATEMENT_FIELDS
from tests.api.conftest import NOW, AppOn, Keys, ReadModels, build_read_models, context_of
from tests.domain.test_reimbursement import WorkedExample, record_worked_example_to_may

REGION = "so-solothurn"
BASE = f"/v1/regions/{REGION}/cases"
STATEMENT = (
    "GET /v1/regions/{region_id}/cases/{case_id}/claims/{application_id}/{sequence}/statement")


@dataclass(frozen=True)
class Recorded:
    """The worked example after June's correction, and read models rebuilt from it."""

    example: WorkedExample
    models: ReadModels

    @property
    def case_id(self) -> UUID:
        return self.example.case_id


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """The worked example recorded through the services: May's claim, June's correction."""
    example = record_worked_example_to_may(Actor("anna.keller", "caseworker", REGION))
    claims = AdvanceClaims(example.desk.service, example.benefits.service, example.payments,
                           clock=example.desk.clock)
    example.on(date(2026, 5, 20))
    example.benefits.run("grant_benefit", application_id=example.application_id,
                         from_month="2026-02",
                         amounts=[{"from_month": "2026-02", "monthly_chf": "1900.00"},
                                  {"from_month": "2026-04", "monthly_chf": "2600.00"}])
    claims.run()
    example.on(date(2026, 5, 27))  # the fund pays May's claim (reported back over the bus)
    (claim,) = claims_of(example.desk.case(example.case_id))
    example.desk.service.execute(RecordReimbursementPaid(
        actor=Actor("fund-decisions", "system", "akso"), correlation_id=uuid4(),
        case_id=example.case_id, application_id=example.application_id,
        claim_version=claim.case_version, paid_on=date(2026, 5, 27), to_region="8600.00",
        to_person="400.00", message_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0"))
    example.on(date(2026, 6, 10))
    example.desk.run("change_budget", case_id=example.case_id, effective_date="2026-03-01",
                     reason="income_change", housing=str(example.housing), income="400.00")
    example.run("2026-06")
    claims.run()
    yield Recorded(example, build_read_models(example.desk.service,
                                              tmp_path_factory.mktemp("worked-example")))
    example.payments.close()


@pytest.fixture
def api(app_on: AppOn, recorded: Recorded) -> TestClient:
    """The API on the worked example's store (the case service) and read models."""
    return app_on(recorded.models, service=recorded.example.desk.service)


def _month(month: str, *figures: str) -> dict[str, str]:
    paid, el, ipv_offset, claim, surplus = figures
    return {"month": month, "paid": paid, "el": el, "ipv_offset": ipv_offset, "claim": claim,
            "surplus": surplus}


MAY = [_month("2026-02", "2400.00", "1900.00", "0.00", "1900.00", "0.00"),
       _month("2026-03", "2400.00", "1900.00", "0.00", "1900.00", "0.00"),
       _month("2026-04", "2400.00", "2600.00", "0.00", "2400.00", "200.00"),
       _month("2026-05", "2400.00", "2600.00", "0.00", "2400.00", "200.00")]
"""By hand: claim = min(paid, EL), surplus = EL − claim; January advanced without EL."""
JUNE = [_month("2026-02", "2400.00", "1900.00", "0.00", "1900.00", "0.00"),
        _month("2026-03", "2000.00", "1900.00", "0.00", "1900.00", "0.00"),
        _month("2026-04", "2000.00", "2600.00", "0.00", "2000.00", "600.00"),
        _month("2026-05", "2000.00", "2600.00", "0.00", "2000.00", "600.00")]
"""As known in June: March to May paid 2,000.00; March's claim stays 1,900.00 (< 2,000.00)."""
JUNE_CORRECTIONS = [_month(m, "-400.00", "0.00", "0.00", "-400.00", "400.00")
                    for m in ("2026-04", "2026-05")]


def test_the_claims_endpoint_answers_the_hand_computed_figures(
    api: TestClient, keys: Keys, recorded: Recorded,
) -> None:
    answer = api.get(f"{BASE}/{recorded.case_id}/claims", headers=keys.of(f"region:{REGION}"))

    assert answer.status_code == 200
    body = answer.json()
    assert (body["region_id"], body["case_id"]) == (REGION, str(recorded.case_id))
    first, correction = body["claims"]
    application = str(recorded.example.application_id)
    assert first == {
        "sequence": 1, "kind": "claim", "application_id": application,
        "recorded_on": "2026-05-20", "months": MAY, "corrections": MAY,
        "claim_total": "8600.00", "surplus_total": "400.00", "ipv_offset_total": "0.00",
        "paid_on": "2026-05-27", "paid_to_region": "8600.00", "paid_to_person": "400.00",
        "payment_message_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}
    assert correction == {
        "sequence": 2, "kind": "correction", "application_id": application,
        "recorded_on": "2026-06-10", "months": JUNE, "corrections": JUNE_CORRECTIONS,
        "claim_total": "-800.00", "surplus_total": "800.00", "ipv_offset_total": "0.00",
        "paid_on": None, "paid_to_region": None, "paid_to_person": None,
        "payment_message_id": None}


def test_the_statement_csv_of_the_claim_and_of_the_correction(
    api: TestClient, keys: Keys, recorded: Recorded,
) -> None:
    own = keys.of(f"region:{REGION}")

    claim = api.get(
        f"{BASE}/{recorded.case_id}/claims/{recorded.example.application_id}/1/statement.csv",
        headers=own)
    correction = api.get(
        f"{BASE}/{recorded.case_id}/claims/{recorded.example.application_id}/2/statement.csv",
        headers=own)

    assert claim.status_code == correction.status_code == 200
    assert claim.headers["content-type"] == "text/csv; charset=utf-8"
    header = ("month,paid_by_social_assistance,el,ipv_offset,claim,surplus,claim_change,"
              "ipv_offset_change,surplus_change")
    assert claim.text.splitlines() == [
        header,
        "2026-02,2400.00,1900.00,0.00,1900.00,0.00,1900.00,0.00,0.00",
        "2026-03,2400.00,1900.00,0.00,1900.00,0.00,1900.00,0.00,0.00",
        "2026-04,2400.00,2600.00,0.00,2400.00,200.00,2400.00,0.00,200.00",
        "2026-05,2400.00,2600.00,0.00,2400.00,200.00,2400.00,0.00,200.00",
        "total,9600.00,9000.00,0.00,8600.00,400.00,8600.00,0.00,400.00",
    ]
    assert correction.text.splitlines() == [
        header,
        "2026-02,2400.00,1900.00,0.00,1900.00,0.00,0.00,0.00,0.00",
        "2026-03,2000.00,1900.00,0.00,1900.00,0.00,0.00,0.00,0.00",
        "2026-04,2000.00,2600.00,0.00,2000.00,600.00,-400.00,0.00,400.00",
        "2026-05,2000.00,2600.00,0.00,2000.00,600.00,-400.00,0.00,400.00",
        "total,8400.00,9000.00,0.00,7800.00,1200.00,-800.00,0.00,800.00",
    ]


def _rows(html: str, table: str) -> dict[str, list[str]]:
    """The cells of each row of the statement's table `table`, by its `data-month`."""
    body = re.search(rf'<table id="{table}">(.*?)</table>', html, re.S)
    assert body is not None, table
    return {month: re.findall(r"<td[^>]*>(.*?)</td>", cells)
            for month, cells in re.findall(r'<tr[^>]*data-month="([^"]+)">(.*?)</tr>',
                                           body.group(1))}


def test_the_statement_page_of_the_correction_shows_the_months_and_what_changed(
    api: TestClient, keys: Keys, recorded: Recorded,
) -> None:
    application = recorded.example.application_id
    answer = api.get(f"{BASE}/{recorded.case_id}/claims/{application}/2/statement",
                     headers=keys.of(f"region:{REGION}"))

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    html = answer.text
    assert "<title>Korrektur der Abrechnung" in html
    assert "Abrechnung Nr. 2 vom 10.06.2026" in html  # when the correction was recorded
    assert _rows(html, "months") == {
        "2026-02": ["Februar 2026", "2&#x27;400.00", "1&#x27;900.00", "0.00",
                    "1&#x27;900.00", "0.00"],
        "2026-03": ["März 2026", "2&#x27;000.00", "1&#x27;900.00", "0.00", "1&#x27;900.00",
                    "0.00"],
        "2026-04": ["April 2026", "2&#x27;000.00", "2&#x27;600.00", "0.00", "2&#x27;000.00",
                    "600.00"],
        "2026-05": ["Mai 2026", "2&#x27;000.00", "2&#x27;600.00", "0.00", "2&#x27;000.00",
                    "600.00"],
        "total": ["Total", "8&#x27;400.00", "9&#x27;000.00", "0.00", "7&#x27;800.00",
                  "1&#x27;200.00"],
    }
    # Claim before, now, change; surplus before, now, change.
    assert _rows(html, "changes") == {
        "2026-04": ["April 2026", "2&#x27;400.00", "2&#x27;000.00", "-400.00", "200.00",
                    "600.00", "+400.00"],
        "2026-05": ["Mai 2026", "2&#x27;400.00", "2&#x27;000.00", "-400.00", "200.00",
                    "600.00", "+400.00"],
        "total": ["Total", "8&#x27;600.00", "7&#x27;800.00", "-800.00", "400.00",
                  "1&#x27;200.00", "+800.00"],
    }


def test_a_statement_read_is_logged_for_the_household_before_it_is_answered(
    api: TestClient, keys: Keys, recorded: Recorded,
) -> None:
    api.get(f"{BASE}/{recorded.case_id}/claims/{recorded.example.application_id}/1/statement",
            headers=keys.of(f"region:{REGION}"))

    api.get(f"{BASE}/{recorded.case_id}/claims/{recorded.example.application_id}/1/"
            "statement.csv", headers=keys.of(f"region:{REGION}"))

    person = recorded.example.desk.case(recorded.case_id).applicant.person_id
    # the page names the person; the CSV holds the figures only, and is logged as that
    assert [item.entry for item in context_of(api).access_log.select()] == [
        AccessEntry(at=NOW, consumer=f"region-{REGION}", scope=f"region:{REGION}",
                    case_id=str(recorded.case_id), person_id=str(person),
                    fields=STATEMENT_FIELDS, endpoint=STATEMENT),
        AccessEntry(at=NOW, consumer=f"region-{REGION}", scope=f"region:{REGION}",
                    case_id=str(recorded.case_id), person_id=str(person),
                    fields=FIGURES_FIELDS, endpoint=f"{STATEMENT}.csv")]


def test_a_case_out_of_scope_answers_like_a_missing_one_and_logs_nothing(
    api: TestClient, keys: Keys, recorded: Recorded,
) -> None:
    olten = keys.of("region:so-olten")
    case, missing, app = recorded.case_id, uuid4(), recorded.example.application_id
    pairs = {
        "another region's case": (f"/v1/regions/so-olten/cases/{case}/claims",
                                  f"/v1/regions/so-olten/cases/{missing}/claims"),
        "its statement": (f"/v1/regions/so-olten/cases/{case}/claims/{app}/1/statement",
                          f"/v1/regions/so-olten/cases/{missing}/claims/{app}/1/statement"),
        "its CSV": (f"/v1/regions/so-olten/cases/{case}/claims/{app}/1/statement.csv",
                    f"/v1/regions/so-olten/cases/{missing}/claims/{app}/1/statement.csv"),
    }
    for what, (out_of_scope, unknown) in pairs.items():
        a, b = api.get(out_of_scope, headers=olten), api.get(unknown, headers=olten)
        assert a.status_code == b.status_code == 404, what
        assert _without_instance(a.json()) == _without_instance(b.json()), what
    other_key = api.get(f"{BASE}/{case}/claims/{recorded.example.application_id}/1/statement",
                        headers=olten)  # Olten's key
    assert other_key.status_code == 404
    assert context_of(api).access_log.select() == []


def test_an_unknown_sequence_is_not_found_naming_it(
    api: TestClient, keys: Keys, recorded: Recorded,
) -> None:
    own = keys.of(f"region:{REGION}")

    third = api.get(
        f"{BASE}/{recorded.case_id}/claims/{recorded.example.application_id}/3/statement",
        headers=own)
    zero = api.get(
        f"{BASE}/{recorded.case_id}/claims/{recorded.example.application_id}/0/statement.csv",
        headers=own)

    assert third.status_code == 404
    assert third.json()["detail"] == (
        f"sequence: 3 is not a recorded claim of {recorded.example.application_id}; "
        "there are 2 (1 to 2) [rule: statement-of-recorded-claim]")
    assert zero.status_code == 422
    assert [e["name"] for e in zero.json()["errors"]] == ["sequence"]
    assert context_of(api).access_log.select() == []


def test_the_canton_figures_of_the_worked_example(
    api: TestClient, keys: Keys,
) -> None:
    canton = keys.of("canton")

    q1 = api.get("/v1/canton/benefits/advances", params={"quarter": "2026Q1"}, headers=canton)
    q2 = api.get("/v1/canton/benefits/advances", params={"quarter": "2026Q2"}, headers=canton)

    assert q1.status_code == q2.status_code == 200
    assert q2.headers["X-Read-Model"] == "region"
    nothing = {"advances_decided": 0, "median_days_to_decision": None, "claims_recorded": 0,
               "claimed_chf": "0.00", "surplus_chf": "0.00", "reimbursements_paid": 0,
               "reimbursed_chf": "0.00"}
    assert q1.json()["canton"] == {"region": "canton", "advances_open": 1, **nothing}
    # Q2: decided 20 May, 139 days after the advance's first day (1 January); claimed
    # 8,600.00 in May and -800.00 in June; surplus 400.00 + 800.00; the fund paid May's
    # claim (8,600.00 to the region) on 27 May, June's correction is not paid yet.
    decided = {"advances_open": 0, "advances_decided": 1, "median_days_to_decision": 139.0,
               "claims_recorded": 2, "claimed_chf": "7800.00", "surplus_chf": "1200.00",
               "reimbursements_paid": 1, "reimbursed_chf": "8600.00"}
    assert q2.json()["canton"] == {"region": "canton", **decided}
    regions = {r["region"]: r for r in q2.json()["regions"]}
    assert regions[REGION] == {"region": REGION, **decided}
    assert regions["so-olten"] == {"region": "so-olten", "advances_open": 0, **nothing}
    assert api.get("/v1/canton/benefits/advances", params={"quarter": "2026Q5"},
                   headers=canton).status_code == 422
    assert api.get("/v1/canton/benefits/advances", params={"quarter": "2026Q2"},
                   headers=keys.of(f"region:{REGION}")).status_code == 404


def test_openapi_documents_the_claims_and_statement_routes(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]

    claims = f"{BASE.replace(REGION, '{region_id}')}/{{case_id}}/claims"
    assert paths[claims]["get"]["responses"]["200"]["content"]["application/json"]
    statement = f"{claims}/{{application_id}}/{{sequence}}/statement"
    assert "text/html" in paths[statement]["get"]["responses"]["200"]["content"]
    assert "text/csv" in paths[f"{statement}.csv"]["get"]["responses"]["200"]["content"]
    assert "/v1/canton/benefits/advances" in paths


def _without_instance(problem: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in problem.items() if key != "instance"}


def test_worked_example_store_keeps_its_figures(recorded: Recorded) -> None:
    """The fixture's claims as the case holds them: the API tests above rest on these."""
    case = recorded.example.desk.case(recorded.case_id)
    assert [(str(c.claim_total), str(c.surplus_total)) for c in case.claims] == [
        ("8600.00", "400.00"), ("-800.00", "800.00")]
