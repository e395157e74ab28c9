"""Correspondence: a reply to the organisation's own mail, or authenticated mail from someone it writes to."""

from __future__ import annotations

import time

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.correspondence import CorrespondenceAnalyzer, referenced_ids
from mailmoat.config import Settings
from mailmoat.model import Action, Direction, Envelope, Finding, Verdict
from mailmoat.parse import parse
from mailmoat.store.db import Store
from tests.support.detmsg import message, simple

ORG = "acme-corp.cn"
PARTNER = "li.ming@vendor.example"
DAY = 86400.0
DMARC_PASS = Finding("DMARC_PASS", -1.0, "auth", "DMARC pass for vendor.example")


def _sent(store: Store, to: str, msgid: str, when: float, status: str = "delivered") -> None:
    """An outbound message from a colleague to `to`, recorded and its copy finished with `status`."""
    env = Envelope(f"wang@{ORG}", [to], received_at=when, direction=Direction.OUTBOUND, listener="internal")
    msg = parse(
        f"From: Wang <wang@{ORG}>\r\nTo: {to}\r\nSubject: Quote\r\nMessage-ID: {msgid}\r\n\r\nThe quote.\r\n".encode()
    )
    (claim,) = store.record_and_claim(
        env, msg, Verdict(Action.DELIVER, 0.0), "", [(0, to, to, env.tracking_id(0))], lease_until=time.time() + 60
    )
    store.finish([{"tracking_id": claim.tracking_id, "status": status, "delivered_at": when}])


async def _scan(
    store: Store, settings: Settings, from_: str, extra: str = "", prior: list[Finding] | None = None,
    direction: Direction = Direction.INBOUND,
) -> dict[str, Finding]:
    an = CorrespondenceAnalyzer(AnalyzerEnv(settings=settings, store=store))
    msg = message(simple(from_, extra=extra))
    env = Envelope(mail_from=msg.from_.addr, rcpt_tos=[f"wang@{ORG}"], direction=direction)
    ctx = AnalysisContext(message=msg, envelope=env, settings=settings, prior=list(prior or []))
    return {f.symbol: f for f in await an.analyze(ctx)}


def test_referenced_ids_newest_first() -> None:
    assert referenced_ids("<c@x>", "<a@x> <b@x>\r\n <c@x>") == ["<c@x>", "<b@x>", "<a@x>"]
    assert referenced_ids("", "no ids here") == []


async def test_a_reply_to_our_own_mail(store: Store, settings: Settings) -> None:
    _sent(store, PARTNER, "<q3-quote@acme-corp.cn>", time.time() - 600)
    reply = "In-Reply-To: <q3-quote@acme-corp.cn>\r\nReferences: <q3-quote@acme-corp.cn>\r\n"
    got = await _scan(store, settings, f"Li Ming <{PARTNER}>", reply)
    assert got["REPLY_TO_OUR_MAIL"].score < 0
    assert "q3-quote@acme-corp.cn" in got["REPLY_TO_OUR_MAIL"].evidence and f"wang@{ORG}" in got["REPLY_TO_OUR_MAIL"].evidence
    # The same reply headers from an address the message never went to are no reply to it.
    assert await _scan(store, settings, "Li Ming <li.ming@vendor-mail.example>", reply) == {}
    # A message id this organisation never sent, or no reply headers at all: nothing.
    assert await _scan(store, settings, f"Li Ming <{PARTNER}>", "In-Reply-To: <other@vendor.example>\r\n") == {}
    assert await _scan(store, settings, f"Li Ming <{PARTNER}>") == {}
    # Only inbound mail is read.
    assert await _scan(store, settings, f"Li Ming <{PARTNER}>", reply, direction=Direction.INTERNAL) == {}


async def test_a_copy_that_never_left_earns_nothing(store: Store, settings: Settings) -> None:
    # Held (a compromised colleague's mail to the attacker, say): no trust for the attacker's answer.
    _sent(store, PARTNER, "<held@acme-corp.cn>", time.time() - 2 * DAY, status="held")
    got = await _scan(store, settings, f"Li Ming <{PARTNER}>", "In-Reply-To: <held@acme-corp.cn>\r\n", [DMARC_PASS])
    assert got == {}


