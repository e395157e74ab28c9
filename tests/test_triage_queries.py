"""The queries behind release requests, reports and safe senders, on SQLite and PostgreSQL alike: what waits for a decision, what was answered."""

from __future__ import annotations

import asyncio
import time

import pytest

from mailmoat.config import Settings
from mailmoat.deliver import DeliveryService
from mailmoat.digest import safe_senders
from mailmoat.digest.requests import count_open, decline, open_requests, record_request
from mailmoat.model import Action, Address, Envelope, Message, Verdict
from mailmoat.reports.triage import count_open as open_reports
from mailmoat.reports.triage import dismiss, reported
from mailmoat.store.db import Store
from mailmoat.store.report_models import ReportRow
from tests.support.pg import pg_url  # noqa: F401  (fixture)

ALICE, BOB = "Alice@Victim-Corp.com", "bob@victim-corp.com"


def held(settings: Settings, store: Store, subject: str) -> str:
    """A message held for Alice (as SMTP spelled her) and Bob; its id."""
    env = Envelope("deals@offers.example", [ALICE, BOB], received_at=time.time() - 60)
    raw = f"From: deals@offers.example\r\nSubject: {subject}\r\n\r\nbuy\r\n".encode()
    msg = Message(subject=subject, from_=Address("", "deals@offers.example"))
    verdict = Verdict(Action.QUARANTINE, 12.0, [], ["test"])
    store.record_message(env, msg, verdict, store.retain_raw(env, raw, settings.raw_dir))
    service = DeliveryService(settings, store)
    try:
        asyncio.run(service.deliver(env, raw, verdict, msg))
    finally:
        service.close()
    return env.id


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_what_waits_for_a_decision(settings: Settings, db: str, request: pytest.FixtureRequest) -> None:
    if db == "postgresql":
        settings.db = request.getfixturevalue("pg_url")
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    try:
        first, second = held(settings, store, "one"), held(settings, store, "two")
        # Release requests: Alice's (in any case) and Bob's; one declined, one answered by a release.
        assert record_request(store, first, ALICE) and record_request(store, first, BOB) and record_request(store, second, BOB)
        assert not record_request(store, first, ALICE.lower())
        with store.session() as s:
            assert sorted((r.message_id, r.recipient) for r, _ in open_requests(s)) == sorted(
                [(first, ALICE.lower()), (first, BOB), (second, BOB)])
            assert count_open(s) == 3
            bobs_first = next(r.id for r, _ in open_requests(s) if (r.message_id, r.recipient) == (first, BOB))
            decline(s, bobs_first, "analyst")
        service = DeliveryService(settings, store)
        try:
            asyncio.run(service.release(second, [BOB]))
        finally:
            service.close()
        with store.session() as s:
            assert [(r.message_id, r.recipient) for r, _ in open_requests(s)] == [(first, ALICE.lower())]

        # Reports: two colleagues of one message, one report not found; dismissed, they leave the list.
        with store.session() as s:
            for n, (rcpt, mail_id) in enumerate([(ALICE.lower(), first), (BOB, first), (BOB, "")]):
                s.add(ReportRow(report_id=f"r{n}", reporter=rcpt, message_id=mail_id, matched_by="subject" if mail_id else "none",
                                subject="one", sender="", reported_at=time.time() - n, dismissed_at=0.0, dismissed_by=""))
        with store.session() as s:
            items = reported(s)
            assert sorted((i["key"], tuple(i["reporters"]), i["state"]) for i in items) == sorted(
                [(first, (ALICE.lower(), BOB), "open"), ("r2", (BOB,), "open")])
            assert open_reports(s) == 2
            assert dismiss(s, "r2", "analyst") == 1 and dismiss(s, first, "analyst") == 2
        with store.session() as s:
            assert reported(s) == [] and {i["state"] for i in reported(s, everything=True)} == {"dismissed"}

        # Safe senders: the envelope's spelling of the recipient comes back.
        safe_senders.add(store, ALICE, "Deals@Offers.example", "digest")
        env = Envelope("deals@offers.example", [ALICE, BOB])
        assert safe_senders.safe_for(store, env, "deals@offers.example") == [ALICE]
        assert [e["recipient"] for e in safe_senders.entries(store, ALICE)] == [ALICE.lower()]
    finally:
        store.close()
