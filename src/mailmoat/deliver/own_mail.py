"""Mail the gateway writes itself (digests, notices to reporters): recorded and delivered like any other, from the null sender."""

from __future__ import annotations

import asyncio

from mailmoat.config import Settings
from mailmoat.model import Action, Direction, Envelope, Verdict
from mailmoat.store.db import Store

# Listeners that name the gateway's own mail: no banner goes on it, and nothing learns from it.
OWN_LISTENERS = frozenset({"digest", "notice"})


async def send_own_mail(settings: Settings, store: Store, recipient: str, raw: bytes, listener: str, why: str) -> tuple[str, bool]:
    """(mail id, whether it was delivered or queued): `raw` to one local recipient, with a null
    envelope sender so that nothing bounces to it or learns from it."""
    from mailmoat.deliver import DeliveryService
    from mailmoat.parse import parse

    assert listener in OWN_LISTENERS
    env = Envelope(mail_from="", rcpt_tos=[recipient], direction=Direction.INBOUND, listener=listener,
                   helo=settings.server.hostname, peer_ip="127.0.0.1", size=len(raw))
    verdict = Verdict(Action.DELIVER, 0.0, [], [why])
    message = parse(raw)
    path = await asyncio.to_thread(store.retain_raw, env, raw, settings.raw_dir)
    await asyncio.to_thread(store.record_message, env, message, verdict, path)
    service = DeliveryService(settings, store)
    try:
        outcomes = await service.deliver(env, raw, verdict, message)
    finally:
        service.close()
    return env.id, bool(outcomes) and all(o.status in ("delivered", "deferred") for o in outcomes)
