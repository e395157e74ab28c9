"""Relay to a real SMTP downstream (aiosmtpd on loopback): per-recipient results, deferral and retry, DSN."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from mailmoat.config import Settings
from mailmoat.deliver import DeliveryService
from mailmoat.deliver.dsn import dsn_allowed
from mailmoat.deliver.relay import RelayConfigError, RelayTarget, dot_stuff
from mailmoat.model import Action, Address, Envelope, Finding, Message, Verdict
from mailmoat.store.db import Store
from tests.support.net import free_port

RAW = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: team@example.test\r\n"
    b"Subject: relay test\r\n"
    b"Message-ID: <r1@example.org>\r\n"
    b"\r\n"
    b"Hello\r\n"
    b".dot line\r\n"
)


@dataclass
class Downstream:
    """A mail system that refuses `perm*` recipients for good and `temp*` ones while `busy`."""

    busy: bool = True
    per_connection: int = 0  # like Exchange's MaxMessagesPerConnection (0 = unlimited)
    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    sessions: set[int] = field(default_factory=set)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]) -> str:
        self.sessions.add(id(session))
        count = getattr(session, "mm_count", 0)
        if self.per_connection and count >= self.per_connection:
            return "421 4.7.0 too many messages on this connection"
        session.mm_count = count + 1
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        local = address.split("@")[0]
        if local.startswith("perm"):
            return f"550 5.1.1 <{address}>: no such user"
        if local.startswith("temp") and self.busy:
            return "451 4.3.2 try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 2.0.0 queued"

    def to(self, rcpt: str) -> list[bytes]:
        return [data for _, rcpts, data in self.received if rcpt in rcpts]


@pytest.fixture
def downstream() -> Iterator[tuple[Downstream, int]]:
    handler = Downstream()
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="downstream.test")
    ctl.start()
    try:
        yield handler, port
    finally:
        ctl.stop()


def relay_settings(settings: Settings, port: int) -> Settings:
    settings.delivery.relay_to = f"smtp://127.0.0.1:{port}"
    settings.delivery.connect_timeout = 5.0
    settings.delivery.retry_schedule = [60, 300]
    return settings


def clean() -> Verdict:
    return Verdict(Action.DELIVER, 0.0, [])


def msg() -> Message:
    return Message(raw=RAW, subject="relay test", from_=Address("Alice", "alice@example.org"), message_id="<r1@example.org>")


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store(settings.db_url)
    yield s
    s.close()


def test_relay_target_parsing() -> None:
    assert RelayTarget.parse("smtp://mx.example:2525") == RelayTarget("smtp", "mx.example", 2525)
    assert RelayTarget.parse("lmtp://127.0.0.1") == RelayTarget("lmtp", "127.0.0.1", 24)
    assert RelayTarget.parse("lmtp:///run/dovecot/lmtp") == RelayTarget("lmtp", path="/run/dovecot/lmtp")
    for bad in ("http://x", "smtp://", "smtp://h:notaport"):
        with pytest.raises(RelayConfigError):
            RelayTarget.parse(bad)
    assert dot_stuff(b".a\nb\r\n.c") == b"..a\r\nb\r\n..c\r\n.\r\n"


async def test_per_recipient_results_defer_retry_and_dsn(
    settings: Settings, store: Store, downstream: tuple[Downstream, int]
) -> None:
    ds, port = downstream
    svc = DeliveryService(relay_settings(settings, port), store)
    env = Envelope("alice@example.org", ["ok@example.test", "temp@example.test", "perm@example.test"])
    out = await svc.deliver(env, RAW, clean(), msg())
    assert [(o.recipient, o.status) for o in out] == [
        ("ok@example.test", "delivered"),
        ("temp@example.test", "deferred"),
        ("perm@example.test", "failed"),
    ]
    assert out[0].reply.startswith("250") and out[1].reply.startswith("451") and "5.1.1" in out[2].reply
    (copy,) = ds.to("ok@example.test")
    assert copy.startswith(f"X-Mailmoat-Id: {env.tracking_id(0)}\r\n".encode())
    assert b"\r\n.dot line\r\n" in copy  # dot-stuffing undone by the server: bytes arrive intact

    # 5xx → one DSN to the envelope sender, from the null sender, through the same downstream
    (dsn,) = ds.to("alice@example.org")
    sender = next(m for m, rcpts, _ in ds.received if "alice@example.org" in rcpts)
    assert sender in ("", "<>")
    assert b"multipart/report; report-type=delivery-status" in dsn
    assert b"Final-Recipient: rfc822; perm@example.test" in dsn and b"Status: 5.1.1" in dsn
    assert b"Subject: relay test" in dsn  # original headers enclosed
    assert b"temp@example.test" not in dsn.split(b"text/rfc822-headers")[0]  # deferred is not failed

    # the deferred copy waits for its time, then goes through once the downstream accepts it
    assert await svc.retry_due() == 0
    ds.busy = False
    assert await svc.retry_due(now=time.time() + 61) == 1
    row = store.get_delivery(env.tracking_id(1))
    assert row is not None and row.status == "delivered" and row.attempts == 2
    (copy,) = ds.to("temp@example.test")
    assert copy.startswith(f"X-Mailmoat-Id: {env.tracking_id(1)}\r\n".encode())
    # nothing is sent twice
    assert await svc.retry_due(now=time.time() + 10_000) == 0
    assert len(ds.to("ok@example.test")) == 1


async def test_connection_failure_queues_and_survives_restart(settings: Settings, store: Store) -> None:
    port = free_port()  # nobody listens here yet: the mail system is down
    relay_settings(settings, port)
    svc = DeliveryService(settings, store)
    envs = [Envelope("alice@example.org", [f"user{i}@example.test"]) for i in range(3)]
    for env in envs:
        out = await svc.deliver(env, RAW, clean(), msg())
        assert out[0].status == "deferred" and "connect" in out[0].reply
    svc.close()
    store.close()

    handler = Downstream(busy=False)
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        store2 = Store(settings.db_url)  # a restarted gateway: the queue is in the database
        svc2 = DeliveryService(settings, store2)
        assert await svc2.retry_due(now=time.time() + 61) == 3
        for env in envs:
            assert len(handler.to(env.rcpt_tos[0])) == 1
            d = store2.get_delivery(env.tracking_id(0))
            assert d is not None and d.status == "delivered"
        store2.close()
    finally:
        ctl.stop()


async def test_retry_loop_delivers_when_downstream_returns(
    settings: Settings, store: Store, downstream: tuple[Downstream, int]
) -> None:
    ds, port = downstream
    relay_settings(settings, port).delivery.retry_schedule = [0]
    svc = DeliveryService(settings, store)
    env = Envelope("alice@example.org", ["temp@example.test"])
    assert (await svc.deliver(env, RAW, clean(), msg()))[0].status == "deferred"
    ds.busy = False
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run_retry_queue(stop))
    try:
        for _ in range(200):  # bounded wait for the background loop, not a timing assertion
            d = store.get_delivery(env.tracking_id(0))
            if d is not None and d.status == "delivered":
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert store.get_delivery(env.tracking_id(0)).status == "delivered"  # type: ignore[union-attr]
    assert len(ds.to("temp@example.test")) == 1


async def test_expired_copy_fails_with_dsn(settings: Settings, store: Store, downstream: tuple[Downstream, int]) -> None:
    ds, port = downstream
    relay_settings(settings, port).delivery.max_queue_age = 3600
    svc = DeliveryService(settings, store)
    env = Envelope("alice@example.org", ["temp@example.test"], received_at=time.time() - 7200)
    out = await svc.deliver(env, RAW, clean(), msg())
    assert out[0].status == "failed" and "gave up" in out[0].reply
    (dsn,) = ds.to("alice@example.org")
    assert b"Status: 4.4.7" in dsn and b"Action: failed" in dsn


@pytest.mark.parametrize(
    ("mail_from", "verdict"),
    [
        ("", clean()),  # null sender: never a DSN (no loops)
        ("alice@example.org", Verdict(Action.TAG, 6.0, [Finding("SPAMMY", 6.0)])),  # spam: no backscatter
        (
            "alice@example.org",
            Verdict(Action.DELIVER, 0.0, [Finding("SPF_FAIL", 0.0, data={"authres": {"method": "spf", "result": "fail"}})]),
        ),  # forged sender
    ],
)
async def test_no_backscatter(
    settings: Settings, store: Store, downstream: tuple[Downstream, int], mail_from: str, verdict: Verdict
) -> None:
    ds, port = downstream
    svc = DeliveryService(relay_settings(settings, port), store)
    env = Envelope(mail_from, ["perm@example.test"])
    assert not dsn_allowed(env, verdict, settings)
    out = await svc.deliver(env, RAW, verdict, msg())
    assert out[0].status == "failed"
    assert ds.received == []


async def test_dsn_is_recorded_and_traceable(settings: Settings, store: Store, downstream: tuple[Downstream, int]) -> None:
    _ds, port = downstream
    svc = DeliveryService(relay_settings(settings, port), store)
    env = Envelope("alice@example.org", ["perm@example.test"])
    await svc.deliver(env, RAW, clean(), msg())
    rows = store.trace(rcpt="alice@example.org")
    assert len(rows) == 1 and rows[0]["mail_from"] == "" and rows[0]["deliveries"][0]["status"] == "delivered"
    assert rows[0]["subject"] == "Undelivered Mail Returned to Sender"


async def test_reconnects_when_the_server_limits_messages_per_connection(
    settings: Settings, store: Store, downstream: tuple[Downstream, int]
) -> None:
    ds, port = downstream
    ds.per_connection = 2
    svc = DeliveryService(relay_settings(settings, port), store)
    env = Envelope("alice@example.org", [f"user{i}@example.test" for i in range(5)])
    out = await svc.deliver(env, RAW, clean(), msg())
    assert [o.status for o in out] == ["delivered"] * 5
    assert len(ds.sessions) == 3
    assert all(len(ds.to(f"user{i}@example.test")) == 1 for i in range(5))
