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


def _outcome(analyzer: BaseAnalyzer, task: asyncio.Task[list[Finding]], budget: float) -> list[Finding]:
    if not task.done():
        task.cancel()
        return [_failure(analyzer, f"timed out after {budget:g}s")]
    exc = task.exception()
    if exc is not None:
        log.error("analyzer %s failed", analyzer.name, exc_info=exc)
        return [_failure(analyzer, f"{type(exc).__name__}: {exc}")]
    return list(task.result())


async def run_analyzers(analyzers: list[BaseAnalyzer], ctx: AnalysisContext, budget: float) -> list[Finding]:
    """All findings, stage by stage (later stages see earlier findings in ctx.prior)."""
    findings: list[Finding] = []
    for stage in sorted({a.stage for a in analyzers}):
        group = [a for a in analyzers if a.stage == stage]
        ctx.prior = list(findings)
        ctx.deadline = time.monotonic() + budget
        # One task per analyzer and one wait for the stage: a wait_for per analyzer would cost a
        # second task each, on every message.
        tasks = [asyncio.ensure_future(a.analyze(ctx)) for a in group]
        try:
            await asyncio.wait(tasks, timeout=budget)
        except BaseException:
            for t in tasks:
                t.cancel()
            raise
        for a, t in zip(group, tasks, strict=True):
            findings.extend(_outcome(a, t, budget))
    return findings
