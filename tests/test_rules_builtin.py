"""Every built-in rule file: loads cleanly, has samples, and each sample hits or misses as declared.

New rule files are picked up automatically (the tests walk the directory), and `mailmoat rules
check` is exercised on good and bad rule directories.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailmoat.cli import app
from mailmoat.cli.rules import sample_evaluator
from mailmoat.config import Settings
from mailmoat.model import Envelope, Finding, Message
from mailmoat.model.envelope import Direction
from mailmoat.rules import BUILTIN_DIR, Rule, load_rule, missing_samples, sample_results
from mailmoat.rules.engine import RuleSet, rule_files

RULE_FILES = rule_files(BUILTIN_DIR)
Evaluator = Callable[[bytes], tuple[Message, Envelope, list[Finding]]]


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Evaluator]:
    settings = Settings()
    settings.data_dir = str(tmp_path_factory.mktemp("var"))
    evaluate, loop = sample_evaluator(settings)
    yield evaluate  # type: ignore[misc]
    loop.close()


@pytest.fixture(scope="module")
def builtin_rules() -> list[Rule]:
    return [load_rule(p) for p in RULE_FILES]


def test_there_are_built_in_rules() -> None:
    assert len(RULE_FILES) >= 5


@pytest.mark.parametrize("path", RULE_FILES, ids=[p.stem for p in RULE_FILES])
def test_rule_file_samples(path: Path, evaluator: Evaluator, builtin_rules: list[Rule]) -> None:
    rule = load_rule(path)
    assert missing_samples(rule) == []
    # A rule that reads another rule's finding runs with that rule, as in the gateway.
    results = sample_results([rule], evaluator, among=builtin_rules)
    assert len(results) == len(rule.samples_hit) + len(rule.samples_miss)
    wrong = [
        f"{r.sample}: expected {'hit' if r.expected else 'miss'}, got {r.got} {r.error}"
        for r in results
        if not r.ok
    ]
    assert wrong == []


def test_every_sample_file_is_used() -> None:
    used = {n for p in RULE_FILES for r in [load_rule(p)] for n in (*r.samples_hit, *r.samples_miss)}
    present = {p.name for p in (BUILTIN_DIR / "samples").glob("*.eml")}
    assert present - used == set()


runner = CliRunner()


def test_rules_check_builtin_ok(tmp_path: Path) -> None:
    res = runner.invoke(app, ["rules", "check", str(BUILTIN_DIR), "--data-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert f"ok: {len(RULE_FILES)} rule(s)" in res.output


def test_a_site_rule_may_read_a_built_in_rules_finding(tmp_path: Path) -> None:
    """Checked alone, a site rule that reads a built-in rule's symbol runs its samples with the
    built-in rules, as the gateway runs it."""
    d = tmp_path / "rules"
    (d / "samples").mkdir(parents=True)
    for name in ("unsolicited_not_spam.eml", "plain_newsletter.eml"):
        (d / "samples" / name).write_bytes((BUILTIN_DIR / "samples" / name).read_bytes())
    (d / "site_unsolicited_supplier.yml").write_text(
        "id: site_unsolicited_supplier\nsymbol: SITE_UNSOLICITED_SUPPLIER\nname: n\ndescription: d\n"
        "severity: low\nscore: 1\n"
        "expression: '\"UNSOLICITED_STATEMENT_IN_BODY\" in findings && contains_any(body, [\"distributor\"])'\n"
        "samples: {hit: [unsolicited_not_spam.eml], miss: [plain_newsletter.eml]}\n",
        encoding="utf-8",
    )
    res = runner.invoke(app, ["rules", "check", str(d), "--data-dir", str(tmp_path / "var")])
    assert res.exit_code == 0, res.output


def test_rules_check_reports_problems(tmp_path: Path) -> None:
    d = tmp_path / "rules"
    (d / "samples").mkdir(parents=True)
    (d / "samples" / "hello.eml").write_bytes(b"From: a@example.org\r\nSubject: hello\r\n\r\nhi\r\n")
    common = "name: n\ndescription: d\nseverity: low\nscore: 1\n"
    (d / "test_wrong.yml").write_text(
        "id: test_wrong\nsymbol: TEST_WRONG\n"
        + common
        + "expression: 'subject == \"bye\"'\nsamples: {hit: [hello.eml], miss: [missing.eml]}\n",
        encoding="utf-8",
    )
    (d / "test_unknown.yml").write_text(
        "id: test_unknown\nsymbol: TEST_UNKNOWN\nauthor: me\n"
        + common
        + "expression: 'true'\nsamples: {hit: [hello.eml]}\n",
        encoding="utf-8",
    )
    res = runner.invoke(app, ["rules", "check", str(d), "--data-dir", str(tmp_path / "var")])
    assert res.exit_code == 1
    out = res.output
    assert "unknown field(s) author" in out
    assert "sample missing.eml not found" in out
    assert "sample hello.eml must hit but did not" in out


def test_rules_list(tmp_path: Path) -> None:
    res = runner.invoke(app, ["rules", "list", "--data-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "qr_only_message" in res.output and "QR_ONLY_MESSAGE" in res.output
    res = runner.invoke(app, ["rules", "list", "--fields", "--data-dir", str(tmp_path)])
    assert "any_url_domain_in" in res.output and "attachments" in res.output


@pytest.mark.parametrize(
    ("rule_id", "sample"),
    [
        ("lure_link_to_throwaway_host", "lure_link_free_platform.eml"),
        ("bulk_kit_hidden_link", "bulk_kit_subject_tag.eml"),
        ("bulk_unsolicited_statement_in_body", "unsolicited_zh.eml"),
        ("bulk_optout_link_to_bare_ip", "optout_ip_link.eml"),
    ],
)
def test_inbound_only_signs_stay_silent_between_colleagues(rule_id: str, sample: str, evaluator: Evaluator) -> None:
    """A colleague's form link beside HR's wording, a spaced subject beside an intranet address, or
    a colleague's "如有打扰" is ordinary internal mail: these rules read inbound mail only (their
    samples hit as inbound)."""
    rules = RuleSet([load_rule(BUILTIN_DIR / f"{rule_id}.yml")])
    msg, env, findings = evaluator((BUILTIN_DIR / "samples" / sample).read_bytes())
    assert rules.evaluate(msg, env, findings)[0]
    internal = dataclasses.replace(env, direction=Direction.INTERNAL)
    assert not rules.evaluate(msg, internal, findings)[0]


def test_the_fast_yaml_loader_reads_every_builtin_rule_as_the_plain_one_does() -> None:
    """Rule files are read with libyaml's safe loader when PyYAML has it: the same documents."""
    import yaml

    from mailmoat.rules import engine

    files = engine.rule_files(engine.BUILTIN_DIR)
    assert len(files) > 20
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert engine.load_yaml(text) == yaml.load(text, Loader=yaml.SafeLoader), path
