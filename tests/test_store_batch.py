"""Group commit in the Store: concurrent writers share transactions, and one bad job never sinks another."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Connection, text

from mailmoat.model import Action, Address, Envelope, Message, Verdict
from mailmoat.store.db import GroupCommit, Store, _Job


def _sample(i: int) -> tuple[Envelope, Message, Verdict]:
    env = Envelope(f"sender{i}@example.org", [f"rcpt{i}@localhost"], size=100)
    msg = Message(raw=b"x", subject=f"message {i}", from_=Address("", f"sender{i}@example.org"), message_id=f"<{i}@example.org>")
    return env, msg, Verdict(Action.DELIVER, 0.0)


def test_record_and_claim_is_record_then_claim(store: Store) -> None:
    env, msg, verdict = _sample(1)
    copy = [(0, env.rcpt_tos[0], env.rcpt_tos[0], env.tracking_id(0))]
    (claim,) = store.record_and_claim(env, msg, verdict, "/raw/path", copy, lease_until=time.time() + 60)
    assert claim.claimed and claim.fresh and claim.status == "sending"
    row = store.get_message(env.id)
    assert row is not None and row.subject == "message 1" and row.raw_path == "/raw/path" and row.status == "processed"
    # Again (the entry processed a second time after a crash): same row, the claim is not taken twice.
    (again,) = store.record_and_claim(env, msg, verdict, "", copy, lease_until=time.time() + 60)
    assert not again.claimed and not again.fresh and again.status == "sending"
    assert store.get_message(env.id).raw_path == "/raw/path"  # type: ignore[union-attr]
    # A held copy (quarantine) is created as held and is not claimable for sending.
    env2, msg2, _ = _sample(2)
    copy2 = [(0, env2.rcpt_tos[0], env2.rcpt_tos[0], env2.tracking_id(0))]
    (held,) = store.record_and_claim(
        env2, msg2, Verdict(Action.QUARANTINE, 12.0), "", copy2, lease_until=0.0, claimable=(), initial="held"
    )
    assert not held.claimed and held.status == "held"
    assert store.get_message(env2.id).status == "quarantined"  # type: ignore[union-attr]


def test_concurrent_writers_share_commits(store: Store) -> None:
    n = 40
    samples = [_sample(i) for i in range(n)]
    start = threading.Barrier(n)
    errors: list[BaseException] = []

    def write(env: Envelope, msg: Message, verdict: Verdict) -> None:
        start.wait()
        try:
            copy = [(0, env.rcpt_tos[0], env.rcpt_tos[0], env.tracking_id(0))]
            (c,) = store.record_and_claim(env, msg, verdict, "", copy, lease_until=time.time() + 60)
            assert c.claimed
            store.finish([{"tracking_id": c.tracking_id, "status": "delivered", "delivered_at": time.time()}])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=s) for s in samples]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for env, _, _ in samples:
        (d,) = store.deliveries(env.id)
        assert d.status == "delivered" and d.tracking_id == env.tracking_id(0)
    writes = store._writes
    assert writes.jobs == 2 * n
    assert writes.batches <= writes.jobs  # equal only if no two writers ever overlapped


def test_a_failing_job_does_not_fail_its_batch(store: Store) -> None:
    def first(conn: Connection) -> str:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t_batch (v TEXT)"))
        conn.execute(text("INSERT INTO t_batch VALUES ('first')"))
        return "first"

    def good(conn: Connection) -> str:
        conn.execute(text("INSERT INTO t_batch VALUES ('good')"))
        return "good"

    def bad(conn: Connection) -> str:
        conn.execute(text("INSERT INTO t_batch VALUES ('bad')"))
        conn.execute(text("INSERT INTO no_such_table VALUES (1)"))
        return "bad"

    writes: GroupCommit = store._writes
    jobs = [_Job(first), _Job(bad), _Job(good)]
    writes._execute(jobs)  # one batch, as when three writers queued behind a commit
    assert all(j.done for j in jobs)
    assert jobs[0].result() == "first" and jobs[2].result() == "good"
    with pytest.raises(Exception, match="no_such_table"):
        jobs[1].result()
    with store.engine.connect() as c:  # the bad job's first insert was rolled back with it
        assert sorted(r[0] for r in c.execute(text("SELECT v FROM t_batch"))) == ["first", "good"]
