"""The task functions: the same code runs on procrastinate workers (PostgreSQL) and in-process (SQLite).

Each takes a `JobContext` (settings, store, recall engine, scanner: built once per process) and a
`Deferrer` to queue follow-up tasks on whichever runner it is running under, then JSON arguments.
A recall job is split into per-copy-batch tasks so several workers share it; the last batch to
finish closes the job (a conditional UPDATE, so exactly one does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import and_, func, or_, select, update

from mailmoat.classify.store_learning import remember_stored
from mailmoat.config import Settings
from mailmoat.recall.backends import CopyRef, CopyResult, MailboxBackend, get_backend
from mailmoat.recall.engine import RecallEngine
from mailmoat.store.audit import audit
from mailmoat.store.db import Store
from mailmoat.store.recall_models import RecallCopyRow, RecallJobRow
from mailmoat.tasks.claims import WORKING

log = logging.getLogger(__name__)

QUEUE_OWNER = "task-queue"  # job lease owner while its batches run on the queue (keeps `recall run` off it)
_STARTABLE = ("planned", "approved", "running")


class Deferrer(Protocol):
    async def defer(self, task: str, **kwargs: Any) -> None: ...

    async def defer_many(self, task: str, kwargs_list: list[dict[str, Any]]) -> None: ...


@dataclass
class JobContext:
    """What task functions need, built once per worker process."""

    settings: Settings
    store: Store
    _engine: RecallEngine | None = None
    _scanner: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def engine(self) -> RecallEngine:
        if self._engine is None:
            backend = get_backend(self.settings)
            if self.settings.tasks.recall_pace > 0:
                backend = PacedBackend(backend, self.settings.tasks.recall_pace)
            self._engine = RecallEngine(self.settings, self.store, backend)
        return self._engine

    @property
    def scanner(self) -> Any:
        if self._scanner is None:
            from mailmoat.scanner import Scanner

            self._scanner = Scanner(self.settings, self.store)
        return self._scanner

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.close()


class PacedBackend:
    """A mailbox backend that waits `pace` seconds between the copies it recalls (`tasks.recall_pace`).

    The wait sits inside the backend call, i.e. after the batch's copies are claimed and before
    the results are written back: the batch keeps its claims while it is paced, as it would while
    a slow mail store answers, so no other worker takes those copies meanwhile.
    """

    def __init__(self, inner: MailboxBackend, pace: float) -> None:
        self.inner = inner
        self.pace = pace
        self.name = inner.name

    def __getattr__(self, attr: str) -> Any:
        # Backend-specific knobs the engine looks up (doveadm's batch_size) stay the inner one's.
        if attr == "inner":  # not set yet (copy, pickle): no endless lookup
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    async def recall(self, copies: list[CopyRef], mode: str) -> list[CopyResult]:
        out: list[CopyResult] = []
        for i, ref in enumerate(copies):
            if i:
                await asyncio.sleep(self.pace)  # async: the worker's other tasks and heartbeat go on
            out += await self.inner.recall([ref], mode)
        return out

    async def verify(self, copies: list[CopyRef]) -> list[CopyResult]:
        return await self.inner.verify(copies)

    async def restore(self, copies: list[CopyRef]) -> list[CopyResult]:
        return await self.inner.restore(copies)

    async def close(self) -> None:
        await self.inner.close()


TaskFn = Callable[..., Awaitable[dict[str, Any]]]


# -- recall ---------------------------------------------------------------------------------
async def recall_job(ctx: JobContext, runner: Deferrer, *, job_id: str, actor: str = "system") -> dict[str, Any]:
    """Start (or resume) a recall job: mark it running and queue one task per batch of copies."""
    settings = ctx.settings
    now = time.time()
    with ctx.store.session() as s:
        res = s.execute(
            update(RecallJobRow)
            .where(
                RecallJobRow.id == job_id,
                RecallJobRow.state.in_(_STARTABLE),
                or_(RecallJobRow.lease_until < now, RecallJobRow.lease_owner.in_(["", QUEUE_OWNER])),
            )
            .values(state="running", lease_owner=QUEUE_OWNER, lease_until=now + 10 * 365 * 86400.0, updated_at=now)
        )
        if not getattr(res, "rowcount", 0):
            job = s.get(RecallJobRow, job_id)
            state = job.state if job is not None else "missing"
            return {"job_id": job_id, "started": False, "state": state}
        audit(s, actor, "recall.run", job_id, source="task-queue")
        ids = list(
            s.scalars(
                select(RecallCopyRow.id)
                .where(RecallCopyRow.job_id == job_id, RecallCopyRow.state.in_(["pending", "failed", WORKING]))
                .order_by(RecallCopyRow.id)
            )
        )
    size = max(1, settings.tasks.recall_batch)
    batches = [ids[i : i + size] for i in range(0, len(ids), size)]
    if batches:
        await runner.defer_many("recall_batch", [{"job_id": job_id, "copy_ids": b, "actor": actor} for b in batches])
    else:
        await finish_if_complete(ctx, job_id, actor)
    return {"job_id": job_id, "started": True, "batches": len(batches), "copies": len(ids)}


def _open_in(ctx: JobContext, job_id: str, ids: list[int] | None, *, unverified: bool = False) -> tuple[int, int]:
    """(copies still to act on, of which held by a live claim) among `ids` (or the whole job).

    With `unverified`, copies acted on but not yet proven gone count as open too (the batch that
    acted on them may have died before verifying: its re-run will).
    """
    max_tries = ctx.settings.recall.max_retries
    conds = [
        RecallCopyRow.state.in_(["pending", WORKING]),
        and_(RecallCopyRow.state == "failed", RecallCopyRow.attempts < max_tries),
    ]
    if unverified:
        conds.append(and_(RecallCopyRow.state.in_(["recalled", "already_gone"]), RecallCopyRow.verified.is_(False)))
    with ctx.store.session() as s:
        q = select(RecallCopyRow.state, func.count()).where(RecallCopyRow.job_id == job_id, or_(*conds))
        if ids is not None:
            q = q.where(RecallCopyRow.id.in_(ids))
        counts = {str(r[0]): int(r[1]) for r in s.execute(q.group_by(RecallCopyRow.state))}
    return sum(counts.values()), counts.get(WORKING, 0)


async def recall_batch(
    ctx: JobContext, runner: Deferrer, *, job_id: str, copy_ids: list[int], actor: str = "system"
) -> dict[str, Any]:
    """Act on one batch of a job's copies (those no other worker holds), verify them, maybe close the job."""
    engine = ctx.engine
    settings = ctx.settings
    with ctx.store.session() as s:
        job = s.get(RecallJobRow, job_id)
        if job is None or job.state != "running":
            return {"job_id": job_id, "skipped": job.state if job is not None else "missing"}
        mode = job.mode
    lease = settings.tasks.copy_lease
    deadline = time.time() + lease + 60.0
    acted: list[str] = []
    tries = 0
    while True:
        results = await engine.execute_batch(job_id, copy_ids, mode, stale_before=time.time() - lease)
        acted += [r.tracking_id for r in results if r.state == "recalled"]
        left, held = _open_in(ctx, job_id, copy_ids)
        if not left or time.time() > deadline:
            break
        if held == left:
            # Claimed by a worker that may have died (this task is its re-run): wait for the lease.
            await asyncio.sleep(min(1.0, lease / 4))
        else:
            tries += 1
            await asyncio.sleep(min(2.0, 0.2 * 2**tries))
    await _verify(engine, job_id, copy_ids)
    with ctx.store.session() as s:
        audit(s, actor, "recall.batch", job_id, source="task-queue", detail={"recalled": acted, "copies": len(copy_ids), "worker": engine.owner})
    await finish_if_complete(ctx, job_id, actor)
    return {"job_id": job_id, "copies": len(copy_ids), "recalled": len(acted)}


