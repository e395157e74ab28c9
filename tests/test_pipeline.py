"""The pipeline's ordering and its promises: nothing accepted is lost, no backscatter, in-session reject."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mailmoat.blobstore import read_blob
from mailmoat.config import Settings
from mailmoat.ingest.spool import KEPT_SUFFIX, Spool, SpoolRef
from mailmoat.model import Action, Envelope, Finding, Message, Verdict
from mailmoat.pipeline import NO_BACKSCATTER, TEMPFAIL_RETRIES, Pipeline
from mailmoat.store.db import Store
from tests.support.gateway import maildir_copies


@dataclass
class Result:
    message: Message
    verdict: Verdict


class FakeScanner:
    def __init__(self, action: Action, fail: bool = False) -> None:
        self.action = action
        self.fail = fail
        self.calls = 0

    async def scan(self, raw: bytes, envelope: Envelope) -> Result:
        self.calls += 1
        if self.fail:
            raise RuntimeError("scanner exploded")
        finding = Finding("TEST_SYMBOL", 1.0, "evidence")
        return Result(Message(raw=raw, subject="s"), Verdict(self.action, 1.0, [finding], ["because"]))


@dataclass
class FakeStore:
    records: list[tuple[str, Action, str]] = field(default_factory=list)

    def record_message(self, envelope: Envelope, message: Message, verdict: Verdict, raw_path: str) -> None:
        self.records.append((envelope.id, verdict.action, raw_path))


@dataclass
class FakeDelivery:
    fail_times: int = 0
    delivered: list[tuple[str, bytes]] = field(default_factory=list)
    held: list[str] = field(default_factory=list)

    async def deliver(self, envelope: Envelope, raw: bytes, verdict: Verdict, message: Message) -> Sequence[object]:
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("store went away")
        if verdict.action in (Action.DELIVER, Action.TAG):
            self.delivered.append((envelope.id, raw))
        else:
            self.held.append(envelope.id)
        return ["ok"]


def _setup(settings: Settings, action: Action, **kw: object) -> tuple[Pipeline, Spool, FakeScanner, FakeStore, FakeDelivery, SpoolRef]:
    spool = Spool(settings.spool_dir)
    scanner = FakeScanner(action, fail=bool(kw.get("scan_fails", False)))
    store = FakeStore()
    delivery = FakeDelivery(fail_times=int(kw.get("deliver_fails", 0)))  # type: ignore[call-overload]
    pipe = Pipeline(settings, spool, scanner, store, delivery)
    env = Envelope(mail_from="a@example.org", rcpt_tos=["b@localhost"])
    written = spool.write(env, b"Subject: s\r\n\r\nhello\r\n")
    ref = spool.claim(written.name, "w0")
    assert ref is not None
    return pipe, spool, scanner, store, delivery, ref


async def test_deliver_records_then_delivers_then_done(settings: Settings) -> None:
    pipe, spool, _, store, delivery, ref = _setup(settings, Action.DELIVER)
    out = await pipe.process(ref)
    assert out.action is Action.DELIVER and not out.error
    assert [r[:2] for r in store.records] == [(ref.id, Action.DELIVER)]
    assert Path(store.records[0][2]).read_bytes() == b"Subject: s\r\n\r\nhello\r\n"  # raw retained
    assert [d[0] for d in delivery.delivered] == [ref.id]
    assert spool.count() == 0


async def test_quarantine_keeps_raw_and_does_not_deliver(settings: Settings) -> None:
    pipe, spool, _, store, delivery, ref = _setup(settings, Action.QUARANTINE)
    out = await pipe.process(ref)
    assert out.action is Action.QUARANTINE
    assert store.records[0][1] is Action.QUARANTINE and Path(store.records[0][2]).exists()
    assert delivery.delivered == [] and delivery.held == [ref.id] and spool.count() == 0


async def test_reject_after_250_is_quarantined_not_bounced(settings: Settings) -> None:
    pipe, spool, _, _store, delivery, ref = _setup(settings, Action.REJECT)
    out = await pipe.process(ref)
    assert out.action is Action.QUARANTINE
    assert out.verdict is not None and NO_BACKSCATTER in out.verdict.reasons
    assert delivery.delivered == [] and spool.count() == 0


async def test_in_session_reject_is_recorded_and_not_delivered(settings: Settings) -> None:
    pipe, spool, _, store, delivery, ref = _setup(settings, Action.REJECT)
    seen: list[Action] = []

    async def hook(v: Verdict) -> bool:
        seen.append(v.action)
        return True  # the session answers 550

    out = await pipe.process(ref, hook)
    assert seen == [Action.REJECT] and out.rejected_in_session
    assert store.records[0][1] is Action.REJECT
    assert delivery.delivered == [] and delivery.held == [] and spool.count() == 0


async def test_in_session_too_late_falls_back_to_quarantine(settings: Settings) -> None:
    pipe, _, _, _store, delivery, ref = _setup(settings, Action.REJECT)

    async def hook(v: Verdict) -> bool:
        return False  # the session already answered 250

    out = await pipe.process(ref, hook)
    assert out.action is Action.QUARANTINE and not out.rejected_in_session
    assert delivery.delivered == []


async def test_in_session_tempfail_leaves_nothing(settings: Settings) -> None:
    pipe, spool, _, store, _delivery, ref = _setup(settings, Action.TEMPFAIL)

    async def hook(v: Verdict) -> bool:
        return True  # the session answers 451; the client keeps the message

    out = await pipe.process(ref, hook)
    assert out.action is Action.TEMPFAIL and store.records == [] and spool.count() == 0


async def test_failure_keeps_the_entry_for_a_retry(settings: Settings) -> None:
    pipe, spool, _, _store, delivery, ref = _setup(settings, Action.DELIVER, deliver_fails=1)
    out = await pipe.process(ref)
    assert out.action is None and "store went away" in out.error
    assert spool.count() == 1 and spool.pending() == []  # waiting for its backoff
    (name,) = spool.pending(now=time.time() + 3600)
    assert name == f"{ref.id}.1"
    again = spool.claim(name, "w0")
    assert again is not None
    out = await pipe.process(again)
    assert out.action is Action.DELIVER and spool.count() == 0
    assert len(delivery.delivered) == 1


async def test_scanner_crash_keeps_the_entry(settings: Settings) -> None:
    pipe, spool, _, store, _delivery, ref = _setup(settings, Action.DELIVER, scan_fails=True)
    out = await pipe.process(ref)
    assert out.error and spool.count() == 1 and store.records == []


async def test_tempfail_after_250_rescans_then_quarantines(settings: Settings) -> None:
    pipe, spool, scanner, store, delivery, ref = _setup(settings, Action.TEMPFAIL)
    cur = ref
    for _ in range(TEMPFAIL_RETRIES):
        out = await pipe.process(cur)
        assert out.action is None and store.records == []
        (name,) = spool.pending(now=time.time() + 10**6)
        nxt = spool.claim(name, "w0")
        assert nxt is not None
        cur = nxt
    out = await pipe.process(cur)
    assert out.action is Action.QUARANTINE and scanner.calls == TEMPFAIL_RETRIES + 1
    assert spool.count() == 0 and delivery.delivered == []


async def test_retained_copy_is_the_spool_entry_linked(settings: Settings) -> None:
    pipe, spool, _, store, _, ref = _setup(settings, Action.QUARANTINE)
    pipe._keep_in = lambda env: settings.raw_dir / "day"
    out = await pipe.process(ref)
    assert out.action is Action.QUARANTINE
    kept = Path(store.records[0][2])
    assert kept == settings.raw_dir / "day" / f"{ref.id}{KEPT_SUFFIX}"
    assert read_blob(str(kept)) == b"Subject: s\r\n\r\nhello\r\n"  # readers get the message, not the envelope
    assert spool.count() == 0


async def test_retained_copy_is_written_where_links_fail(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe, _, _, store, _, ref = _setup(settings, Action.QUARANTINE)
    pipe._keep_in = lambda env: settings.raw_dir / "day"

    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    await pipe.process(ref)
    written = Path(store.records[0][2])
    assert written.suffix == ".eml" and written.read_bytes() == b"Subject: s\r\n\r\nhello\r\n"


def _with_real_store(settings: Settings) -> tuple[Pipeline, Spool, Store, Envelope, SpoolRef]:
    """A pipeline over the real store and local delivery, and one claimed entry for b@localhost."""
    from mailmoat.deliver import DeliveryService

    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    spool = Spool(settings.spool_dir)
    pipe = Pipeline(settings, spool, FakeScanner(Action.DELIVER), store, DeliveryService(settings, store),
                    keep_in=store.raw_folder)
    env = Envelope(mail_from="a@example.org", rcpt_tos=["b@localhost"])
    ref = spool.claim(spool.write(env, b"Subject: s\r\n\r\nhello\r\n").name, "w0")
    assert ref is not None
    return pipe, spool, store, env, ref


async def test_first_attempt_records_a_local_copy_with_one_commit(settings: Settings) -> None:
    pipe, _, store, env, ref = _with_real_store(settings)
    before = store._writes.batches
    out = await pipe.process(ref)
    assert out.action is Action.DELIVER and [getattr(d, "status", "") for d in out.deliveries] == ["delivered"]
    assert store._writes.batches == before + 1  # record, claim and outcome in one commit
    row = store.get_message(env.id)
    assert row is not None and row.raw_path.endswith(KEPT_SUFFIX)
    assert len(maildir_copies(settings.mail_dir, "b@localhost")[env.tracking_id(0)]) == 1
    store.close()


async def test_a_crash_between_the_copy_and_its_record_never_delivers_twice(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy is written before the one commit of a first attempt. If the process dies in between,
    the retry sees the kept raw copy (an earlier attempt got that far), so it searches the mailbox
    first: a copy a mail client already moved to cur/ is found, not written again."""
    pipe, spool, store, env, ref = _with_real_store(settings)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed before the commit")

    monkeypatch.setattr(store, "record_and_claim", crash)
    out = await pipe.process(ref)
    assert out.error and store.get_message(env.id) is None  # nothing recorded, the entry kept
    (copy,) = maildir_copies(settings.mail_dir, "b@localhost")[env.tracking_id(0)]
    seen = copy.parent.parent / "cur" / (copy.name + ":2,S")
    copy.rename(seen)  # the user's mail client read it meanwhile
    monkeypatch.undo()
    (name,) = spool.pending(now=time.time() + 3600)
    again = spool.claim(name, "w0")
    assert again is not None
    out = await pipe.process(again)
    assert [getattr(d, "status", "") for d in out.deliveries] == ["delivered"]
    assert maildir_copies(settings.mail_dir, "b@localhost")[env.tracking_id(0)] == [seen]  # still one copy
    row = store.get_message(env.id)
    assert row is not None and spool.count() == 0
    store.close()
