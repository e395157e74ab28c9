"""Rule files that must not be installed: a score that is no number (`.nan` listed as null, scored
0) and sample names that reach outside the rule's samples/ folder (QA, rule upload)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailmoat.cli import app as cli_app
from tests.support.webkit import web_env

API = "/api/v1"
HIT = b"From: a@b.example\r\nTo: c@d.example\r\nSubject: your test-invoice\r\n\r\nhi\r\n"
MISS = b"From: a@b.example\r\nTo: c@d.example\r\nSubject: hello\r\n\r\nhi\r\n"


def rule(score: str = "1.0", miss: str = "miss.eml") -> str:
    return f"""id: lure_test_invoice_word
name: Test invoice word
description: The subject says test-invoice.
severity: low
symbol: TEST_INVOICE_WORD
score: {score}
expression: subject.contains("test-invoice")
samples:
  hit: [hit.eml]
  miss: ["{miss}"]
"""


def test_the_upload_refuses_a_score_that_is_no_number_and_a_sample_outside_its_folder(tmp_path: Path) -> None:
    with web_env(tmp_path) as env:
        c, h = env.client, env.as_role("admin")

        def upload(text: str) -> tuple[int, list[str]]:
            files = [("file", ("lure_test_invoice_word.yml", text.encode(), "application/yaml")),
                     ("samples", ("hit.eml", HIT, "message/rfc822")), ("samples", ("miss.eml", MISS, "message/rfc822"))]
            r = c.post(f"{API}/rules/upload", files=files, headers=h)
            return r.status_code, r.json()["detail"]["problems"] if r.status_code == 422 else []

        for score in (".nan", ".inf", "-.inf"):
            code, problems = upload(rule(score=score))
            assert code == 422 and any("score must be a finite number" in p for p in problems), (score, problems)
        # /etc/passwd, read as a sample that must miss, did miss: the rule was installed.
        code, problems = upload(rule(miss="../../../../../../../../etc/passwd"))
        assert code == 422 and any("must be a plain file name" in p for p in problems), problems
        assert not any("passwd" in p and "must miss" in p for p in problems)
        assert not (env.settings.data_path / "rules" / "lure_test_invoice_word.yml").exists()
        assert upload(rule())[0] == 201


@pytest.mark.parametrize(("score", "miss", "problem"), [
    (".nan", "miss.eml", "score must be a finite number"),
    ("1.0", "../outside.eml", "must be a plain file name"),
    ("1.0", "sub/miss.eml", "must be a plain file name"),
])
def test_rules_check_names_the_same_problems(tmp_path: Path, score: str, miss: str, problem: str) -> None:
    rules = tmp_path / "rules"
    (rules / "samples" / "sub").mkdir(parents=True)
    (rules / "lure_test_invoice_word.yml").write_text(rule(score=score, miss=miss), encoding="utf-8")
    for name, data in (("hit.eml", HIT), ("miss.eml", MISS), ("sub/miss.eml", MISS)):
        (rules / "samples" / name).write_bytes(data)
    (rules / "outside.eml").write_bytes(MISS)
    r = CliRunner().invoke(cli_app, ["rules", "check", str(rules), "--no-samples", "--data-dir", str(tmp_path / "var")])
    assert r.exit_code == 1 and problem in r.output, r.output
