"""Registry and runner: duplicate symbols stop start-up; crashing or slow analyzers become ANALYZER_FAILED."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from mailmoat.analyzers import registry
from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv, BaseAnalyzer
from mailmoat.analyzers.runner import ANALYZER_FAILED, run_analyzers
from mailmoat.config import Settings
from mailmoat.model import Action, Envelope, Finding, Message, Symbol
from mailmoat.policy import Policy


class Good(BaseAnalyzer):
    name: ClassVar[str] = "good"
    symbols: ClassVar[tuple[Symbol, ...]] = (Symbol("GOOD_SIGNAL", 1.0, "test", "fine"),)

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        return [self.finding("GOOD_SIGNAL", "seen")]


class Twin(BaseAnalyzer):
    name: ClassVar[str] = "twin"
    symbols: ClassVar[tuple[Symbol, ...]] = (Symbol("GOOD_SIGNAL", 2.0, "test", "same name"),)


class Crashing(BaseAnalyzer):
    name: ClassVar[str] = "crashing"

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        raise ValueError("boom")


class Slow(BaseAnalyzer):
    name: ClassVar[str] = "slow"

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        await asyncio.sleep(30)
        return []


class Waits(BaseAnalyzer):
    """Finishes after real waits (it runs on in a task once it has to wait)."""

    name: ClassVar[str] = "waits"
    symbols: ClassVar[tuple[Symbol, ...]] = (Symbol("WAITED", 0.0, "test", "answered after waiting"),)

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        return [self.finding("WAITED")]


class CrashesLater(BaseAnalyzer):
    name: ClassVar[str] = "crashes_later"

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        await asyncio.sleep(0.01)
        raise KeyError("late")


class Later(BaseAnalyzer):
    name: ClassVar[str] = "later"
    stage: ClassVar[int] = 1
    symbols: ClassVar[tuple[Symbol, ...]] = (Symbol("LATER_SAW", 0.5, "test", "saw earlier findings"),)

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        return [self.finding("LATER_SAW", ",".join(sorted(f.symbol for f in ctx.prior)))]


def test_duplicate_symbol_stops_start_up_with_clear_error() -> None:
    with pytest.raises(registry.RegistryError, match="symbol GOOD_SIGNAL declared by both good and twin"):
        registry.all_symbols([Good, Twin])


def test_scanner_start_up_stops_on_duplicate_symbols(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailmoat.scanner import Scanner

    monkeypatch.setattr(registry, "analyzer_classes", lambda: [Good, Twin])
    with pytest.raises(registry.RegistryError, match="GOOD_SIGNAL declared by both good and twin"):
        Scanner(settings)


def test_project_symbols_are_unique_and_include_rules(settings: Settings) -> None:
    table = registry.all_symbols(registry.analyzer_classes(), extra=[ANALYZER_FAILED], settings=settings)
    assert {"MISSING_MESSAGE_ID", "RULE_ERROR", "BEC_BANK_CHANGE_REPLY_ELSEWHERE", "ANALYZER_FAILED"} <= set(table)
    names = [c.name for c in registry.analyzer_classes()]
    assert "rules" in names and "headers" in names


def ctx_for(settings: Settings) -> AnalysisContext:
    return AnalysisContext(
        message=Message(), envelope=Envelope(mail_from="", rcpt_tos=["u@x.example"]), settings=settings
    )


async def test_crash_and_timeout_become_analyzer_failed(settings: Settings) -> None:
    env = AnalyzerEnv(settings=settings)
    analyzers: list[BaseAnalyzer] = [Good(env), Crashing(env), Slow(env), Waits(env), CrashesLater(env), Later(env)]
    findings = await run_analyzers(analyzers, ctx_for(settings), budget=0.2)
    by_symbol: dict[str, list[Finding]] = {}
    for f in findings:
        by_symbol.setdefault(f.symbol, []).append(f)
    failed = {f.data["analyzer"]: f for f in by_symbol["ANALYZER_FAILED"]}
    assert set(failed) == {"crashing", "slow", "crashes_later"}
    assert "ValueError: boom" in failed["crashing"].evidence
    assert "timed out" in failed["slow"].evidence
    assert "KeyError: 'late'" in failed["crashes_later"].evidence
    assert [f.source for f in by_symbol["WAITED"]] == ["waits"]
    # stage 1 ran after stage 0 and saw its findings, failures included
    assert by_symbol["LATER_SAW"][0].evidence == "ANALYZER_FAILED,ANALYZER_FAILED,ANALYZER_FAILED,GOOD_SIGNAL,WAITED"
    findings = [f for f in findings if f.data.get("analyzer") != "crashes_later" and f.symbol != "WAITED"]

    symbols = registry.all_symbols([Good, Later], extra=[ANALYZER_FAILED])
    envelope = Envelope(mail_from="", rcpt_tos=["u@x.example"])
    scored = Policy(settings.policy, symbols).decide(findings, envelope, Message())
    assert scored.action is Action.TAG  # 1 + 3 + 3 + 0.5 = 7.5: the failure counted, nothing passed silently
    settings.policy.analyzer_failure = "tempfail"
    held = Policy(settings.policy, symbols).decide(findings, envelope, Message())
    assert held.action is Action.TEMPFAIL
    assert "crashing: ValueError: boom" in held.reasons[0]


async def test_scanner_turns_a_crashing_analyzer_into_the_configured_outcome(settings: Settings) -> None:
    from mailmoat.scanner import Scanner

    settings.qr.enabled = False
    settings.policy.analyzer_failure = "tempfail"
    scanner = Scanner(settings)
    scanner.analyzers.append(Crashing(AnalyzerEnv(settings=settings)))
    raw = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
    result = await scanner.scan(raw, Envelope(mail_from="a@example.org", rcpt_tos=["b@example.org"]))
    assert result.verdict.action is Action.TEMPFAIL
    assert "ANALYZER_FAILED" in result.verdict.symbols
