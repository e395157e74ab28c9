"""Runs analyzers concurrently, each within its time budget; a crash or time-out becomes a finding."""

from __future__ import annotations

import asyncio
import logging
import time

from mailmoat.analyzers.base import AnalysisContext, BaseAnalyzer
from mailmoat.model import Finding, Symbol

log = logging.getLogger(__name__)

ANALYZER_FAILED = Symbol("ANALYZER_FAILED", 3.0, "system", "An analyzer crashed or ran out of time on this message")


def _failure(analyzer: BaseAnalyzer, why: str) -> Finding:
    return Finding(
        symbol=ANALYZER_FAILED.name,
        score=ANALYZER_FAILED.score,
        evidence=f"{analyzer.name}: {why}",
        source="runner",
        group=ANALYZER_FAILED.group,
        data={"analyzer": analyzer.name, "error": why},
    )


async def _run_one(analyzer: BaseAnalyzer, ctx: AnalysisContext, budget: float) -> list[Finding]:
    try:
        return list(await asyncio.wait_for(analyzer.analyze(ctx), timeout=budget))
    except TimeoutError:
        return [_failure(analyzer, f"timed out after {budget:g}s")]
    except Exception as exc:
        log.exception("analyzer %s failed", analyzer.name)
        return [_failure(analyzer, f"{type(exc).__name__}: {exc}")]


async def run_analyzers(analyzers: list[BaseAnalyzer], ctx: AnalysisContext, budget: float) -> list[Finding]:
    """All findings, stage by stage (later stages see earlier findings in ctx.prior)."""
    findings: list[Finding] = []
    for stage in sorted({a.stage for a in analyzers}):
        group = [a for a in analyzers if a.stage == stage]
        ctx.prior = list(findings)
        ctx.deadline = time.monotonic() + budget
        results = await asyncio.gather(*(_run_one(a, ctx, budget) for a in group))
        for r in results:
            findings.extend(r)
    return findings
