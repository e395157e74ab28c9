"""Evaluates every rule file (built-in and site) over the message; the last stage, so rules see every other finding."""

from __future__ import annotations

from typing import ClassVar

from mailmoat.analyzers import registry
from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv, BaseAnalyzer
from mailmoat.config import Settings
from mailmoat.model import Finding, Symbol
from mailmoat.rules import RuleLibrary

RULE_ERROR = Symbol("RULE_ERROR", 0.0, "rules", "A rule expression could not be evaluated on this message")


class RulesAnalyzer(BaseAnalyzer):
    name: ClassVar[str] = "rules"
    symbols: ClassVar[tuple[Symbol, ...]] = (RULE_ERROR,)
    # After impersonation (stage 1, which itself waits for the authentication results): rules
    # combine its findings (IMPERSONATION_EXECUTIVE, DISPLAY_NAME_BRAND) with their own conditions.
    stage: ClassVar[int] = 2

    @classmethod
    def dynamic_symbols(cls, settings: Settings | None) -> tuple[Symbol, ...]:
        """One symbol per rule file (built-in, plus the site directory when settings are given)."""
        if settings is None:
            return tuple(r.as_symbol() for r in RuleLibrary(Settings().rules).all_rules())
        lib = RuleLibrary(settings.rules, data_dir=settings.data_path)
        return tuple(r.as_symbol() for r in lib.all_rules())

    def __init__(self, env: AnalyzerEnv) -> None:
        super().__init__(env)
        reserved = {s.name for c in registry.analyzer_classes() for s in c.symbols}
        self.library = RuleLibrary(env.settings.rules, reserved=reserved, data_dir=env.settings.data_path)

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        self.library.refresh()
        hits, failed = self.library.ruleset.evaluate(ctx.message, ctx.envelope, ctx.prior)
        out = [h.finding() for h in hits]
        for rule, error in failed:
            out.append(self.finding(RULE_ERROR.name, f"{rule.id}: {error}", {"rule": rule.id}))
        return out
