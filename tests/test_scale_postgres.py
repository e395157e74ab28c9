"""Scale-out on PostgreSQL: two gateway nodes and two task workers share one database and one Maildir store.

Messages sent to both nodes at once are each recorded once and delivered once; a recall job over
them is spread over both workers, one worker is SIGKILLed while it holds copies, and the job still
completes with every copy acted on exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mailmoat.config import Settings
from mailmoat.recall.engine import RecallEngine
from mailmoat.recall.selection import Selector
from mailmoat.store.db import Store
from mailmoat.tasks.app import submit_recall
from tests.support.gateway import SubprocessGateway, maildir_copies, wait_for
from tests.support.pg import pg_url  # noqa: F401  (fixture)
from tests.support.scale import SENDER, Load, Worker, node_config, node_port, psql, scalar, start_node

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TOTAL = int(os.environ.get("MAILMOAT_SCALE_MESSAGES", "2000"))
MAILBOXES = 40
BATCH = max(10, TOTAL // 20)  # about 20 batches: both workers get several
BATCHES = -(-TOTAL // BATCH)
# The workers pause between copies (tasks.recall_pace) so that each batch holds its claims for about
# 2 s whatever TOTAL is: long against the poll below that looks for a worker inside a batch, short
# against copy_lease (6 s; a paced batch must not lose its claims to a re-run).
PACE = 2.0 / BATCH


def _all_copies(mail: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for i in range(MAILBOXES):
        for tid, paths in maildir_copies(mail, f"user{i}@localhost").items():
            out.setdefault(tid, []).extend(paths)
    return out


# Copies a worker holds claimed right now (its claim names it in `reason`).
HELD_BY = "SELECT count(*) FROM recall_copies WHERE state = 'working' AND reason LIKE %s"

def test_two_nodes_two_workers(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    # More batches than both workers' task slots: the kill below relies on it.
    assert 2 * Settings().tasks.concurrency < BATCHES, "MAILMOAT_SCALE_MESSAGES too small for this test"
    mail = tmp_path / "shared-mail"
    config = node_config(tmp_path / "mailmoat.toml", recall_batch=BATCH, copy_lease=6.0)
    Store(pg_url).close()  # migrate once up front (the nodes would also do it, under a lock)
    nodes: list[SubprocessGateway] = []
    workers: list[Worker] = []
    stack = contextlib.ExitStack()
    try:
        nodes = [start_node(tmp_path, n, pg_url, mail, config) for n in ("node-a", "node-b")]
        load = Load([node_port(n) for n in nodes], TOTAL, mailboxes=MAILBOXES)
        load.run()
        assert load.failed == [] and len(load.acked) == TOTAL
        def delivered() -> bool:
            for n in nodes:
                assert n.proc is not None and n.proc.poll() is None, f"a node died: {n.tail()}"
            return bool(scalar(pg_url, "SELECT count(*) FROM deliveries WHERE status = 'delivered'") >= TOTAL)

        wait_for(delivered, timeout=900, interval=1.0, what="every message delivered")
        for n in nodes:
            assert n.stop() == 0, n.tail()

        # -- recorded once, delivered once --------------------------------------------------
        with psql(pg_url) as c:
            per_msg = c.execute(
                "SELECT message_id, count(*) FROM messages GROUP BY message_id"
            ).fetchall()
            assert len(per_msg) == TOTAL and all(n == 1 for _, n in per_msg)
            assert {m for m, _ in per_msg} == {f"<scale-{i}@example.org>" for i in range(TOTAL)}
            rows = c.execute("SELECT tracking_id, recipient, status FROM deliveries").fetchall()
        assert len(rows) == TOTAL and {r[2] for r in rows} == {"delivered"}
        assert len({r[0] for r in rows}) == TOTAL
        # Both nodes took their share (each acknowledged with its own queue ids).
        assert len({load.acked[i] for i in range(TOTAL)}) == TOTAL
        copies = _all_copies(mail)
        assert len(copies) == TOTAL and all(len(p) == 1 for p in copies.values())
        assert set(copies) == {r[0] for r in rows}

        # -- a recall job spread over two workers, one killed mid-job --------------------------
        settings = Settings()
        settings.data_dir = str(tmp_path / "admin")
        settings.db = pg_url
        settings.tasks.recall_batch = BATCH
        store = Store(pg_url)
        engine = RecallEngine(settings, store)
        job_id = engine.plan(Selector(sender=SENDER, since="0"), "admin", "scale test")
        assert engine.status(job_id, with_copies=False)["counts"] == {"pending": TOTAL}
        # Both workers paced: which one is killed is only decided below, by what they do.
        worker_config = node_config(tmp_path / "worker.toml", recall_batch=BATCH, copy_lease=6.0, recall_pace=PACE)
        workers = [Worker(tmp_path, n, pg_url, mail, worker_config) for n in ("w1", "w2")]
        wait_for(lambda: _live_workers(pg_url) == 2, timeout=120, what="two workers")
        asyncio.run(submit_recall(settings, job_id, "admin"))

        # One connection for the polls below (a new one per poll costs 5-10 ms).
        poll = stack.enter_context(psql(pg_url))

        def batches_of(w: Worker) -> int:
            rows_ = poll.execute("SELECT detail FROM audit_log WHERE action = 'recall.batch' AND target = %s", (job_id,))
            return sum(1 for (d,) in rows_ if _detail(d)["worker"].endswith(f":{w.pid}"))

        def mid_batch() -> tuple[Worker, int] | None:
            for w in workers:
                row = poll.execute(HELD_BY, (f"claimed by %:{w.pid}",)).fetchone()
                held = int(row[0]) if row else 0
                if held and batches_of(w) >= 1:
                    return w, held
            if engine.status(job_id, with_copies=False)["state"] in ("done", "failed"):
                raise AssertionError("the job ended before a worker could be killed in the middle of a batch")
            return None

        # A worker that has closed a batch of its own and is inside another one: kill it there.
        # Whichever gets there first, not a named one: procrastinate does not share a queue evenly (an
        # idle worker fetches on a NOTIFY or else at its next 5 s poll; in a trial one worker took
        # most of the 20 batches), so a named worker may get no second batch. This way it is certain:
        # until the first batch closes, at most 2 x concurrency batches have started (< BATCHES),
        # so the worker closing it takes a queued one at once and holds its claims ~2 s (paced);
        # a 50 ms poll sees that.
        victim, held = wait_for(mid_batch, timeout=300, interval=0.05, what="a worker inside its second batch")
        survivor = workers[1] if victim is workers[0] else workers[0]
        victim.kill()
        wait_for(
            lambda: engine.status(job_id, with_copies=False)["state"] in ("done", "failed"),
            timeout=600, interval=0.5, what="the job to finish",
        )
        st = engine.status(job_id)
        assert st["state"] == "done", (st["counts"], survivor.tail())
        counts = st["counts"]
        assert set(counts) <= {"recalled", "already_gone"} and sum(counts.values()) == TOTAL
        # Only copies the killed worker had moved without recording it can be found already hidden:
        # at most the batches it had in flight (its concurrency x batch size).
        assert counts.get("already_gone", 0) <= 4 * BATCH
        assert all(c["verified"] for c in st["copies"])

        with psql(pg_url) as c:
            audits = [_detail(d) for (d,) in c.execute(
                "SELECT detail FROM audit_log WHERE action = 'recall.batch' AND target = %s", (job_id,)
            )]
            finishes = c.execute(
                "SELECT count(*) FROM audit_log WHERE action = 'recall.finish' AND target = %s", (job_id,)
            ).fetchone()
        by_worker = Counter(a["worker"].rsplit(":", 1)[1] for a in audits)
        assert set(by_worker) == {str(workers[0].pid), str(workers[1].pid)}, by_worker  # spread over both
        recalled_by_batches = Counter(t for a in audits for t in a["recalled"])
        assert all(n == 1 for n in recalled_by_batches.values())  # no copy moved by two batches
        recalled = {c["tracking_id"] for c in st["copies"] if c["state"] == "recalled"}
        assert set(recalled_by_batches) <= recalled
        # Copies moved by batches the killed worker had in flight were not audited by it (it died first).
        assert TOTAL - len(recalled_by_batches) <= 4 * BATCH  # its concurrency x batch size
        assert finishes is not None and finishes[0] == 1  # closed exactly once
        # The Maildir shows each copy once, hidden, and nowhere visible.
        after = _all_copies(mail)
        assert set(after) == set(copies) and all(len(p) == 1 for p in after.values())
        assert all("MailmoatRecall" in str(p[0]) for p in after.values())
        assert held > 0
        asyncio.run(engine.close())
        store.close()
    finally:
        stack.close()
        for w in workers:
            w.kill()
        for n in nodes:
            n.stop()


def _live_workers(url: str) -> int:
    if not scalar(url, "SELECT to_regclass('procrastinate_workers') IS NOT NULL"):
        return 0  # the first worker is still creating the queue's tables
    return int(scalar(url, "SELECT count(*) FROM procrastinate_workers"))


def _detail(d: Any) -> dict[str, Any]:
    return json.loads(d) if isinstance(d, str) else dict(d)


def test_worker_health_and_clean_stop(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    """`mailmoat worker --health-listen` answers /healthz and /readyz, and stops cleanly on SIGTERM."""
    import urllib.error
    import urllib.request

    from tests.support.net import free_port

    port = free_port()
    config = node_config(tmp_path / "mailmoat.toml", health_listen=f"127.0.0.1:{port}")
    w = Worker(tmp_path, "w-health", pg_url, tmp_path / "mail", config)
    try:
        def get(path: str) -> tuple[int, str]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode()
            except OSError:
                return 0, ""

        wait_for(lambda: get("/healthz")[0] == 200, timeout=60, what=f"the health listener: {w.tail()}")
        assert get("/readyz") == (200, "ready")
        assert get("/nope")[0] == 404
    finally:
        code = w.stop()
    assert code == 0, w.tail()


def test_serve_runs_its_own_task_worker(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    """One node on PostgreSQL needs no second command: `serve` runs a task worker process, restarts
    it when it dies, and a recall job queued meanwhile is done by it."""
    import signal

    total = 30
    mail = tmp_path / "mail"
    config = node_config(tmp_path / "mailmoat.toml", serve_worker=True)
    node = start_node(tmp_path, "solo", pg_url, mail, config)
    try:
        wait_for(lambda: any("task worker started" in line for line in node.output), timeout=30, what="the announcement")
        load = Load([node_port(node)], total, mailboxes=5)
        load.run()
        assert load.failed == [] and len(load.acked) == total
        wait_for(
            lambda: scalar(pg_url, "SELECT count(*) FROM deliveries WHERE status = 'delivered'") >= total,
            timeout=300, what="every message delivered",
        )
        first = _announced_pid(node.tail(), "task worker started (pid ")
        assert node.proc is not None and first in _children(node.proc.pid)
        wait_for(lambda: _live_workers(pg_url) >= 1, timeout=120, what=f"the embedded worker: {node.tail()}")
        # A crashed worker is started again by serve.
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: "task worker started again" in node.tail(), timeout=90, what=f"the restart: {node.tail()}")
        second = _announced_pid(node.tail(), "task worker started again (pid ")
        assert second != first and second in _children(node.proc.pid)

        settings = Settings()
        settings.data_dir = str(tmp_path / "admin")
        settings.db = pg_url
        store = Store(pg_url)
        try:
            engine = RecallEngine(settings, store)
            job_id = engine.plan(Selector(sender=SENDER, since="0"), "admin", "embedded worker")
            asyncio.run(submit_recall(settings, job_id, "admin"))
            wait_for(
                lambda: engine.status(job_id, with_copies=False)["state"] == "done",
                timeout=180, what=f"the recall job done by serve's worker: {node.tail()}",
            )
            assert engine.status(job_id, with_copies=False)["counts"] == {"recalled": total}
        finally:
            store.close()
    finally:
        assert node.stop() == 0, node.tail()
    # Stopping serve stopped its worker too.
    wait_for(lambda: not Path(f"/proc/{second}").exists(), timeout=60, what="the embedded worker gone")


def _children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _announced_pid(text: str, marker: str) -> int:
    tail = text[text.rindex(marker) + len(marker) :]
    return int(tail.split(")", 1)[0].split(",", 1)[0])