async def _verify(engine: RecallEngine, job_id: str, ids: list[int]) -> None:
    """Prove the batch's recalled copies are gone from every visible folder."""
    with engine.store.session() as s:
        rows = s.scalars(
            select(RecallCopyRow).where(
                RecallCopyRow.job_id == job_id,
                RecallCopyRow.id.in_(ids),
                RecallCopyRow.state.in_(["recalled", "already_gone"]),
                RecallCopyRow.verified.is_(False),
            )
        ).all()
        refs = [engine._ref(c) for c in rows]
    if not refs:
        return
    results = {r.tracking_id: r for r in await engine.backend.verify(refs)}
    with engine.store.session() as s:
        for c in s.scalars(
            select(RecallCopyRow).where(RecallCopyRow.job_id == job_id, RecallCopyRow.tracking_id.in_(list(results)))
        ):
            r = results[c.tracking_id]
            if c.state not in ("recalled", "already_gone"):
                continue
            if r.state == "absent":
                c.verified = True
            else:
                c.state = "failed"
                c.reason = f"still visible in {r.folder or 'a folder'} after recall"
                c.attempts += 1


async def finish_if_complete(ctx: JobContext, job_id: str, actor: str = "system") -> bool:
    """Close the job when no copy is left to act on; True for the one caller that closed it."""
    left, _ = _open_in(ctx, job_id, None, unverified=True)
    if left:
        return False
    now = time.time()
    with ctx.store.session() as s:
        counts = {
            str(r[0]): int(r[1])
            for r in s.execute(
                select(RecallCopyRow.state, func.count()).where(RecallCopyRow.job_id == job_id).group_by(RecallCopyRow.state)
            )
        }
        state = "failed" if counts.get("failed") else "done"
        res = s.execute(
            update(RecallJobRow)
            .where(RecallJobRow.id == job_id, RecallJobRow.state == "running")
            .values(state=state, finished_at=now, updated_at=now, lease_owner="", lease_until=0.0)
        )
        if not getattr(res, "rowcount", 0):
            return False
        audit(s, actor, "recall.finish", job_id, source="task-queue", detail={"copies": counts, "state": state})
        recalled = RecallEngine.message_ids(s, job_id, ("recalled",))
    log.warning("recall job %s finished: %s", job_id, counts)
    # As RecallEngine.run does: near copies of what was recalled are held from now on, and those
    # already delivered are looked for.
    await asyncio.to_thread(remember_stored, ctx.settings, ctx.store, recalled, "phish")
    from mailmoat.recall.siblings import follow_up

    await follow_up(ctx.settings, ctx.store, job_id, recalled)  # a fresh scanner: it must see this recall
    return True