async def test_a_known_correspondent_needs_dmarc_and_a_day(store: Store, settings: Settings) -> None:
    _sent(store, PARTNER, "<m1@acme-corp.cn>", time.time() - 3 * DAY)
    _sent(store, PARTNER, "<m2@acme-corp.cn>", time.time() - 1 * DAY)
    got = await _scan(store, settings, f"Li Ming <{PARTNER}>", prior=[DMARC_PASS])
    assert got["KNOWN_CORRESPONDENT"].data["copies"] == 2 and got["KNOWN_CORRESPONDENT"].score < 0
    # The same address in a From that did not authenticate is what a spoofer writes.
    assert await _scan(store, settings, f"Li Ming <{PARTNER}>") == {}
    # Written to for the first time an hour ago: not yet a correspondent (a reply would still count).
    _sent(store, "new.contact@shop.example", "<m3@acme-corp.cn>", time.time() - 3600)
    assert await _scan(store, settings, "Shop <new.contact@shop.example>", prior=[DMARC_PASS]) == {}
    got = await _scan(store, settings, "Shop <new.contact@shop.example>", "In-Reply-To: <m3@acme-corp.cn>\r\n")
    assert "REPLY_TO_OUR_MAIL" in got


async def test_the_address_is_found_whatever_case_the_colleague_typed(store: Store, settings: Settings) -> None:
    """SMTP keeps "John.Smith@Partner.example" as typed; the partner's mail comes from john.smith@..."""
    _sent(store, "John.Smith@Partner.example", "<m4@acme-corp.cn>", time.time() - 2 * DAY)
    got = await _scan(store, settings, "John Smith <john.smith@partner.example>", prior=[DMARC_PASS])
    assert got["KNOWN_CORRESPONDENT"].data["copies"] == 1
    got = await _scan(store, settings, "John Smith <JOHN.SMITH@partner.example>", "In-Reply-To: <m4@acme-corp.cn>\r\n")
    assert "REPLY_TO_OUR_MAIL" in got


async def test_without_a_store_it_is_off(settings: Settings) -> None:
    assert not CorrespondenceAnalyzer(AnalyzerEnv(settings=settings)).enabled()


def test_through_the_gateway_a_partners_reply_is_recognised(settings: Settings) -> None:
    """Real SMTP on loopback: a colleague's mail leaves through the relay listener, the partner's
    answer comes in through the MX and is recorded with REPLY_TO_OUR_MAIL; a stranger's mail
    naming the same message id is not."""
    import smtplib

    from sqlalchemy import select

    from mailmoat.store.models import MessageRow
    from tests.support.gateway import inprocess_gateway, wait_for

    settings.server.domains = [ORG]
    settings.server.listen = "127.0.0.1:0"
    settings.server.internal_listen = "127.0.0.1:0"
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    out = (
        f"From: Wang <wang@{ORG}>\r\nTo: {PARTNER}\r\nSubject: Quote for Q3\r\n"
        "Message-ID: <q3-quote@acme-corp.cn>\r\n\r\nPlease find our quote below.\r\n"
    )

    def answer(frm: str) -> str:
        return (
            f"From: {frm}\r\nTo: wang@{ORG}\r\nSubject: Re: Quote for Q3\r\n"
            f"Message-ID: <{frm.split('@')[0]}-re@vendor.example>\r\n"
            "In-Reply-To: <q3-quote@acme-corp.cn>\r\nReferences: <q3-quote@acme-corp.cn>\r\n\r\nThanks, agreed.\r\n"
        )

    def symbols(frm: str) -> dict[str, float] | None:
        with store.session() as s:
            row = s.scalars(select(MessageRow).where(MessageRow.from_addr == frm, MessageRow.direction == "inbound")).first()
            return dict(row.symbols) if row is not None else None

    def delivered_out() -> bool:
        with store.session() as s:
            row = s.scalars(select(MessageRow).where(MessageRow.direction == "outbound")).first()
            return row is not None and any(d.status == "delivered" for d in row.deliveries)

    try:
        with inprocess_gateway(settings) as gw:
            with smtplib.SMTP("127.0.0.1", gw.internal_port, timeout=30) as smtp:
                smtp.sendmail(f"wang@{ORG}", [PARTNER], out.encode())
            wait_for(delivered_out, timeout=60, what="the outbound copy to be delivered")
            with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as smtp:
                smtp.sendmail(PARTNER, [f"wang@{ORG}"], answer(PARTNER).encode())
                smtp.sendmail("someone@elsewhere.example", [f"wang@{ORG}"], answer("someone@elsewhere.example").encode())
            got = wait_for(lambda: symbols(PARTNER), timeout=60, what="the partner's reply to be recorded")
            other = wait_for(lambda: symbols("someone@elsewhere.example"), timeout=60, what="the stranger's mail")
    finally:
        store.close()
    assert got.get("REPLY_TO_OUR_MAIL", 0) < 0
    assert "REPLY_TO_OUR_MAIL" not in other
