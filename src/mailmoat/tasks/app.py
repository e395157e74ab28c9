"""The task runner: a procrastinate App on the PostgreSQL store, or an in-process runner for SQLite.

Both run the same functions (`mailmoat.tasks.jobs.TASKS`). With PostgreSQL, `mailmoat worker`
processes (any number, on any node) execute them; a worker that dies mid-task is noticed by its
missing heartbeat and its task is run again by another worker (the task functions are safe to run
twice). With SQLite, `submit` runs the task in the caller's process, so `make run` needs nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import procrastinate
from procrastinate import RetryStrategy

from mailmoat.config import Settings
from mailmoat.store.db import Store, normalise_url
from mailmoat.tasks.jobs import TASKS, Deferrer, JobContext

log = logging.getLogger(__name__)

TASK_PREFIX = "mailmoat."
SCHEMA_LOCK = int.from_bytes(b"mmtasks!", "big") & 0x7FFF_FFFF_FFFF_FFFF


def uses_queue(settings: Settings) -> bool:
    """True when the store is PostgreSQL: tasks then go on the procrastinate queue."""
    return normalise_url(settings.db_url).startswith("postgresql")


def conninfo(settings: Settings) -> str:
    """libpq connection string of the store (the SQLAlchemy driver suffix removed)."""
    url = normalise_url(settings.db_url)
    return "postgresql://" + url.split("://", 1)[1]


class InProcessRunner:
    """Embedded mode: a deferred task runs at once, in this process, with the same functions."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx

    async def run(self, task: str, **kwargs: Any) -> dict[str, Any]:
        return await TASKS[task](self.ctx, self, **kwargs)

    async def defer(self, task: str, **kwargs: Any) -> None:
        await self.run(task, **kwargs)

    async def defer_many(self, task: str, kwargs_list: list[dict[str, Any]]) -> None:
        for kw in kwargs_list:
            await self.run(task, **kw)


class QueueRunner:
    """PostgreSQL mode: deferring puts a job on the procrastinate queue (one transaction per batch)."""

    def __init__(self, app: procrastinate.App, queue: str) -> None:
        self.app = app
        self.queue = queue

    async def defer(self, task: str, **kwargs: Any) -> None:
        await self.app.configure_task(TASK_PREFIX + task, queue=self.queue).defer_async(**kwargs)

    async def defer_many(self, task: str, kwargs_list: list[dict[str, Any]]) -> None:
        if kwargs_list:
            await self.app.configure_task(TASK_PREFIX + task, queue=self.queue).batch_defer_async(*kwargs_list)


_context: JobContext | None = None  # the worker process's context (procrastinate calls plain functions)


def build_app(settings: Settings) -> procrastinate.App:
    """The procrastinate App over the store's PostgreSQL, with every task registered."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(settings)))
    queue = settings.tasks.queue
    runner = QueueRunner(app, queue)
    for name in TASKS:
        app.task(
            name=TASK_PREFIX + name,
            queue=queue,
            # A crash (not a kill: that is the stalled-job path) is retried; task functions are idempotent.
            retry=RetryStrategy(max_attempts=3, exponential_wait=2),
        )(_bind(name, runner))
    return app


def _bind(name: str, runner: Deferrer) -> Any:
    async def run(**kwargs: Any) -> dict[str, Any]:
        if _context is None:
            raise RuntimeError("task run outside a configured worker (call set_context first)")
        return await TASKS[name](_context, runner, **kwargs)

    run.__name__ = name
    run.__qualname__ = name
    return run


def set_context(ctx: JobContext | None) -> None:
    global _context
    _context = ctx


async def ensure_schema(app: procrastinate.App, settings: Settings) -> bool:
    """Create procrastinate's tables once (under an advisory lock: several workers may start together)."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(conninfo(settings), autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        try:
            cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
            row = await cur.fetchone()
            if row is not None and row[0]:
                return False
            await app.schema_manager.apply_schema_async()
            return True
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


async def retry_stalled(app: procrastinate.App, settings: Settings, stop: asyncio.Event) -> None:
    """Run again the tasks of workers whose heartbeat stopped (killed, machine lost)."""
    after = settings.tasks.stalled_after
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(0.5, after / 3))
        if stop.is_set():
            return
        try:
            for job in await app.job_manager.get_stalled_jobs(queue=settings.tasks.queue, seconds_since_heartbeat=after):
                with contextlib.suppress(Exception):  # another worker retried it first
                    await app.job_manager.retry_job(job)
                    log.warning("task %s #%s was running on a dead worker: queued again", job.task_name, job.id)
            await app.job_manager.prune_stalled_workers(seconds_since_heartbeat=after)
        except Exception:  # the database is away for a moment: try again next round
            log.exception("looking for stalled tasks failed")


async def submit(settings: Settings, task: str, *, store: Store | None = None, **kwargs: Any) -> dict[str, Any]:
    """Queue a task (PostgreSQL) or run it now in this process (SQLite); returns what is known."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}")
    if uses_queue(settings):
        app = build_app(settings)
        async with app.open_async():
            await ensure_schema(app, settings)
            job_id = await app.configure_task(TASK_PREFIX + task, queue=settings.tasks.queue).defer_async(**kwargs)
        return {"queued": True, "task_id": job_id}
    own = store is None
    ctx = JobContext(settings, store or Store(settings.db_url, raw_dir=settings.raw_dir))
    try:
        return {"queued": False, **await InProcessRunner(ctx).run(task, **kwargs)}
    finally:
        await ctx.close()
        if own:
            ctx.store.close()


async def submit_recall(settings: Settings, job_id: str, actor: str, store: Store | None = None) -> dict[str, Any]:
    """Run a planned recall job: spread over the workers (PostgreSQL) or here and now (SQLite)."""
    return await submit(settings, "recall_job", store=store, job_id=job_id, actor=actor)


__all__ = [
    "InProcessRunner",
    "QueueRunner",
    "build_app",
    "conninfo",
    "ensure_schema",
    "retry_stalled",
    "set_context",
    "submit",
    "submit_recall",
    "uses_queue",
]
