"""Rules engine: a field it cannot hand to CEL (text with undecodable bytes) does not stop the rules."""

from __future__ import annotations

from pathlib import Path

from mailmoat.model import Envelope, Finding, Message
from mailmoat.rules import RuleSet, parse_rule


def _rule(rid: str, expression: str) -> object:
    text = (
        f"id: {rid}\nname: Test rule\ndescription: A rule for tests\nseverity: low\nsymbol: {rid.upper()}\n"
        f"score: 1.0\nexpression: '{expression}'\nsamples: {{hit: [a.eml], miss: [b.eml]}}\n"
    )
    return parse_rule(text, Path(f"/rules/{rid}.yml"))


def test_rules_engine_survives_a_string_it_cannot_convert() -> None:
    """An address read with surrogateescape (invalid UTF-8) cannot become a CEL string; the rules
    still run, over the text with the undecodable bytes replaced."""
    env = Envelope(mail_from="s\udcff@example.org", rcpt_tos=["al\udcffice@localhost", "bob@localhost"])
    prior = [Finding("EARLIER", 1.0, "evidence \udcfe here")]
    rules = [
        _rule("to_bob", 'recipients.exists(r, r == "bob@localhost")'),
        _rule("to_alice", 'recipients.exists(r, r == "al\\uFFFDice@localhost")'),  # each bad byte: U+FFFD
        _rule("from_s", 'mail_from.endsWith("@example.org")'),
        _rule("saw_earlier", '"EARLIER" in findings && finding_evidence["EARLIER"].startsWith("evidence")'),
        # reads another rule's finding: runs in a later layer, over findings built again
        _rule("after_bob", '"TO_BOB" in findings && finding_evidence["EARLIER"] == "evidence \\uFFFD here"'),
    ]
    hits, failed = RuleSet(rules).evaluate(Message(subject="hi"), env, prior)  # type: ignore[arg-type]
    assert failed == []
    assert sorted(h.rule.id for h in hits) == ["after_bob", "from_s", "saw_earlier", "to_alice", "to_bob"]


