"""Rules engine: strict rule files, CEL compile checks, evaluation, functions, site reload, analyzer."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mailmoat.analyzers import registry
from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.rules import RulesAnalyzer
from mailmoat.config import RulesSettings, Settings
from mailmoat.model import Address, Document, Envelope, Finding, Message, Part, QrCode, Url
from mailmoat.rules import RuleError, RuleLibrary, RuleSet, parse_rule
from mailmoat.rules import functions as fn
from mailmoat.scanner import Scanner


def rule_text(rid: str = "test_rule", expression: str = 'subject.contains("x")', **extra: str) -> str:
    fields = {
        "id": rid,
        "name": "Test rule",
        "description": "A rule for tests",
        "severity": "low",
        "symbol": rid.upper(),
        "score": "1.5",
        "expression": f"'{expression}'",
        "samples": "{hit: [a.eml], miss: [b.eml]}",
        **extra,
    }
    return "".join(f"{k}: {v}\n" for k, v in fields.items() if v != "")


def rule(expression: str, rid: str = "test_rule", **extra: str) -> object:
    return parse_rule(rule_text(rid, expression, **extra), Path(f"/rules/{rid}.yml"))


def message(**kw: object) -> Message:
    m = Message(
        subject="Your password expires",
        from_=Address("IT Desk", "it@corp.example"),
        reply_to=[Address("", "helpdesk.corp@gmail.com")],
        to=[Address("", "u@example.org")],
        text="Click http://login.evil.example/x to keep your password",
        headers=[
            ("From", "IT Desk <it@corp.example>"),
            ("Subject", "Your password expires"),
            ("X-Tag", "a"),
            ("X-Tag", "b"),
        ],
        urls=[
            Url(
                "http://login.evil.example/x",
                scheme="http",
                host="login.evil.example",
                registrable_domain="evil.example",
                source="text",
            ),
            Url("http://203.0.113.9/p", scheme="http", host="203.0.113.9", source="href", is_ip=True),
        ],
        parts=[
            Part("1", "text/plain"),
            Part(
                "2",
                "application/pdf",
                filename="Scan.PDF.exe",
                is_attachment=True,
                true_ext="exe",
                sha256="ab" * 32,
            ),
        ],
        qr_codes=[QrCode("https://qr.evil.example/a", source="cid")],
        documents=[Document("2", "Scan.PDF.exe", "pdf", text="Resgate agora", locked=True, password="123")],
    )
    for k, v in kw.items():
        setattr(m, k, v)
    return m


ENV = Envelope(mail_from="bounce@corp.example", rcpt_tos=["u@example.org"])


def evaluate(
    r: object, m: Message | None = None, prior: list[Finding] | None = None
) -> tuple[list[object], list[object]]:
    hits, failed = RuleSet([r]).evaluate(m or message(), ENV, prior or [])  # type: ignore[list-item]
    return hits, failed  # type: ignore[return-value]


# -- rule files ----------------------------------------------------------------------------------


def test_valid_rule_parses() -> None:
    r = parse_rule(rule_text(tags="[a, b]", group="content"), Path("/rules/test_rule.yml"))
    assert (r.id, r.symbol, r.score, r.group, r.tags) == (
        "test_rule",
        "TEST_RULE",
        1.5,
        "content",
        ["a", "b"],
    )
    assert r.samples_hit == ["a.eml"] and r.samples_miss == ["b.eml"]
    assert r.fields == {"subject"}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (rule_text(colour="red"), "unknown field.*colour"),
        (rule_text(severity=""), "missing field.*severity"),
        (rule_text(severity="urgent"), "severity must be one of"),
        (rule_text(symbol="lower_case"), "UPPER_SNAKE"),
        (rule_text(score="high"), "score must be a number"),
        (rule_text(samples="{hit: [a.eml], maybe: [b.eml]}"), "under samples: maybe"),
        (rule_text(expression="subject =="), "does not compile"),
        (rule_text(expression="subjekt == 1"), "unknown field.*subjekt"),
        (rule_text(expression="frobnicate(subject)"), "unknown function.*frobnicate"),
        (rule_text(expression="urls.exists(u, u.host == nosuch)"), "unknown field.*nosuch"),
        ("id: [unclosed\n", "not valid YAML"),
        ("- a\n- b\n", "one mapping"),
    ],
)
def test_bad_rule_files_are_rejected(text: str, match: str) -> None:
    with pytest.raises(RuleError, match=match):
        parse_rule(text, Path("/rules/test_rule.yml"))


def test_id_must_match_file_name() -> None:
    with pytest.raises(RuleError, match="must equal the file name"):
        parse_rule(rule_text("test_rule"), Path("/rules/test_other.yml"))
    with pytest.raises(RuleError, match="<category>_<what>"):
        parse_rule(rule_text("Bad-Name"), Path("/rules/Bad-Name.yml"))


# -- evaluation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "hit"),
    [
        ('subject.contains("password")', True),
        ('matches(body, "(?i)click\\\\s+http")', True),
        ('contains_any(subject, ["PASSWORD", "mot de passe"])', True),
        ('count_any(body, ["click", "password", "absent"]) == 2', True),
        ("reply_to.exists(r, is_freemail(r.domain) && r.domain != from.domain)", True),
        ('any_url_domain_in(["evil.example"])', True),
        ('any_url_domain_in(["good.example"])', False),
        ('urls.exists(u, u.is_ip && u.source == "href")', True),
        ('"evil.example" in url_domains', True),
        ('any_attachment_ext_in(["exe"])', True),
        ('attachments.exists(a, has_double_ext(a.name) && a.ext == "exe")', True),
        ('size(qr) == 1 && qr[0].startsWith("https://qr.")', True),
        ('headers["x-tag"] == "a" && size(header_values["x-tag"]) == 2', True),
        ('"message-id" in headers', False),
        ('direction == "inbound" && mail_from_domain == "corp.example"', True),
        (
            'domain_in("a.b.evil.example", ["evil.example"]) && !domain_in("notevil.example", ["evil.example"])',
            True,
        ),
        ('registrable("a.b.example.co.uk") == "example.co.uk"', True),
        ('lower(display_name) == "it desk"', True),
        ('attachments.map(a, a.name).join(",") == "Scan.PDF.exe"', True),
        ('documents.exists(d, d.kind == "pdf" && d.opened && d.text.contains("Resgate"))', True),
        ('documents.exists(d, d.kind == "office")', False),
    ],
)
def test_expressions_over_the_message(expression: str, hit: bool) -> None:
    hits, failed = evaluate(rule(expression))
    assert not failed
    assert bool(hits) is hit


def test_rules_see_earlier_findings() -> None:
    r = rule('"QR_IN_CID_ATTACHMENT" in findings && finding_evidence["QR_IN_CID_ATTACHMENT"].contains("cid")')
    prior = [Finding("QR_IN_CID_ATTACHMENT", 3.0, evidence="cid:img1 -> part 2")]
    assert evaluate(r, prior=prior)[0]
    assert not evaluate(r, prior=[])[0]


def test_a_rule_reads_another_rules_finding_whatever_the_order() -> None:
    """A rule that names another rule's symbol runs after it and sees its finding and evidence;
    when that rule does not hit, neither does the reader."""
    reader = rule(
        '"BASE_RULE" in findings && finding_evidence["BASE_RULE"] == "base saw it" && suspect_sender',
        rid="reader_rule",
    )
    base = rule('subject.contains("password")', rid="base_rule", evidence="'\"base saw it\"'")
    m = message(from_=Address("IT Desk", "it.desk@gmail.com"))
    hits, failed = RuleSet([reader, base]).evaluate(m, ENV, [])  # type: ignore[list-item]
    assert not failed
    assert [h.rule.symbol for h in hits] == ["BASE_RULE", "READER_RULE"]
    hits, _ = RuleSet([reader, base]).evaluate(message(subject="Lunch"), ENV, [])  # type: ignore[list-item]
    assert hits == []
    # Rules that read each other in a circle share a layer and do not see each other.
    a = rule('"B_RULE" in findings || subject.contains("password")', rid="a_rule")
    b = rule('"A_RULE" in findings && subject.contains("lunch")', rid="b_rule")
    ruleset = RuleSet([a, b])  # type: ignore[list-item]
    assert len(ruleset.layers) == 1
    hits, failed = ruleset.evaluate(message(), ENV, [])
    assert [h.rule.symbol for h in hits] == ["A_RULE"] and not failed


def test_evidence_expression_and_fallback() -> None:
    r = rule('subject.contains("password")', evidence="'\"link to \" + urls[0].host'")
    hits, _ = evaluate(r)
    assert hits[0].evidence == "link to login.evil.example"  # type: ignore[attr-defined]
    r2 = rule('subject.contains("password")', evidence="'urls[5].host'")
    assert evaluate(r2)[0][0].evidence == "Test rule"  # type: ignore[attr-defined]


def test_runtime_errors_and_non_bool_results_are_reported_not_raised() -> None:
    _, failed = evaluate(rule('headers["no-such-header"] == "x"'))
    assert failed and "KeyError" in failed[0][1]  # type: ignore[index]
    _, failed = evaluate(rule("size(urls)"))
    assert failed and "not bool" in failed[0][1]  # type: ignore[index]


def test_empty_message_does_not_break_rules() -> None:
    r = rule('reply_to.exists(r, is_freemail(r.domain)) || any_url_domain_in(["x.example"]) || subject == ""')
    hits, failed = RuleSet([r]).evaluate(Message(), Envelope(mail_from="", rcpt_tos=[]), [])  # type: ignore[list-item]
    assert hits and not failed


def test_function_helpers_directly() -> None:
    assert fn.ext("a.TAR.GZ") == "gz" and fn.ext("noext") == ""
    assert fn.has_double_ext("invoice.pdf.exe") and fn.has_double_ext("scan.jpg   .scr")
    assert not fn.has_double_ext("setup.exe") and not fn.has_double_ext("report.final.pdf")
    assert fn.is_freemail("QQ.com") and not fn.is_freemail("corp.example")
    assert fn.matches(None, "x") is False
    # A Chinese character or full-width sign weighs three letters; CEL's size() counts UTF-8 bytes.
    assert fn.text_size("scan me") == 7 and fn.text_size("扫码领取，") == 15 and fn.text_size(None) == 0
    assert fn.text_size("é" * 10) == 10
    # Case-insensitive, and for Chinese script-insensitive: 工資卡 is 工资卡 (either side may be Traditional).
    assert fn.contains_any("請把工資卡變更為新的賬戶", ["工资卡"]) and fn.icontains("更换工资卡", "工資卡")
    assert fn.count_any("GIFT card 禮品卡", ["gift card", "礼品卡", "购物卡"]) == 2
    assert not fn.contains_any("工资单", ["工资卡"])
    # A greeting names the address in the opening; a footer naming it, or a longer address, does not count.
    assert fn.greets("Dear staff@example.org,\nYour mailbox is full.", "Staff@Example.org")
    assert fn.greets("尊敬的staff@example.org用户：您的邮箱已满", "staff@example.org")
    assert fn.greets("Olá staff@example.org!", "staff@example.org", ["olá"])
    assert not fn.greets("Dear staff@example.org.uk,", "staff@example.org")
    assert not fn.greets("Dear Jane,\nThis message was sent to staff@example.org.", "staff@example.org")
    assert not fn.greets(("x " * 400) + "Dear staff@example.org", "staff@example.org")
    assert not fn.greets("Dear staff@example.org", "") and not fn.greets(None, "staff@example.org")
    # Addresses written in a text, their domains once each; a host alone or an @handle is none.
    text = "Email: Jane.Doe@Gmail.com or jane@gmail.com, office: ops@corp.example.org; see www.example.com, @jane"
    assert fn.address_domains(text) == ["gmail.com", "corp.example.org"] and fn.address_domains(None) == []


# -- library: built-in + site, reload, disabled, duplicates -------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def write_rule(d: Path, rid: str, expression: str, mtime: float | None = None) -> Path:
    p = d / f"{rid}.yml"
    p.write_text(rule_text(rid, expression), encoding="utf-8")
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


def test_site_rules_reload_when_files_change(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    write_rule(site, "site_one", 'subject.contains("password")', mtime=1_000_000)
    clock = Clock()
    lib = RuleLibrary(RulesSettings(site_dir=str(site)), clock=clock)
    ids = {r.id for r in lib.ruleset.rules}
    assert "site_one" in ids and "qr_only_message" in ids  # built-ins are there too

    write_rule(site, "site_two", "true", mtime=1_000_100)
    assert lib.refresh() is False  # less than a second later: not even looked at
    clock.t += 1.5
    assert lib.refresh() is True
    assert {"site_one", "site_two"} <= {r.id for r in lib.ruleset.rules}

    # A broken edit keeps the last good version and reports the error.
    (site / "site_two.yml").write_text("id: site_two\nexpression: 'nope ==\n", encoding="utf-8")
    os.utime(site / "site_two.yml", (1_000_200, 1_000_200))
    clock.t += 1.5
    assert lib.refresh() is True
    assert "site_two" in {r.id for r in lib.ruleset.rules}
    assert any("site_two" in str(e) for e in lib.errors)

    (site / "site_one.yml").unlink()
    clock.t += 1.5
    assert lib.refresh() is True
    assert "site_one" not in {r.id for r in lib.ruleset.rules}
    clock.t += 1.5
    assert lib.refresh() is False  # nothing changed since


def test_missing_site_dir_is_reported_and_builtins_still_run(tmp_path: Path) -> None:
    lib = RuleLibrary(RulesSettings(site_dir=str(tmp_path / "nope")))
    assert any("not a directory" in str(e) for e in lib.errors)
    assert "qr_only_message" in {r.id for r in lib.ruleset.rules}


def test_data_dir_rules_and_console_disabled_list(tmp_path: Path) -> None:
    data = tmp_path / "var"
    clock = Clock()
    lib = RuleLibrary(RulesSettings(), data_dir=data, clock=clock)
    assert lib.errors == [] and "qr_only_message" in {r.id for r in lib.ruleset.rules}
    (data / "rules").mkdir(parents=True)  # where the console installs uploaded rules
    write_rule(data / "rules", "site_console", "true")
    (data / "rules-disabled.txt").write_text("qr_only_message\n", encoding="utf-8")
    clock.t += 1.5
    assert lib.refresh() is True
    ids = {r.id for r in lib.ruleset.rules}
    assert "site_console" in ids and "qr_only_message" not in ids
    (data / "rules-disabled.txt").write_text("# none\n", encoding="utf-8")
    clock.t += 1.5
    assert lib.refresh() is True
    assert "qr_only_message" in {r.id for r in lib.ruleset.rules}


def test_disabled_and_duplicate_rules(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    write_rule(site, "site_dup", "true")
    (site / "site_dup2.yml").write_text(rule_text("site_dup2", "true", symbol="SITE_DUP"), encoding="utf-8")
    (site / "site_taken.yml").write_text(
        rule_text("site_taken", "true", symbol="MIME_DEFECT"), encoding="utf-8"
    )
    lib = RuleLibrary(
        RulesSettings(site_dir=str(site), disabled=["qr_only_message"]), reserved={"MIME_DEFECT"}
    )
    ids = {r.id for r in lib.ruleset.rules}
    assert "qr_only_message" not in ids
    assert "site_dup" in ids and "site_dup2" not in ids and "site_taken" not in ids
    text = " ".join(str(e) for e in lib.errors)
    assert "symbol SITE_DUP already used" in text and "MIME_DEFECT is already declared" in text


# -- analyzer and registry ---------------------------------------------------------------------------


async def test_rules_analyzer_emits_rule_findings(settings: Settings, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    write_rule(site, "site_boom", 'headers["absent"] == "x"')
    write_rule(site, "site_prior", '"SOME_EARLIER" in findings')
    settings.rules.site_dir = str(site)
    analyzer = RulesAnalyzer(AnalyzerEnv(settings=settings))
    assert analyzer.stage == 2
    one_link = message().urls[:1]  # with a second link to click, the code is not the only way on
    ctx = AnalysisContext(
        message=message(urls=one_link), envelope=ENV, settings=settings, prior=[Finding("SOME_EARLIER", 1.0)]
    )
    found = {f.symbol: f for f in await analyzer.analyze(ctx)}
    assert found["QR_ONLY_MESSAGE"].source == "rule:qr_only_message"
    assert found["QR_ONLY_MESSAGE"].data["severity"] == "medium"
    assert (
        found["QR_ONLY_MESSAGE"].evidence
        == "QR code (https://qr.evil.example/a) with text of size 55 and no other links to click"
    )
    ctx = AnalysisContext(message=message(), envelope=ENV, settings=settings)
    assert "QR_ONLY_MESSAGE" not in {f.symbol for f in await analyzer.analyze(ctx)}
    assert "SITE_PRIOR" in found
    assert found["RULE_ERROR"].evidence.startswith("site_boom: KeyError")


def test_registry_sees_rule_symbols_and_stops_on_clashes(settings: Settings, tmp_path: Path) -> None:
    table = registry.all_symbols(registry.analyzer_classes(), settings=settings)
    assert table["QR_ONLY_MESSAGE"].score == 3.0
    assert "RULE_ERROR" in table and "MIME_DEFECT" in table
    site = tmp_path / "site"
    site.mkdir()
    (site / "site_clash.yml").write_text(
        rule_text("site_clash", "true", symbol="MIME_DEFECT"), encoding="utf-8"
    )
    settings.rules.site_dir = str(site)
    with pytest.raises(registry.RegistryError, match="MIME_DEFECT"):
        registry.all_symbols(registry.analyzer_classes(), settings=settings)


async def test_gateway_scanner_picks_up_a_new_site_rule_without_restart(
    settings: Settings, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    settings.rules.site_dir = str(site)
    settings.qr.enabled = False
    scanner = Scanner(settings)
    raw = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: gift cards please\r\n\r\nurgent\r\n"
    env = Envelope(mail_from="a@example.org", rcpt_tos=["b@example.org"])
    assert "SITE_GIFT" not in (await scanner.scan(raw, env)).verdict.symbols
    write_rule(site, "site_gift", 'subject.contains("gift cards")')
    await asyncio.sleep(1.1)  # the site directory is looked at no more than once a second
    verdict = (await scanner.scan(raw, env)).verdict
    assert verdict.symbols.get("SITE_GIFT") == 1.5
