"""Delivery into the embedded Maildir store: headers, one copy per mailbox, crash safety, hold and release."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mailmoat.config import Settings
from mailmoat.deliver import DeliveryService, ReleaseError
from mailmoat.deliver.headers import (
    authentication_results,
    prefix_subject,
    prepare_base,
    split_header,
    stamp,
    strip_incoming,
    verdict_value,
)
from mailmoat.deliver.maildir import MaildirStore, find_copy, mailbox_name
from mailmoat.model import Action, Address, Envelope, Finding, Message, Verdict
from mailmoat.store.db import SENDING, Store

RAW = (
    b"Received: from mx.example.org by gw\r\n"
    b"X-Mailmoat-Id: FORGED-0000\r\n"
    b"x-mailmoat-verdict: action=deliver;\r\n  score=0\r\n"
    b"Authentication-Results: mailmoat.localhost; spf=pass smtp.mailfrom=evil.example\r\n"
    b"Authentication-Results: mx.example.org; dkim=pass header.d=example.org\r\n"
    b"From: Alice <alice@example.org>\r\n"
    b"To: bob@localhost\r\n"
    b"Subject: Quarterly report\r\n"
    b"Message-ID: <q1@example.org>\r\n"
    b"\r\n"
    b"Body line 1\r\n"
    b"X-Mailmoat-Id: in-body-stays\r\n"
    b".leading dot\r\n"
)


def auth_finding(method: str, result: str, **props: str) -> Finding:
    return Finding(
        symbol=f"{method.upper()}_{result.upper()}", score=0.0, source="auth",
        data={"authres": {"method": method, "result": result, "props": props}},
    )


def clean_verdict() -> Verdict:
    return Verdict(Action.DELIVER, 0.5, [auth_finding("spf", "pass", **{"smtp.mailfrom": "example.org"})])


def message() -> Message:
    return Message(raw=RAW, subject="Quarterly report", from_=Address("Alice", "alice@example.org"), message_id="<q1@example.org>")


def header_lines(data: bytes) -> list[bytes]:
    header, _ = split_header(data)
    return header.splitlines()


# -- headers ------------------------------------------------------------------------------


def test_strip_incoming_removes_forged_headers_only_in_header() -> None:
    out = strip_incoming(RAW, "mailmoat.localhost")
    head, body = split_header(out)
    assert b"FORGED" not in head and b"x-mailmoat-verdict" not in head.lower() and b"score=0" not in head
    assert b"spf=pass smtp.mailfrom=evil.example" not in head  # claims our authserv-id: forged
    assert b"mx.example.org; dkim=pass" in head  # someone else's result stays
    assert body == split_header(RAW)[1]  # the body is byte-identical
    assert b"X-Mailmoat-Id: in-body-stays" in body


def test_authentication_results_from_findings() -> None:
    findings = [
        auth_finding("spf", "pass", **{"smtp.mailfrom": "example.org"}),
        auth_finding("dkim", "fail", **{"header.d": "example.org", "header.s": "sel 1"}),
        Finding("OTHER", 1.0),
    ]
    value = authentication_results("gw.example", findings)
    assert value.startswith("gw.example;\n")
    assert "spf=pass smtp.mailfrom=example.org" in value
    assert 'dkim=fail header.d=example.org header.s="sel 1"' in value
    assert authentication_results("gw.example", [Finding("X", 1.0)]) == "gw.example; none"


def test_verdict_header_and_folding() -> None:
    v = Verdict(Action.TAG, 6.25, [Finding(f"SYMBOL_NUMBER_{i}", float(i)) for i in range(12)])
    value = verdict_value(v)
    assert value.replace("\n", "").startswith("action=tag; score=6.25; symbols=SYMBOL_NUMBER_11,SYMBOL_NUMBER_10,")
    data = prepare_base(b"Subject: x\r\n\r\nb\r\n", v, authserv_id="gw")
    for line in data.split(b"\r\n"):
        assert len(line) <= 998
    assert b"\r\n\tSYMBOL_NUMBER_" in data  # folded, still one field


def test_subject_prefix_variants() -> None:
    assert prefix_subject(b"Subject: hi\r\n\r\nb", "[SPAM]") == b"Subject: [SPAM] hi\r\n\r\nb"
    assert prefix_subject(b"Subject: [SPAM] hi\r\n\r\nb", "[SPAM]") == b"Subject: [SPAM] hi\r\n\r\nb"
    assert prefix_subject(b"From: a@b\n\nbody", "[SPAM]") == b"Subject: [SPAM]\nFrom: a@b\n\nbody"
    enc = prefix_subject(b"Subject: =?utf-8?b?w6k=?=\r\n\r\n", "[可疑]")
    assert enc.startswith(b"Subject: =?utf-8?b?") and enc.endswith(b"?= =?utf-8?b?w6k=?=\r\n\r\n")
    assert prefix_subject(b"Subject:\r\n\r\nx", "[S]") == b"Subject: [S]\r\n\r\nx"


def test_stamp_and_base_keep_line_endings() -> None:
    base = prepare_base(RAW, clean_verdict(), authserv_id="mailmoat.localhost")
    copy = stamp(base, "ID-0001")
    assert copy.startswith(b"X-Mailmoat-Id: ID-0001\r\nX-Mailmoat-Verdict: action=deliver; score=0.50; symbols=SPF_PASS\r\n")
    assert b"Authentication-Results: mailmoat.localhost;\r\n\tspf=pass smtp.mailfrom=example.org\r\n" in copy
    assert copy.endswith(split_header(RAW)[1])


# -- Maildir store ------------------------------------------------------------------------


def test_mailbox_names_are_safe() -> None:
    assert mailbox_name("Bob@LocalHost") == "bob@localhost"
    assert mailbox_name("../x") == "_.._x"
    assert mailbox_name("a/b@c") == "a_b@c"


def test_maildir_store_is_idempotent(tmp_path: Path) -> None:
    md = MaildirStore(tmp_path, "gw.example")
    first = md.deliver("bob@localhost", "T-0000", b"A: b\r\n\r\nx\r\n", 1700000000.5)
    assert first.path.parent.name == "new" and first.path.name == "1700000000.T-0000.gw.example"
    assert first.path.read_bytes() == b"A: b\n\nx\n"  # Maildir files use LF
    assert not list((first.path.parent.parent / "tmp").iterdir())
    again = md.deliver("bob@localhost", "T-0000", b"A: b\r\n\r\nx\r\n", 1700000000.5, check_existing=False)
    assert again.already and again.path == first.path
    # the user moved it to another folder and marked it read: still found, never written again
    folder = first.path.parent.parent / ".Archive"
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True)
    moved = folder / "cur" / (first.path.name + ":2,S")
    os.rename(first.path, moved)
    third = md.deliver("bob@localhost", "T-0000", b"A: b\r\n\r\nx\r\n", 1700000000.5)
    assert third.already and third.path == moved
    assert find_copy(first.path.parent.parent, "T-0001") is None


# -- DeliveryService into Maildir ---------------------------------------------------------


@pytest.fixture
def store(settings: Settings) -> Store:
    s = Store(settings.db_url)
    yield s
    s.close()


def copies_of(settings: Settings, rcpt: str) -> list[Path]:
    mbox = settings.mail_dir / rcpt.lower()
    return sorted(p for sub in ("new", "cur") for p in (mbox / sub).glob("*")) if mbox.exists() else []


async def test_deliver_two_recipients(settings: Settings, store: Store) -> None:
    svc = DeliveryService(settings, store)
    env = Envelope("alice@example.org", ["bob@localhost", "Carol@localhost"], size=len(RAW))
    out = await svc.deliver(env, RAW, clean_verdict(), message())
    assert [(o.recipient, o.status, o.tracking_id) for o in out] == [
        ("bob@localhost", "delivered", env.tracking_id(0)),
        ("Carol@localhost", "delivered", env.tracking_id(1)),
    ]
    for i, rcpt in enumerate(env.rcpt_tos):
        (path,) = copies_of(settings, rcpt)
        assert f".{env.tracking_id(i)}." in path.name
        data = path.read_bytes()
        assert header_lines(data)[0] == f"X-Mailmoat-Id: {env.tracking_id(i)}".encode()
        assert data.count(b"X-Mailmoat-Id: ") == 2  # ours + the one in the body; the forged one is gone
        assert b"FORGED" not in data
        assert out[i].location == str(path)
    rows = store.deliveries(env.id)
    assert {(r.recipient, r.mailbox, r.status) for r in rows} == {
        ("bob@localhost", "bob@localhost", "delivered"),
        ("Carol@localhost", "carol@localhost", "delivered"),
    }
    assert all(r.delivered_at > 0 and r.location for r in rows)
    # delivering the same message again (e.g. recovery after a crash) writes nothing new
    again = await svc.deliver(env, RAW, clean_verdict(), message())
    assert [o.status for o in again] == ["delivered", "delivered"]
    assert len(copies_of(settings, "bob@localhost")) == 1 and len(copies_of(settings, "carol@localhost")) == 1


async def test_crash_after_write_before_record_is_not_delivered_twice(settings: Settings, store: Store) -> None:
    svc = DeliveryService(settings, store)
    env = Envelope("alice@example.org", ["bob@localhost"])
    # A worker claimed the copy and wrote the file, then died before recording it.
    store.ensure_message(env, clean_verdict())
    claims = store.claim(env.id, [(0, "bob@localhost", "bob@localhost", env.tracking_id(0))], lease_until=time.time() + 60)
    assert claims[0].claimed
    svc.maildir.deliver("bob@localhost", env.tracking_id(0), stamp(RAW, env.tracking_id(0)), env.received_at)
    assert store.get_delivery(env.tracking_id(0)).status == SENDING  # type: ignore[union-attr]
    out = await svc.deliver(env, RAW, clean_verdict(), message())
    assert out[0].status == "delivered" and "already" in out[0].reply
    assert len(copies_of(settings, "bob@localhost")) == 1


async def test_same_mailbox_twice_gets_one_copy(settings: Settings, store: Store) -> None:
    svc = DeliveryService(settings, store)
    env = Envelope("alice@example.org", ["bob@localhost", "BOB@localhost"])
    out = await svc.deliver(env, RAW, clean_verdict(), message())
    assert [o.status for o in out] == ["delivered", "duplicate"]
    assert len(copies_of(settings, "bob@localhost")) == 1


async def test_tag_prefixes_subject(settings: Settings, store: Store) -> None:
    svc = DeliveryService(settings, store)
    env = Envelope("alice@example.org", ["bob@localhost"])
    await svc.deliver(env, RAW, Verdict(Action.TAG, 7.0, [Finding("SUSPICIOUS_THING", 7.0)]), message())
    (path,) = copies_of(settings, "bob@localhost")
    data = path.read_bytes()
    assert b"\nSubject: [SUSPICIOUS] Quarterly report\n" in data
    assert b"X-Mailmoat-Verdict: action=tag; score=7.00; symbols=SUSPICIOUS_THING\n" in data
    assert b"Authentication-Results: mailmoat.localhost; none\n" in data


async def test_reject_delivers_nothing(settings: Settings, store: Store) -> None:
    svc = DeliveryService(settings, store)
    env = Envelope("spam@example.net", ["bob@localhost"])
    out = await svc.deliver(env, RAW, Verdict(Action.REJECT, 30.0), message())
    assert [o.status for o in out] == ["rejected"]
    assert copies_of(settings, "bob@localhost") == []


async def test_quarantine_then_release(settings: Settings, store: Store) -> None:
    svc = DeliveryService(settings, store)
    env = Envelope("alice@example.org", ["bob@localhost", "carol@localhost"])
    verdict = Verdict(Action.QUARANTINE, 12.0, [Finding("PHISH_URL", 12.0, "http://x.test/login")])
    path = store.retain_raw(env, RAW, settings.raw_dir)
    store.record_message(env, message(), verdict, path)
    out = await svc.deliver(env, RAW, verdict, message())
    assert [o.status for o in out] == ["held", "held"]
    assert copies_of(settings, "bob@localhost") == []
    assert store.get_message(env.id).status == "quarantined"  # type: ignore[union-attr]

    released = await svc.release(env.id)
    assert [o.status for o in released] == ["delivered", "delivered"]
    (copy,) = copies_of(settings, "carol@localhost")
    assert copy.read_bytes().startswith(f"X-Mailmoat-Id: {env.tracking_id(1)}\n".encode())
    assert store.get_message(env.id).status == "released"  # type: ignore[union-attr]
    with pytest.raises(ReleaseError):
        await svc.release(env.id)
    with pytest.raises(ReleaseError):
        await svc.release("NO-SUCH-ID")


async def test_local_failure_is_deferred_and_retried(settings: Settings, store: Store) -> None:
    svc = DeliveryService(settings, store)
    env = Envelope("alice@example.org", ["bob@localhost"])
    settings.mail_dir.mkdir(parents=True)
    (settings.mail_dir / "bob@localhost").write_text("not a directory")  # the mailbox cannot be written
    out = await svc.deliver(env, RAW, clean_verdict(), message())
    assert out[0].status == "deferred" and "local delivery failed" in out[0].reply
    row = store.get_message(env.id)
    assert row is not None and row.raw_path and Path(row.raw_path).read_bytes() == RAW  # kept for the retry
    assert await svc.retry_due() == 0  # not due yet
    (settings.mail_dir / "bob@localhost").unlink()
    # a new service (as after a restart) picks the queued copy up once it is due
    svc2 = DeliveryService(settings, Store(settings.db_url))
    assert await svc2.retry_due(now=time.time() + 3600) == 1
    d = store.get_delivery(env.tracking_id(0))
    assert d is not None and d.status == "delivered" and d.attempts == 2
    assert len(copies_of(settings, "bob@localhost")) == 1
