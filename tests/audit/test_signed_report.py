"""The signed audit report: an id, who made it and when in the page, a detached Ed25519
signature over its SHA-256 beside it, and the verifier printed in docs/audit.md — run exactly
as printed — accepts the report and rejects an altered copy, a signature file re-digested to
match it, and another key."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nervenbahn.audit.checkpoints import SigningKey, public_key_text
from nervenbahn.config import Settings
from nervenbahn.identity import process_identity
from tests.audit.cli import Invoke, make_installation

DOCS = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def docs_verifier() -> str:
    """The Python block of docs/audit.md's *Checking a signed report*."""
    section = DOCS.read_text(encoding="utf-8").split("### Checking a signed report", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "docs/audit.md lost its report verifier"
    return match.group(1)


@pytest.fixture
def signed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str]) -> tuple[Settings, dict[str, object], Path]:
    """A report written and signed by `audit case` (its JSON summary), the verifier from the
    docs in tmp_path/check_report.py and the auditor's public key in tmp_path/nervenbahn.pub."""
    settings, run, case_id = make_installation(tmp_path, monkeypatch, capsys)
    assert run("audit", "checkpoint")[0] == 0
    assert run("audit", "public-key", "--out", str(tmp_path / "nervenbahn.pub"))[0] == 0
    code, out, err = _report(run, case_id, tmp_path / "reports" / "report.html")
    assert code == 0, err
    (tmp_path / "check_report.py").write_text(docs_verifier(), encoding="utf-8")
    return settings, json.loads(out), tmp_path


def _report(run: Invoke, case_id: UUID, path: Path) -> tuple[int, str, str]:
    return run("--json", "audit", "case", str(case_id), "--as-of", "2030-01-01", "--out",
               str(path))


def _check(folder: Path, report: Path, key: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(folder / "check_report.py"), str(report),
         str(key or folder / "nervenbahn.pub")],
        capture_output=True, text=True, timeout=60, check=False)


def test_the_report_names_its_id_its_maker_and_is_signed_beside_it(
    signed: tuple[Settings, dict[str, object], Path],
) -> None:
    settings, summary, folder = signed
    report = folder / "reports" / "report.html"
    assert summary["signature"] == f"{report}.sig" and summary["not_signed"] is None
    html = report.read_text(encoding="utf-8")
    report_id = str(summary["report_id"])
    assert f"<th>Berichts-ID</th><td>{report_id}</td>" in html
    assert (f"<th>Erstellt von</th><td>cw-olten-01:caseworker:so-olten (established: "
            f"{process_identity()})</td>") in html
    sig = json.loads((folder / "reports" / "report.html.sig").read_text(encoding="utf-8"))
    key = SigningKey.from_seed(settings.signing_key.get_secret_value())
    assert sig["report_id"] == report_id
    assert sig["sha256"] == hashlib.sha256(report.read_bytes()).hexdigest()
    assert (sig["key_id"], sig["public_key"]) == (key.key_id, public_key_text(key.public))
    key.public.verify(base64.b64decode(sig["signature"]), bytes.fromhex(sig["sha256"]))


def test_the_verifier_from_the_docs_accepts_the_report_as_written(
    signed: tuple[Settings, dict[str, object], Path],
) -> None:
    _, summary, folder = signed
    checked = _check(folder, folder / "reports" / "report.html")
    assert checked.returncode == 0, checked.stderr
    assert f"report {summary['report_id']} verified" in checked.stdout


def _altered_copy(folder: Path) -> Path:
    """The report with one amount changed, beside the original signature."""
    original = folder / "reports" / "report.html"
    html = original.read_text(encoding="utf-8")
    amount = re.search(r'<td class="num">CHF ([^<]*?)(\d)\.(\d\d)</td>', html)
    assert amount, "the report shows no amount"
    forged = html.replace(amount.group(0), f'<td class="num">CHF {amount.group(1)}'
                          f'{(int(amount.group(2)) + 1) % 10}.{amount.group(3)}</td>', 1)
    copy = folder / "altered" / "report.html"
    copy.parent.mkdir()
    copy.write_text(forged, encoding="utf-8")
    (folder / "altered" / "report.html.sig").write_bytes(
        (folder / "reports" / "report.html.sig").read_bytes())
    return copy


@pytest.mark.parametrize(("re_digested", "failure"),
                         [(False, "was altered"), (True, "InvalidSignature")],
                         ids=["altered", "altered-and-re-digested"])
def test_the_verifier_from_the_docs_rejects_an_altered_report(
    signed: tuple[Settings, dict[str, object], Path], re_digested: bool, failure: str,
) -> None:
    """Altered alone: the digest differs. Altered with the `.sig`'s digest changed to match:
    the signature does not hold."""
    _, _, folder = signed
    copy = _altered_copy(folder)
    if re_digested:
        sig_path = copy.with_name("report.html.sig")
        sig = json.loads(sig_path.read_text(encoding="utf-8"))
        sig["sha256"] = hashlib.sha256(copy.read_bytes()).hexdigest()
        sig_path.write_text(json.dumps(sig), encoding="utf-8")
    checked = _check(folder, copy)
    assert checked.returncode != 0
    assert failure in checked.stderr


def test_the_verifier_rejects_the_report_under_a_key_other_than_the_auditors(
    signed: tuple[Settings, dict[str, object], Path],
) -> None:
    _, _, folder = signed
    other = folder / "other.pub"
    other.write_text(public_key_text(Ed25519PrivateKey.generate().public_key()),
                     encoding="utf-8")
    checked = _check(folder, folder / "reports" / "report.html", other)
    assert checked.returncode != 0
    assert "InvalidSignature" in checked.stderr
