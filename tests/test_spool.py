"""The durable spool: write, claim, done, defer, crash recovery and the gateway lock."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mailmoat.ingest.spool import KEPT_SUFFIX, MAGIC, Spool, SpoolError, entry_message
from mailmoat.model import Direction, Envelope


def _env(**kw: object) -> Envelope:
    return Envelope(mail_from="a@example.org", rcpt_tos=["b@localhost", "c@localhost"], peer_ip="192.0.2.1", **kw)  # type: ignore[arg-type]


def test_write_is_durable_and_round_trips(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    env = _env(direction=Direction.OUTBOUND, helo="mx.example.org")
    raw = b"Subject: hi\r\n\r\nbody \xff\x00 bytes\r\n"
    ref = spool.write(env, raw)
    assert ref.path.parent == spool.new and ref.id == env.id and ref.attempts == 0
    assert ref.path.read_bytes().startswith(MAGIC)
    assert list(spool.tmp.iterdir()) == []
    got_env, got_raw = spool.load(ref)
    assert got_raw == raw
    assert got_env.to_dict() == env.to_dict()


def test_claim_is_exclusive_and_done_removes(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    ref = spool.write(_env(), b"x\r\n")
    assert spool.pending() == [ref.name]
    a = spool.claim(ref.name, "w0")
    b = spool.claim(ref.name, "w1")
    assert a is not None and b is None
    assert spool.pending() == [] and spool.count() == 1
    spool.done(a)
    spool.done(a)  # twice is harmless
    assert spool.count() == 0


def test_defer_counts_attempts_and_waits(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    ref = spool.write(_env(), b"x\r\n")
    claimed = spool.claim(ref.name, "w0")
    assert claimed is not None
    later = spool.defer(claimed, 60)
    assert later.attempts == 1 and later.id == ref.id
    assert spool.pending() == []  # not due yet
    assert spool.pending(now=time.time() + 61) == [later.name]


def test_recover_after_crash(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    waiting = spool.write(_env(), b"1\r\n")
    working = spool.write(_env(), b"2\r\n")
    assert spool.claim(working.name, "w3") is not None
    (spool.tmp / "half-written.0").write_bytes(b"never acknowledged")
    # A new process after SIGKILL: everything claimed goes back, tmp leftovers are dropped.
    again = Spool(tmp_path)
    assert again.recover() == 1
    assert sorted(again.pending()) == sorted([waiting.name, working.name])
    assert list(again.tmp.iterdir()) == []


def test_recover_one_worker_only(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    r1 = spool.write(_env(), b"1\r\n")
    r2 = spool.write(_env(), b"2\r\n")
    assert spool.claim(r1.name, "w0") and spool.claim(r2.name, "w1")
    assert spool.recover("w1") == 1
    assert spool.pending() == [r2.name]


def test_lock_keeps_a_second_gateway_out(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.lock()
    second = Spool(tmp_path)
    with pytest.raises(SpoolError):
        second.lock(wait=0.1)
    first.unlock()
    second.lock(wait=1)
    second.unlock()


def test_bad_entry_is_an_error_not_a_crash(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    (spool.new / "01ABC.0").write_bytes(b"garbage")
    ref = spool.claim("01ABC.0", "w0")
    assert ref is not None
    with pytest.raises(SpoolError):
        spool.load(ref)
    assert os.path.exists(ref.path)  # kept, never silently dropped


def test_keep_links_the_entry_as_the_retained_copy(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    raw = b"Subject: kept\r\n\r\nbody\r\n"
    ref = spool.claim(spool.write(_env(), raw).name, "w0")
    assert ref is not None
    folder = tmp_path / "raw" / "2026-11-29"
    kept, made = spool.keep(ref, folder, f"{ref.id}{KEPT_SUFFIX}")
    assert made and kept.parent == folder and os.path.samefile(kept, ref.path)  # a link, not a second write
    assert entry_message(kept.read_bytes()) == raw
    assert spool.keep(ref, folder, kept.name) == (kept, False)  # a retry of the same entry: nothing to do
    spool.done(ref)
    assert spool.count() == 0 and entry_message(kept.read_bytes()) == raw  # outlives the spool entry


def test_keep_replaces_a_stale_file_of_the_same_name(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    ref = spool.claim(spool.write(_env(), b"new\r\n").name, "w0")
    assert ref is not None
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "x.spool").write_bytes(b"something else")
    kept, _ = spool.keep(ref, folder, "x.spool")
    assert os.path.samefile(kept, ref.path) and entry_message(kept.read_bytes()) == b"new\r\n"
    assert sorted(p.name for p in folder.iterdir()) == ["x.spool"]  # no temporary link left behind


def test_entry_message_leaves_plain_messages_alone() -> None:
    assert entry_message(b"Subject: plain\r\n\r\nx") == b"Subject: plain\r\n\r\nx"
    assert entry_message(MAGIC + b'{"id":"x"}\nSubject: s\r\n') == b"Subject: s\r\n"


def test_first_claims_from_many_threads_lose_nothing(tmp_path: Path) -> None:
    """The owner's work directory does not exist before its first claim; threads racing to make it
    must still each claim their own entry."""
    for attempt in range(5):
        spool = Spool(tmp_path / f"s{attempt}")
        names = [spool.write(_env(), b"x\r\n").name for _ in range(16)]
        assert all(got is not None for got in _claim_together(spool, names).values())
        assert spool.pending() == []


def _claim_together(spool: Spool, names: list[str]) -> dict[str, object]:
    import threading

    got: dict[str, object] = {}
    barrier = threading.Barrier(len(names))

    def take(name: str) -> None:
        barrier.wait()
        got[name] = spool.claim(name, "w0")

    threads = [threading.Thread(target=take, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got
