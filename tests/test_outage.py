"""Downstream outage: the mail system is down, then answers 451, then returns; nothing is lost or doubled.

The retry queue lives in the store, so it also survives a gateway restart in the middle.
"""

from __future__ import annotations

import email
import smtplib
from collections import Counter
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from mailmoat.config import Settings
from mailmoat.store.db import Store
from mailmoat.store.models import DeliveryRow
from tests.support.gateway import inprocess_gateway, wait_for
from tests.support.net import free_port


class MailSystem:
    """A downstream SMTP server that can answer 451 for a while."""

    def __init__(self) -> None:
        self.tempfail = True
        self.refused = 0
        self.received: list[tuple[list[str], str]] = []  # (recipients, X-Mailmoat-Id)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        if self.tempfail:
            self.refused += 1
            return "451 4.3.0 Mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        msg = email.message_from_bytes(content if isinstance(content, bytes) else content.encode())
        self.received.append((list(envelope.rcpt_tos), str(msg.get("X-Mailmoat-Id", ""))))
        return "250 2.0.0 Stored"


def _send(host: str, port: int, rcpts: list[str], n: int) -> None:
    with smtplib.SMTP(host, port, timeout=30) as c:
        c.ehlo("client.example.org")
        assert c.mail("sender@example.org")[0] == 250
        for r in rcpts:
            assert c.rcpt(r)[0] == 250
        msg = f"From: sender@example.org\r\nTo: {', '.join(rcpts)}\r\nSubject: outage {n}\r\n\r\nbody {n}\r\n"
        assert c.data(msg.encode())[0] == 250


def _statuses(store: Store) -> Counter[str]:
    with store.session() as s:
        return Counter(s.scalars(select(DeliveryRow.status)))


def test_downstream_outage_queues_and_delivers_everything_once(settings: Settings) -> None:
    port = free_port()
    settings.server.workers = 0
    settings.delivery.relay_to = f"smtp://127.0.0.1:{port}"
    settings.delivery.retry_schedule = [1]
    settings.delivery.connect_timeout = 2.0
    batches = [["a@localhost"], ["b@localhost", "c@localhost"], ["a@localhost"], ["d@localhost"], ["e@localhost"]]
    copies = sum(len(b) for b in batches)
    store = Store(settings.db_url, raw_dir=settings.raw_dir)

    # 1. The mail system is down: every accepted message waits in the queue.
    with inprocess_gateway(settings) as gw:
        for i, rcpts in enumerate(batches):
            _send(gw.host, gw.port, rcpts, i)
        wait_for(lambda: _statuses(store).get("deferred", 0) == copies, timeout=60, what="all copies deferred")
        wait_for(lambda: gw.gateway.spool is not None and gw.gateway.spool.count() == 0, what="the spool to empty")
    settings.server.listen = "127.0.0.1:0"

    # 2. It comes back answering 451; a new gateway (restart) keeps retrying from the stored queue.
    system = MailSystem()
    downstream = Controller(system, hostname="127.0.0.1", port=port, server_hostname="mail.example.com")
    downstream.start()
    try:
        with inprocess_gateway(settings):
            wait_for(lambda: system.refused >= copies + 2, timeout=60, what="retries against the 451s")
            assert system.received == []
            # A copy is "sending" while a retry is in flight; none may be delivered or failed.
            assert set(_statuses(store)) <= {"deferred", "sending"}
            # 3. It accepts again: everything arrives, each copy once.
            system.tempfail = False
            wait_for(lambda: _statuses(store).get("delivered", 0) == copies, timeout=90, what="all copies delivered")
    finally:
        downstream.stop()
    ids = [tid for _, tid in system.received]
    assert len(ids) == copies and len(set(ids)) == copies, ids
    delivered: dict[str, Any] = {}
    with store.session() as s:
        for row in s.scalars(select(DeliveryRow)):
            delivered[row.tracking_id] = row.recipient
            assert row.attempts >= 2 and "250" in row.reply
    assert sorted(ids) == sorted(delivered)
    for rcpts, tid in system.received:
        assert rcpts == [delivered[tid]]
    store.close()
