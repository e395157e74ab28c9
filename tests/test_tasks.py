"""Tasks in the embedded mode (in-process runner) and per-copy claims shared by concurrent workers."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from mailmoat.config import Settings
from mailmoat.recall.engine import RecallEngine
from mailmoat.recall.selection import Selector
from mailmoat.store.audit_models import AuditRow
from mailmoat.store.db import Store
from mailmoat.store.models import MessageRow
from mailmoat.store.nearcopy_models import NearCopyVerdictRow
from mailmoat.store.recall_models import RecallCopyRow
from mailmoat.tasks.app import submit, submit_recall, uses_queue
from mailmoat.tasks.claims import WORKING
from mailmoat.tasks.jobs import JobContext, PacedBackend
from tests.support.mailgen import synthetic_eml
from tests.support.recallkit import find_copy, record

MAIL = "01TASK0000000000000000000A"


def _rcpts(n: int) -> list[str]:
    return [f"user{i}@corp.example" for i in range(n)]


def _hidden_once(root: Path, rcpt: str, tid: str) -> bool:
    found = find_copy(root, rcpt, tid)
    return len(found) == 1 and found[0].parent.parent.name.startswith(".MailmoatRecall")


async def test_recall_job_runs_in_process_in_batches(settings: Settings) -> None:
    settings.tasks.recall_batch = 5
    assert not uses_queue(settings)
    store = Store(settings.db_url)
    users = _rcpts(12)
    tids = record(store, settings.mail_dir, MAIL, users)  # type: ignore[arg-type]
    retained = settings.data_path / "retained.eml"
    retained.write_bytes(synthetic_eml(random.Random(4), spam=True, chinese=True))
    with store.session() as s:
        s.execute(update(MessageRow).where(MessageRow.id == MAIL).values(raw_path=str(retained)))
        s.commit()
    engine = RecallEngine(settings, store)
    job = engine.plan(Selector(mail_id=MAIL, since="0"), "admin")
    out = await submit_recall(settings, job, "admin", store=store)
    assert out["queued"] is False and out["batches"] == 3 and out["copies"] == 12
    # The closed job taught the near-copy memory its message (tasks.jobs.finish_if_complete).
    with store.session() as s:
        assert list(s.scalars(select(NearCopyVerdictRow.key))) == [MAIL]
    st = engine.status(job)
    assert st["state"] == "done" and st["counts"] == {"recalled": 12}
    assert all(c["verified"] for c in st["copies"])
    assert all(_hidden_once(settings.mail_dir, u, t) for u, t in zip(users, tids, strict=True))
    with store.session() as s:
        actions = list(s.scalars(select(AuditRow.action).where(AuditRow.target == job)))
    assert actions.count("recall.batch") == 3 and actions.count("recall.finish") == 1
    # Running it again changes nothing: the job is closed.
    again = await submit_recall(settings, job, "admin", store=store)
    assert again["started"] is False and again["state"] == "done"
    await engine.close()
    store.close()


async def test_two_workers_on_the_same_copies_act_once(settings: Settings) -> None:
    store = Store(settings.db_url)
    users = _rcpts(30)
    tids = record(store, settings.mail_dir, MAIL, users)  # type: ignore[arg-type]
    a, b = RecallEngine(settings, store), RecallEngine(settings, store)
    b.owner = "other-host:1"
    job = a.plan(Selector(mail_id=MAIL, since="0"), "admin")
    with store.session() as s:
        ids = list(s.scalars(select(RecallCopyRow.id).where(RecallCopyRow.job_id == job)))
    # Both get every copy id (as a re-run of a batch would): claims split them without overlap.
    ra, rb = await asyncio.gather(a.execute_batch(job, ids, "move"), b.execute_batch(job, ids, "move"))
    acted = [r.tracking_id for r in [*ra, *rb]]
    assert sorted(acted) == sorted(tids)  # every copy once, none twice
    assert {r.state for r in [*ra, *rb]} == {"recalled"}
    assert all(_hidden_once(settings.mail_dir, u, t) for u, t in zip(users, tids, strict=True))
    # A late result of a claim that was taken over is not written back.
    with store.session() as s:
        states = set(s.scalars(select(RecallCopyRow.state).where(RecallCopyRow.job_id == job)))
    assert states == {"recalled"}
    await a.close()
    await b.close()
    store.close()


async def test_recall_pace_spaces_the_copies_and_keeps_the_batch_claimed(settings: Settings) -> None:
    """tasks.recall_pace: a batch's copies are acted on one by one with a pause between them, and the
    whole batch stays claimed meanwhile (no other worker can take a copy of a paced batch)."""
    store = Store(settings.db_url)
    assert not isinstance(JobContext(settings, store).engine.backend, PacedBackend)  # default 0: as before
    pace = 0.05
    settings.tasks.recall_batch = 10
    settings.tasks.recall_pace = pace
    users = _rcpts(5)
    tids = record(store, settings.mail_dir, MAIL, users)  # type: ignore[arg-type]
    engine = RecallEngine(settings, store)
    job = engine.plan(Selector(mail_id=MAIL, since="0"), "admin")
    held: list[int] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            with store.session() as s:
                states = list(s.scalars(select(RecallCopyRow.state).where(RecallCopyRow.job_id == job)))
            held.append(states.count(WORKING))
            await asyncio.sleep(pace / 5)

    async def run() -> dict[str, Any]:
        try:
            return await submit_recall(settings, job, "admin", store=store)
        finally:
            done.set()

    t0 = time.monotonic()
    out, _ = await asyncio.gather(run(), watch())
    assert out["batches"] == 1 and out["copies"] == 5
    assert time.monotonic() - t0 >= 4 * pace  # four pauses between five copies
    assert max(held) == 5  # all five claimed while the batch was paced
    st = engine.status(job)
    assert st["state"] == "done" and st["counts"] == {"recalled": 5} and all(c["verified"] for c in st["copies"])
    assert all(_hidden_once(settings.mail_dir, u, t) for u, t in zip(users, tids, strict=True))
    await engine.close()
    store.close()


async def test_unknown_task_and_other_tasks_in_process(settings: Settings) -> None:
    store = Store(settings.db_url)
    try:
        try:
            await submit(settings, "nope", store=store)
        except ValueError as exc:
            assert "unknown task" in str(exc)
        else:
            raise AssertionError("an unknown task must be refused")
        out = await submit(settings, "profile_prune", store=store)
        assert out["queued"] is False and out["before"] > 0
        out = await submit(settings, "auto_recall_indicators", store=store, indicators=[["domain", "nothing.example"]])
        assert out["jobs"] == [] and out["states"] == ["none"]
    finally:
        store.close()


def test_worker_command_needs_postgresql(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mailmoat.cli import app

    res = CliRunner().invoke(app, ["worker", "--data-dir", str(tmp_path / "var")])
    assert res.exit_code == 2
    assert "needs a PostgreSQL store" in res.output