# -- re-scan, automatic recall, profiles ------------------------------------------------------
async def rescan(ctx: JobContext, runner: Deferrer, *, since: str, actor: str = "system") -> dict[str, Any]:
    """Re-scan retained mail received since `since` with today's detection; recall what is now condemned."""
    from mailmoat.recall.rescan import rescan as do_rescan

    report = await do_rescan(ctx.engine, ctx.scanner, since, actor)
    return {
        "scanned": report.scanned, "changed": report.changed, "newly_condemned": report.newly_condemned,
        "missing_raw": report.missing_raw, "recalls": [r.job_id for r in report.recalls],
    }


async def auto_recall_indicators(
    ctx: JobContext, runner: Deferrer, *, indicators: list[list[str]], source: str = ""
) -> dict[str, Any]:
    """New threat indicators [kind, value]: recall delivered mail that carries them."""
    from mailmoat.recall.auto import on_indicators

    pairs = [(str(k), str(v)) for k, v in (tuple(i) for i in indicators if len(i) == 2)]
    outcomes = await on_indicators(ctx.engine, pairs, source)
    return {"jobs": [o.job_id for o in outcomes if o.job_id], "states": [o.state for o in outcomes]}


async def condemn(ctx: JobContext, runner: Deferrer, *, mail_id: str, actor: str, reason: str = "") -> dict[str, Any]:
    """An administrator marked a message as a threat: recall its copies."""
    from mailmoat.recall.auto import condemn_message

    o = await condemn_message(ctx.engine, mail_id, actor, reason)
    return {"job_id": o.job_id, "state": o.state, "copies": o.copies}


async def profile_prune(ctx: JobContext, runner: Deferrer) -> dict[str, Any]:
    """Drop account events older than the profile window (accounts.keep_events_days)."""
    from mailmoat.accounts.profiles import prune

    before = time.time() - ctx.settings.accounts.keep_events_days * 86400
    with ctx.store.session() as s:
        prune(s, before)
    return {"before": before}


TASKS: dict[str, TaskFn] = {
    "recall_job": recall_job,
    "recall_batch": recall_batch,
    "rescan": rescan,
    "auto_recall_indicators": auto_recall_indicators,
    "condemn": condemn,
    "profile_prune": profile_prune,
}

__all__ = ["QUEUE_OWNER", "TASKS", "Deferrer", "JobContext", "PacedBackend", "finish_if_complete"]
