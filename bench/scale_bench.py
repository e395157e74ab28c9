"""Scale-out on PostgreSQL: gateway throughput with one and two nodes, recall time with one and two
workers, and store queries (trace by sender, recall selection by sender and by URL domain) as the
message table grows, with the EXPLAIN plans that show which index is used.

    .venv/bin/python bench/scale_bench.py [--messages 1000] [--rows 10000,100000,1000000]
                                          [--skip-gateway] [--skip-queries] [--pg postgresql://postgres@127.0.0.1/postgres]

Every part runs in its own new database (dropped afterwards). Nodes and workers are real
`mailmoat serve` / `mailmoat worker` processes on this machine, sharing one Maildir store.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests.support helpers

from tests.support.scale import SENDER, Load, Worker, node_config, node_port, psql, scalar, start_node


@contextmanager
def database(admin: str) -> Iterator[str]:
    import psycopg

    name = f"mm_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait(pred: Any, timeout: float = 1800.0, interval: float = 0.2) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise SystemExit("timed out")
        time.sleep(interval)


def gateway_and_recall(admin: str, nodes: int, workers: int, messages: int) -> tuple[float, float, float]:
    """(acknowledged msg/s, delivered msg/s, recall seconds) for this many nodes and workers."""
    from mailmoat.config import Settings
    from mailmoat.recall.engine import RecallEngine
    from mailmoat.recall.selection import Selector
    from mailmoat.store.db import Store
    from mailmoat.tasks.app import submit_recall

    tmp = Path(tempfile.mkdtemp(prefix="mm-scale-"))
    procs: list[Any] = []
    wprocs: list[Worker] = []
    try:
        with database(admin) as url:
            Store(url).close()
            mail = tmp / "mail"
            cfg = node_config(tmp / "mailmoat.toml", recall_batch=100)
            procs = [start_node(tmp, f"node{i}", url, mail, cfg) for i in range(nodes)]
            load = Load([node_port(p) for p in procs], messages, clients_per_port=8 // nodes)
            t0 = time.monotonic()
            acked = load.run()
            if load.failed:
                raise SystemExit(f"{len(load.failed)} sends failed: {load.failed[:3]}")
            wait(lambda: scalar(url, "SELECT count(*) FROM deliveries WHERE status='delivered'") >= messages)
            delivered = time.monotonic() - t0
            for p in procs:
                p.stop()
            procs = []
            settings = Settings()
            settings.data_dir = str(tmp / "admin")
            settings.db = url
            store = Store(url)
            engine = RecallEngine(settings, store)
            job = engine.plan(Selector(sender=SENDER, since="0"), "bench")
            wprocs = [Worker(tmp, f"w{i}", url, mail, cfg) for i in range(workers)]
            wait(lambda: bool(scalar(url, "SELECT to_regclass('procrastinate_workers') IS NOT NULL"))
                 and scalar(url, "SELECT count(*) FROM procrastinate_workers") >= workers)
            t1 = time.monotonic()
            asyncio.run(submit_recall(settings, job, "bench"))
            wait(lambda: engine.status(job, with_copies=False)["state"] in ("done", "failed"), interval=0.05)
            recall = time.monotonic() - t1
            state = engine.status(job, with_copies=False)
            if state["state"] != "done":
                raise SystemExit(f"recall ended {state}")
            asyncio.run(engine.close())
            store.close()
            for w in wprocs:
                w.stop()
            wprocs = []
            return messages / acked, messages / delivered, recall
    finally:
        for w in wprocs:
            w.kill()
        for p in procs:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# -- store queries as the table grows ----------------------------------------------------------
DOMAINS = [f"shop{i}.example" for i in range(2000)]


def _copy_rows(url: str, start: int, count: int, rng: random.Random) -> None:
    """COPY synthetic messages, one delivered copy each, and their indicators (sender, URL domain)."""
    msgs, dels, inds = io.StringIO(), io.StringIO(), io.StringIO()
    now = time.time()
    for i in range(start, start + count):
        mid = f"01SYN{i:021d}"
        dom = DOMAINS[rng.randrange(len(DOMAINS))]
        sender = f"user{rng.randrange(50_000)}@{dom}"
        url_dom = DOMAINS[rng.randrange(len(DOMAINS))]
        at = now - rng.random() * 30 * 86400
        msgs.write(
            f"{mid}\t{at}\tinbound\t{sender}\t[\"rcpt{i % 5000}@corp.example\"]\t\t\t\t{sender}\t\t{dom}\t"
            f"subject {i}\t<{mid}@{dom}>\t1000\tdeliver\t0.0\t{{}}\t[]\t[]\t[]\t\tprocessed\t{at}\n"
        )
        dels.write(f"{mid}\trcpt{i % 5000}@corp.example\t\t{mid}-0000\tdelivered\t1\t0\t\t\t{at}\t{at}\n")
        for kind, value in (("mail_from", sender), ("sender_domain", dom), ("url", f"https://{url_dom}/x/{i}"),
                            ("url_domain", url_dom)):
            inds.write(f"{mid}\t{kind}\t{value}\n")
    with psql(url) as c, c.cursor() as cur:
        for table, cols, buf in (
            ("messages", "id, received_at, direction, mail_from, rcpt_tos, peer_ip, helo, auth_user, from_addr, "
             "from_display, from_domain, subject, message_id, size, action, score, symbols, findings, reasons, "
             "headers, raw_path, status, scanned_at", msgs),
            ("deliveries", "message_id, recipient, mailbox, tracking_id, status, attempts, next_attempt, reply, "
             "location, delivered_at, updated_at", dels),
            ("indicators", "message_id, kind, value", inds),
        ):
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as cp:
                cp.write(buf.getvalue())
        cur.execute("ANALYZE")


def _timed(fn: Any, repeat: int = 5) -> tuple[float, Any]:
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000, out


def _plan(url: str, sql: str) -> str:
    with psql(url) as c:
        rows = c.execute("EXPLAIN " + sql).fetchall()
    lines = [r[0] for r in rows]
    used = sorted({w.strip(",") for line in lines for w in line.split() if w.startswith(("ix_", "uq_", "pk_", "trgm_"))})
    seq = [line.strip() for line in lines if "Seq Scan" in line]
    return ("indexes: " + ", ".join(used) if used else "no index") + (f"; seq scans: {'; '.join(seq)}" if seq else "")


def store_queries(admin: str, sizes: list[int]) -> None:
    from sqlalchemy import text
    from sqlalchemy.dialects import postgresql

    from mailmoat.recall.selection import Selector, delivered_copies_query
    from mailmoat.store.db import Store

    rng = random.Random(7)
    with database(admin) as url:
        store = Store(url)
        have = 0
        print("\n== store queries as the message table grows (best of 5, ms) ==")
        for size in sizes:
            t = time.perf_counter()
            while have < size:
                n = min(50_000, size - have)
                _copy_rows(url, have, n, rng)
                have += n
            load_s = time.perf_counter() - t
            probe_sender = scalar(url, "SELECT mail_from FROM messages ORDER BY id DESC LIMIT 1")
            probe_dom = probe_sender.rsplit("@", 1)[1]
            probe_url_dom = scalar(url, "SELECT value FROM indicators WHERE kind='url_domain' ORDER BY id DESC LIMIT 1")
            print(f"\n-- {size:,} messages (loaded in {load_s:.1f}s with COPY)")
            cases: list[tuple[str, Any, str]] = []
            for label, sel in (
                (f"recall selection sender={probe_sender}", Selector(sender=probe_sender)),
                (f"recall selection sender domain={probe_dom}", Selector(sender=probe_dom)),
                (f"recall selection url_domain={probe_url_dom}", Selector(url_domain=probe_url_dom)),
            ):
                q = delivered_copies_query(sel)

                def run(q: Any = q) -> int:
                    with store.session() as s:
                        return len(s.execute(q).all())

                sql = str(q.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
                cases.append((label, run, sql))
            for label, kwargs in (
                (f"trace --sender {probe_sender} (substring)", {"sender": probe_sender}),
                (f"trace --sender {probe_dom} (substring)", {"sender": probe_dom}),
            ):
                def run_trace(kwargs: dict[str, Any] = kwargs) -> int:
                    return len(store.trace(limit=100, **kwargs))

                pat = kwargs["sender"].lower()
                sql = (
                    "SELECT * FROM messages WHERE lower(mail_from) LIKE '%" + pat + "%' OR lower(from_addr) LIKE '%"
                    + pat + "%' ORDER BY received_at DESC, id DESC LIMIT 100"
                )
                cases.append((label, run_trace, sql))
            # The same url_domain selection written as one IN over the indicators (a semi-join the
            # planner can drive from the index), for comparison with the OR of two IN subqueries.
            alt = (
                "SELECT m.id, d.tracking_id FROM messages m JOIN deliveries d ON d.message_id = m.id "
                "WHERE d.status = 'delivered' AND m.id IN (SELECT message_id FROM indicators WHERE kind IN "
                f"('url_domain', 'url_host') AND value = '{probe_url_dom}') ORDER BY m.received_at, d.id"
            )

            def run_alt(sql: str = alt) -> int:
                with store.engine.connect() as c:
                    return len(c.execute(text(sql)).all())

            cases.append((f"  same, one IN subquery (suggested form) url_domain={probe_url_dom}", run_alt, alt))
            for label, fn, sql in cases:
                ms, n = _timed(fn)
                print(f"{label:<70} {ms:9.1f} ms  rows={n:<5} {_plan(url, sql)}")
            for label, _, sql in cases[-3:-1]:  # the trace searches again, as they were before 0002_trigram_search
                with psql(url) as c:
                    c.execute("BEGIN")
                    c.execute("DROP INDEX trgm_messages_mail_from, trgm_messages_from_addr")

                    def run_raw(sql: str = sql, c: Any = c) -> int:
                        return len(c.execute(sql).fetchall())

                    ms, n = _timed(run_raw)
                    plan = [r[0] for r in c.execute("EXPLAIN " + sql).fetchall()]
                    c.execute("ROLLBACK")
                seq = "seq scan" if any("Seq Scan" in p for p in plan) else "no seq scan"
                print(f"  {label + ' without trigram index':<68} {ms:9.1f} ms  rows={n:<5} {seq}")
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--rows", default="10000,100000,1000000")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--skip-gateway", action="store_true")
    ap.add_argument("--skip-queries", action="store_true")
    args = ap.parse_args()
    if not args.skip_gateway:
        print(f"== {args.messages} messages through the gateway (1 worker process per node), then one recall job ==")
        for nodes, workers in ((1, 1), (2, 2)):
            ack, deliv, recall = gateway_and_recall(args.pg, nodes, workers, args.messages)
            print(
                f"{nodes} node(s): acknowledged {ack:7.1f} msg/s, delivered {deliv:7.1f} msg/s | "
                f"recall of {args.messages} copies with {workers} worker(s): {recall:6.2f} s "
                f"({args.messages / recall:7.1f} copies/s)"
            )
    if not args.skip_queries:
        store_queries(args.pg, [int(x) for x in args.rows.split(",") if x])


if __name__ == "__main__":
    main()
