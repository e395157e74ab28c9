"""Policy: thresholds, overrides, composites, group caps, direction/domain profiles, lists, failures."""

from __future__ import annotations

import pytest

from mailmoat.config import PolicySettings, PolicyThresholds
from mailmoat.model import Action, Address, Direction, Envelope, Finding, Message, Symbol
from mailmoat.policy import Policy, PolicyError

SYMS = {
    s.name: s
    for s in [
        Symbol("QR_IN_CID_ATTACHMENT", 3.0, "qr", "qr"),
        Symbol("LEXICON_SUBSIDY", 2.0, "content", "lexicon"),
        Symbol("URL_BAD", 4.0, "urls", "bad url"),
        Symbol("URL_WORSE", 6.0, "urls", "worse url"),
        Symbol("BAYES_SPAM", 4.0, "bayes", "classifier"),
        Symbol("ANALYZER_FAILED", 3.0, "system", "failed"),
    ]
}


def f(
    symbol: str, score: float | None = None, evidence: str = "", data: dict[str, object] | None = None
) -> Finding:
    sym = SYMS[symbol]
    return Finding(
        symbol=symbol,
        score=sym.score if score is None else score,
        evidence=evidence,
        source="test",
        group=sym.group,
        data=dict(data or {}),
    )


def env(rcpts: list[str] | None = None, direction: Direction = Direction.INBOUND, **kw: str) -> Envelope:
    return Envelope(
        mail_from=kw.get("mail_from", "x@sender.example"),
        rcpt_tos=rcpts or ["u@example.org"],
        direction=direction,
        peer_ip=kw.get("peer_ip", "198.51.100.7"),
    )


def msg(from_addr: str = "x@sender.example") -> Message:
    return Message(from_=Address("X", from_addr))


def decide(settings: PolicySettings, findings: list[Finding], **kw: object) -> object:
    return Policy(settings, SYMS).decide(findings, kw.get("envelope", env()), kw.get("message", msg()))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("findings", "action"),
    [
        ([], Action.DELIVER),
        ([f("URL_BAD", 5.0)], Action.TAG),
        ([f("URL_BAD", 10.0)], Action.QUARANTINE),
        ([f("URL_BAD", 12.0), f("URL_WORSE", 8.0)], Action.REJECT),
    ],
)
def test_thresholds_choose_action(findings: list[Finding], action: Action) -> None:
    v = Policy(PolicySettings(), SYMS).decide(findings, env(), msg())
    assert v.action is action
    assert v.score == pytest.approx(sum(x.score for x in findings))


def test_reasons_name_top_findings_with_evidence() -> None:
    v = Policy(PolicySettings(), SYMS).decide(
        [f("URL_WORSE", evidence="http://evil.example/login"), f("LEXICON_SUBSIDY", evidence="补贴")],
        env(),
        msg(),
    )
    assert v.action is Action.TAG
    assert "tag threshold" in v.reasons[0]
    assert v.reasons[1] == "URL_WORSE +6.0: http://evil.example/login"
    assert v.reasons[2] == "LEXICON_SUBSIDY +2.0: 补贴"


def test_score_override_keeps_dynamic_proportion() -> None:
    s = PolicySettings(scores={"URL_BAD": 8.0, "BAYES_SPAM": 2.0})
    v = Policy(s, SYMS).decide([f("URL_BAD"), f("BAYES_SPAM", 2.0)], env(), msg())
    assert v.symbols == {"URL_BAD": 8.0, "BAYES_SPAM": 1.0}  # BAYES_SPAM was half its default
    assert v.score == 9.0


def test_unknown_symbol_in_scores_is_an_error() -> None:
    with pytest.raises(PolicyError, match="NO_SUCH"):
        Policy(PolicySettings(scores={"NO_SUCH": 1.0}), SYMS)


def test_group_cap_scales_group_down() -> None:
    s = PolicySettings(group_caps={"urls": 5.0})
    v = Policy(s, SYMS).decide([f("URL_BAD"), f("URL_WORSE"), f("LEXICON_SUBSIDY")], env(), msg())
    assert v.score == pytest.approx(7.0)
    urls = [x for x in v.findings if x.group == "urls"]
    assert sum(x.score for x in urls) == pytest.approx(5.0)
    assert urls[0].data["uncapped_score"] == 4.0


