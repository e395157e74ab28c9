"""Runs analyzers concurrently, each within its time budget; a crash or time-out becomes a finding."""

from __future__ import annotations

import asyncio
import logging
import time
import types
from collections.abc import Coroutine, Generator
from typing import Any, cast

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


def _outcome(analyzer: BaseAnalyzer, started: _Started, budget: float) -> list[Finding]:
    if isinstance(started, asyncio.Future):
        if not started.done():
            started.cancel()
            return [_failure(analyzer, f"timed out after {budget:g}s")]
        exc = started.exception()
        if exc is None:
            return list(started.result())
    elif isinstance(started, BaseException):
        exc = started
    else:
        return list(started)
    log.error("analyzer %s failed", analyzer.name, exc_info=exc)
    return [_failure(analyzer, f"{type(exc).__name__}: {exc}")]


# An analyzer's findings at once, its exception, or the task still running it.
_Started = list[Finding] | BaseException | asyncio.Future[list[Finding]]


def _start(analyzer: BaseAnalyzer, ctx: AnalysisContext) -> _Started:
    """Run an analyzer up to its first real wait: most finish without one, and then need no task,
    no scheduling and no wake-up (what Python 3.12's eager tasks do); the others go on in a task."""
    coro = analyzer.analyze(ctx)
    try:
        pending = coro.send(None)
    except StopIteration as done:
        return cast(list[Finding], done.value)
    except Exception as exc:
        return exc
    return asyncio.ensure_future(_rest(coro, pending))


async def _rest(coro: Coroutine[Any, Any, list[Finding]], pending: Any) -> list[Finding]:
    return cast(list[Finding], await _carry_on(coro, pending))


@types.coroutine
def _carry_on(coro: Coroutine[Any, Any, list[Finding]], pending: Any) -> Generator[Any, Any, Any]:
    """The rest of a coroutine that already ran up to `pending`, driven as `yield from` would."""
    while True:
        try:
            sent = yield pending
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation (time-out) goes on into the analyzer
            try:
                pending = coro.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                pending = coro.send(sent)
            except StopIteration as done:
                return done.value


async def run_analyzers(analyzers: list[BaseAnalyzer], ctx: AnalysisContext, budget: float) -> list[Finding]:
    """All findings, stage by stage (later stages see earlier findings in ctx.prior)."""
    findings: list[Finding] = []
    for stage in sorted({a.stage for a in analyzers}):
        group = [a for a in analyzers if a.stage == stage]
        ctx.prior = list(findings)
        ctx.deadline = time.monotonic() + budget
        started: list[_Started] = []
        try:
            for a in group:
                started.append(_start(a, ctx))
            # One wait for the stage, and only for analyzers that are still waiting on something.
            tasks = [t for t in started if isinstance(t, asyncio.Future)]
            if tasks:
                await asyncio.wait(tasks, timeout=max(0.0, ctx.deadline - time.monotonic()))
        except BaseException:
            for t in started:
                if isinstance(t, asyncio.Future):
                    t.cancel()
            raise
        for a, t in zip(group, started, strict=True):
            findings.extend(_outcome(a, t, budget))
    return findings
