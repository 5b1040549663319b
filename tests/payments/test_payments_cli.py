"""`nervenbahn payments …` in-process against a SQLite store of the test's own."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from domain.commands import swiss_today
from nervenbahn.cli import main
from nervenbahn.config import load_settings
from nervenbahn.container import build_service, close_service
from tests.bus.pipeline import open_supported_case
from tests.domain.case_desk import expected_basic_needs


def test_account_run_twice_and_bad_input(
    tmp_path: Path, master_key: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("NERVENBAHN_STORE", store)
    monkeypatch.setenv("NERVENBAHN_MASTER_KEY", master_key)
    monkeypatch.setenv("NERVENBAHN_ACTOR", "pay.office:administrator:so-canton")
    monkeypatch.setenv("NERVENBAHN_LOG_FORMAT", "json")
    service = build_service(load_settings())
    case_id = str(open_supported_case(service))
    close_service(service)
    month = f"{swiss_today():%Y-%m}"

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    code, _, err = run("payments", "account", case_id, "--iban", "CH93 0076 2011 6238 5295 8",
                       "--holder", "N. Beispiel")
    assert code == 1 and "iban: not a valid IBAN" in err
    assert run("payments", "account", case_id, "--iban", "CH93 0076 2011 6238 5295 7",
               "--holder", "N. Beispiel")[0] == 0
    code, out, _ = run("--json", "payments", "run", month)
    first = json.loads(out)
    assert code == 0 and first["recorded"] and first["payments"] == 1
    # SKOS basic needs (one person) + housing 1200 + health insurance 350, the whole month
    owed = expected_basic_needs(swiss_today().replace(day=1), 1) + Decimal("1550.00")
    assert Decimal(first["control_sum"]) == owed
    code, out, _ = run("--json", "payments", "run", month)
    assert code == 0 and json.loads(out)["recorded"] is False
    code, out, _ = run("--json", "payments", "orders", case_id)
    assert [o["kind"] for o in json.loads(out)["orders"]] == ["regular"]
    code, _, err = run("payments", "run", "2999-01")
    assert code == 1 and "lies after the current month" in err


def test_a_run_is_approved_by_a_second_administrator_on_the_command_line(
    tmp_path: Path, master_key: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("NERVENBAHN_MASTER_KEY", master_key)
    monkeypatch.setenv("NERVENBAHN_LOG_FORMAT", "json")
    service = build_service(load_settings())
    case_id = str(open_supported_case(service))
    close_service(service)

    def run(actor: str, *args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--actor", actor, *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    office, control = "pay.office:administrator:so-canton", "pay.control:administrator:so-canton"
    assert run(office, "payments", "account", case_id, "--iban", "CH93 0076 2011 6238 5295 7",
               "--holder", "N. Beispiel")[0] == 0
    code, out, _ = run(office, "--json", "payments", "run", f"{swiss_today():%Y-%m}")
    prepared = json.loads(out)
    assert code == 0 and "awaits a second person's approval" in prepared["message"]
    run_id = prepared["run_id"]

    code, _, err = run(office, "payments", "approve", run_id)
    assert code == 1 and "[rule: four-eyes]" in err and "a second person approves" in err
    code, out, _ = run(office, "--json", "payments", "runs")
    assert json.loads(out)[0]["approved_by"] is None
    code, out, err = run(control, "payments", "approve", run_id)
    assert code == 0, err
    assert f"payment run {run_id} approved by pay.control" in out
    code, out, _ = run(control, "--json", "payments", "runs")
    [listed] = json.loads(out)
    assert (listed["prepared_by"], listed["approved_by"]) == ("pay.office", "pay.control")
    code, _, err = run("third:administrator:so-canton", "payments", "approve", run_id)
    assert code == 1 and "[rule: run-approved-once]" in err
    code, out, _ = run(control, "payments", "approve", "--help")
    assert "four-eyes" in out and "--acknowledge" in out