def test_composite_fires_and_is_explained() -> None:
    s = PolicySettings(
        composites={
            "QR_SUBSIDY_LURE": {
                "expr": "QR_IN_CID_ATTACHMENT && LEXICON_SUBSIDY",
                "score": 6.0,
                "group": "qr",
            },
            "NOT_BAYES": {"expr": "URL_BAD && !(BAYES_SPAM || URL_WORSE)", "score": 1.0},
        }
    )
    p = Policy(s, SYMS)
    v = p.decide([f("QR_IN_CID_ATTACHMENT"), f("LEXICON_SUBSIDY")], env(), msg())
    assert v.symbols["QR_SUBSIDY_LURE"] == 6.0
    assert v.action is Action.QUARANTINE  # 3 + 2 + 6
    assert any(r == "QR_SUBSIDY_LURE +6.0: QR_IN_CID_ATTACHMENT && LEXICON_SUBSIDY" for r in v.reasons)
    assert "QR_SUBSIDY_LURE" not in p.decide([f("QR_IN_CID_ATTACHMENT")], env(), msg()).symbols
    assert "NOT_BAYES" in p.decide([f("URL_BAD")], env(), msg()).symbols
    assert "NOT_BAYES" not in p.decide([f("URL_BAD"), f("BAYES_SPAM")], env(), msg()).symbols


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"expr": "QR_IN_CID_ATTACHMENT && NOPE", "score": 1.0}, "unknown symbol"),
        ({"expr": "QR_IN_CID_ATTACHMENT &&", "score": 1.0}, "unexpected end"),
        ({"expr": "(URL_BAD", "score": 1.0}, "unexpected end"),
        ({"expr": "(URL_BAD URL_WORSE)", "score": 1.0}, r"missing '\)'"),
        ({"expr": "URL_BAD + 1", "score": 1.0}, "unexpected"),
        ({"expr": "URL_BAD", "scor": 1.0}, "unknown key"),
        ({"score": 1.0}, "missing expr"),
    ],
)
def test_bad_composites_are_config_errors(spec: dict[str, object], match: str) -> None:
    with pytest.raises(PolicyError, match=match):
        Policy(PolicySettings(composites={"C": spec}), SYMS)


def test_composite_cannot_shadow_a_symbol() -> None:
    with pytest.raises(PolicyError, match="already declared"):
        Policy(PolicySettings(composites={"URL_BAD": {"expr": "URL_WORSE", "score": 1.0}}), SYMS)


def test_direction_override_thresholds_and_scores() -> None:
    s = PolicySettings(
        direction={"internal": {"thresholds": {"tag": 8.0}, "scores": {"BAYES_SPAM": 0.0}}},
    )
    p = Policy(s, SYMS)
    findings = [f("URL_BAD", 6.0), f("BAYES_SPAM")]
    assert p.decide(findings, env(), msg()).action is Action.QUARANTINE  # 10 inbound
    v = p.decide(findings, env(direction=Direction.INTERNAL), msg())
    assert v.score == 6.0 and v.action is Action.DELIVER
    assert "internal policy" in v.reasons[0]


def test_domain_override_strictest_recipient_wins() -> None:
    s = PolicySettings(domain={"strict.example": {"thresholds": {"quarantine": 4.0}}})
    p = Policy(s, SYMS)
    findings = [f("URL_BAD", 4.5)]
    assert p.decide(findings, env(["a@example.org"]), msg()).action is Action.DELIVER
    assert p.decide(findings, env(["a@sub.strict.example"]), msg()).action is Action.QUARANTINE
    v = p.decide(findings, env(["a@example.org", "b@strict.example"]), msg())
    assert v.action is Action.QUARANTINE and "strict.example" in v.reasons[0]


def test_bad_override_tables_are_errors() -> None:
    with pytest.raises(PolicyError, match="unknown direction"):
        Policy(PolicySettings(direction={"sideways": {}}), SYMS)
    with pytest.raises(PolicyError, match="unknown key"):
        Policy(PolicySettings(domain={"x.example": {"treshold": {}}}), SYMS)
    with pytest.raises(PolicyError, match="unknown threshold"):
        Policy(PolicySettings(domain={"x.example": {"thresholds": {"warn": 1}}}), SYMS)
    with pytest.raises(PolicyError, match=r"policy.direction.internal.scores: unknown symbol\(s\) TYPO"):
        Policy(PolicySettings(direction={"internal": {"scores": {"TYPO": 1.0}}}), SYMS)
    with pytest.raises(PolicyError, match="CIDR"):
        Policy(PolicySettings(allow_ips=["not-an-ip"]), SYMS)
    with pytest.raises(PolicyError, match="analyzer_failure"):
        Policy(PolicySettings(analyzer_failure="ignore"), SYMS)


