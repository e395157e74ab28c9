"""Mail the gateway writes itself (digests, notices to reporters): recorded and delivered like any other, from the null sender."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from mailmoat.config import Settings
from mailmoat.model import Action, Direction, Envelope, Verdict
from mailmoat.store.db import Store

# Listeners that name the gateway's own mail: no banner goes on it, and nothing learns from it.
OWN_LISTENERS = frozenset({"digest", "notice"})


def own_message(settings: Settings, sender: str, recipient: str, subject: str, language: str, now: float,
                kind: str) -> EmailMessage:
    """The headers of a message the gateway writes (`sender` "" = postmaster@<server.hostname>;
    `kind` names it in the Message-ID); its content is the caller's."""
    msg = EmailMessage()
    msg["From"] = formataddr(("mailmoat", sender.strip() or f"postmaster@{settings.server.hostname}"))
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = formatdate(now, localtime=True)
    msg["Message-ID"] = make_msgid(kind, domain=settings.server.hostname)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
    msg["Content-Language"] = "zh-CN" if language == "zh" else "en"
    return msg


async def send_own_mail(settings: Settings, store: Store, recipient: str, raw: bytes, listener: str, why: str,
                        kept: bytes = b"") -> tuple[str, bool]:
    """(mail id, whether it was delivered or queued): `raw` to one local recipient, with a null
    envelope sender so that nothing bounces to it or learns from it; `kept`, when given, is what
    the record keeps of it instead (a digest without its release links)."""
    from mailmoat.deliver import DeliveryService
    from mailmoat.parse import parse

    assert listener in OWN_LISTENERS
    env = Envelope(mail_from="", rcpt_tos=[recipient], direction=Direction.INBOUND, listener=listener,
                   helo=settings.server.hostname, peer_ip="127.0.0.1", size=len(raw))
    verdict = Verdict(Action.DELIVER, 0.0, [], [why])
    message = parse(kept or raw)
    path = await asyncio.to_thread(store.retain_raw, env, kept or raw, settings.raw_dir)
    await asyncio.to_thread(store.record_message, env, message, verdict, path)
    service = DeliveryService(settings, store)
    try:
        outcomes = await service.deliver(env, raw, verdict, message)
    finally:
        service.close()
    return env.id, bool(outcomes) and all(o.status in ("delivered", "deferred") for o in outcomes)
