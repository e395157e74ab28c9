"""Scan one raw message: parse once, run every analyzer, let the policy decide (shared by `scan` and the gateway)."""

from __future__ import annotations

from dataclasses import dataclass

from mailmoat.analyzers import registry
from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv, BaseAnalyzer
from mailmoat.analyzers.runner import ANALYZER_FAILED, run_analyzers
from mailmoat.config import Settings
from mailmoat.model import Envelope, Message, Symbol, Verdict
from mailmoat.parse import parse
from mailmoat.policy import Policy
from mailmoat.policy.site_lists import StoreLists


@dataclass
class ScanResult:
    message: Message
    verdict: Verdict


class Scanner:
    """Built once per process (analyzers compile their rules and models here), then called per message."""

    def __init__(self, settings: Settings, store: object | None = None) -> None:
        self.settings = settings
        env = AnalyzerEnv(settings=settings, store=store)  # type: ignore[arg-type]
        self.analyzers: list[BaseAnalyzer] = registry.build(env)
        symbols: dict[str, Symbol] = registry.all_symbols(
            registry.analyzer_classes(), extra=[ANALYZER_FAILED], settings=settings
        )
        # With a store, the allow and deny entries administrators keep there count too.
        lists = StoreLists(store) if store is not None else None
        self.policy = Policy(settings.policy, symbols, lists)

    async def scan(self, raw: bytes, envelope: Envelope) -> ScanResult:
        message = parse(raw, qr=self.settings.qr)
        ctx = AnalysisContext(message=message, envelope=envelope, settings=self.settings)
        findings = await run_analyzers(self.analyzers, ctx, self.settings.policy.analyzer_timeout)
        verdict = self.policy.decide(findings, envelope, message)
        return ScanResult(message=message, verdict=verdict)