def test_allow_and_deny_lists() -> None:
    s = PolicySettings(
        allow_senders=["Boss@Partner.example"],
        allow_ips=["192.0.2.0/24"],
        deny_domains=["spam.example"],
    )
    p = Policy(s, SYMS)
    bad = [f("URL_WORSE", 25.0)]
    v = p.decide(bad, env(mail_from="boss@partner.example"), msg("boss@partner.example"))
    assert v.action is Action.DELIVER and "ALLOWLISTED" in v.symbols
    assert "allowlisted: sender boss@partner.example" in v.reasons[0]
    v = p.decide(bad, env(peer_ip="192.0.2.55"), msg())
    assert v.action is Action.DELIVER and "client IP 192.0.2.55" in v.reasons[0]
    v = p.decide([], env(mail_from="a@mx.spam.example"), msg("a@mx.spam.example"))
    assert v.action is Action.REJECT and "DENYLISTED" in v.symbols
    # deny beats allow
    v = p.decide([], env(mail_from="a@spam.example", peer_ip="192.0.2.1"), msg("a@spam.example"))
    assert v.action is Action.REJECT


def test_staff_reports_reach_the_report_mailbox() -> None:
    p = Policy(PolicySettings(report_addresses=["Phish@Example.org"]), SYMS)
    bad = [f("URL_WORSE", 25.0)]
    colleague = {"mail_from": "bob@example.org"}
    # A colleague forwards a phish to the report mailbox: scanned, recorded, delivered tagged.
    v = p.decide(bad, env(["phish@example.org"], Direction.INTERNAL, **colleague), msg("bob@example.org"))
    assert v.action is Action.TAG and v.score == 25.0 and "STAFF_REPORT" in v.symbols
    assert v.reasons[0] == "staff report to phish@example.org: would be quarantine, delivered tagged instead"
    # Copied to a colleague too, or sent from outside to the same address: judged as usual.
    v = p.decide(bad, env(["phish@example.org", "amy@example.org"], Direction.INTERNAL, **colleague), msg())
    assert v.action is Action.QUARANTINE and "STAFF_REPORT" not in v.symbols
    v = p.decide(bad, env(["phish@example.org"]), msg())
    assert v.action is Action.REJECT and "STAFF_REPORT" not in v.symbols
    # A clean report is delivered as it is, with the note.
    v = p.decide([], env(["phish@example.org"], Direction.INTERNAL, **colleague), msg())
    assert v.action is Action.DELIVER and v.reasons[0] == "staff report to phish@example.org"
    with pytest.raises(PolicyError, match="report_addresses: not an address: phish"):
        Policy(PolicySettings(report_addresses=["phish"]), SYMS)


def test_sender_allow_needs_dmarc_not_failing() -> None:
    p = Policy(PolicySettings(allow_domains=["partner.example"]), SYMS)
    dmarc_fail = Finding("X", 0.0, data={"authres": {"method": "dmarc", "result": "fail"}})
    v = p.decide(
        [f("URL_WORSE", 12.0), dmarc_fail], env(mail_from="x@partner.example"), msg("x@partner.example")
    )
    assert v.action is Action.QUARANTINE
    assert "ALLOWLISTED" not in v.symbols
    assert any("DMARC failed" in r for r in v.reasons)


def test_analyzer_failure_outcomes() -> None:
    failed = f("ANALYZER_FAILED", evidence="qr: timed out after 2s")
    assert Policy(PolicySettings(), SYMS).decide([failed], env(), msg()).action is Action.DELIVER
    p = Policy(PolicySettings(analyzer_failure="tempfail"), SYMS)
    v = p.decide([failed], env(), msg())
    assert v.action is Action.TEMPFAIL
    assert "qr: timed out after 2s" in v.reasons[0]
    # A message that is already bad enough is not held back for a retry.
    assert p.decide([failed, f("URL_WORSE", 20.0)], env(), msg()).action is Action.REJECT


def test_thresholds_from_settings_object() -> None:
    s = PolicySettings(thresholds=PolicyThresholds(tag=1.0, quarantine=2.0, reject=3.0))
    assert Policy(s, SYMS).decide([f("LEXICON_SUBSIDY")], env(), msg()).action is Action.QUARANTINE


def test_non_finite_scores_do_not_pass_silently() -> None:
    v = Policy(PolicySettings(), SYMS).decide(
        [f("BAYES_SPAM", float("nan")), f("URL_WORSE", 11.0)], env(), msg()
    )
    assert v.action is Action.QUARANTINE and v.score == 11.0
    assert v.findings[0].data["invalid_score"] == "nan"


def test_content_signs_alone_never_tag_in_any_direction() -> None:
    # The content group (heuristics and lure wording) only tips mail other engines find suspect.
    s = PolicySettings()
    p = Policy(s, SYMS)
    for d in Direction:
        over = s.direction.get(d.value, {})
        tag = over.get("thresholds", {}).get("tag", s.thresholds.tag)
        cap = over.get("group_caps", {}).get("content", s.group_caps["content"])
        assert cap < tag, d
        wording = [Finding(f"W{i}", 2.0, source="test", group="content") for i in range(5)]
        assert p.decide(wording, env(direction=d), msg()).action is Action.DELIVER, d
