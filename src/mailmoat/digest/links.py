"""Links of digests: what a token stands for (read only), and releasing the recipient's own copy through it, or asking the administrators to, once."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from mailmoat import metrics
from mailmoat.config import Settings
from mailmoat.digest import safe_senders
from mailmoat.digest.listing import RELEASE, REQUEST, sender_of, way
from mailmoat.digest.requests import record_request
from mailmoat.digest.text import shown
from mailmoat.store.audit import audit
from mailmoat.store.db import HELD, Store
from mailmoat.store.digest_models import DigestLinkRow
from mailmoat.store.models import DeliveryRow, MessageRow
from mailmoat.store.queries import recipient_is


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Link:
    """What a link stands for, and whether it can still be used: state is "ok", "unknown",
    "expired", "used" (released through it), "requested" (a request link, used), "done" (the copy
    is no longer held: released or deleted by the administrators) or "withheld" (the message is no
    longer one users may release, or ask for). `way` is RELEASE or REQUEST."""

    state: str
    mail_id: str = ""
    recipient: str = ""
    subject: str = ""
    sender: str = ""
    received_at: float = 0.0
    way: str = RELEASE
    sender_addr: str = ""  # the From address, lower case (what a safe sender entry keeps)


def look_up(store: Store, settings: Settings, token: str, now: float | None = None) -> Link:
    """The link behind a token, read only (opening the page must release nothing: mail filters and
    previews open links)."""
    now = time.time() if now is None else now
    with store.session() as s:
        link = s.get(DigestLinkRow, token_hash(token)) if token else None
        if link is None:
            return Link("unknown")
        msg = s.get(MessageRow, link.message_id)
        if msg is None:
            return Link("unknown")
        info = Link("ok", msg.id, link.recipient, shown(msg.subject or ""), sender_of(msg), msg.received_at,
                    REQUEST if link.kind == REQUEST else RELEASE, (msg.from_addr or "").lower())
        copies = s.scalars(select(DeliveryRow.status).where(DeliveryRow.message_id == msg.id, recipient_is(link.recipient))).all()
        # A request link stays good when the message became one the user may release: asking is
        # never more than releasing. A release link needs the message to be one still.
        allowed = (RELEASE, REQUEST) if info.way == REQUEST else (RELEASE,)
        if link.used_at:
            info.state = "requested" if info.way == REQUEST else "used"
        elif link.expires_at < now:
            info.state = "expired"
        elif HELD not in copies or msg.status != "quarantined":
            info.state = "done"
        elif way(settings, msg) not in allowed or not msg.raw_path:  # no longer the user's, or purged by retention
            info.state = "withheld"
        return info


async def redeem(settings: Settings, store: Store, delivery: Any, token: str, ip: str = "",
                 allow_sender: bool = False) -> tuple[Link, str]:
    """Release the recipient's own copy named by a link, or ask for it, once: (the link as it was,
    the copy's delivery status or "requested", or "" when nothing was done). Audited as
    `digest:<recipient>`. `allow_sender`: with a release, the sender becomes one of the
    recipient's safe senders (`digest.safe_senders`)."""
    from mailmoat.deliver.service import ReleaseError

    now = time.time()
    info = await asyncio.to_thread(look_up, store, settings, token, now)
    if info.state != "ok":
        return info, ""

    def take() -> bool:  # one use: of two clicks at once, one wins
        with store.session() as s:
            res = s.execute(update(DigestLinkRow).where(DigestLinkRow.token_hash == token_hash(token), DigestLinkRow.used_at == 0.0)
                            .values(used_at=now))
            return bool(getattr(res, "rowcount", 0))

    if not await asyncio.to_thread(take):
        info.state = "requested" if info.way == REQUEST else "used"
        return info, ""
    if info.way == REQUEST:
        await asyncio.to_thread(_ask, store, info, ip)
        return info, "requested"
    try:
        outcomes = await delivery.release(info.mail_id, (info.recipient,))
    except ReleaseError:
        await asyncio.to_thread(_untake, store, token)
        info.state = "done"
        return info, ""
    copies = [{"recipient": o.recipient, "tracking_id": o.tracking_id, "status": o.status, "reply": o.reply} for o in outcomes]

    def record() -> None:
        with store.session() as s:
            audit(s, f"digest:{info.recipient}", "quarantine.release", info.mail_id, source="digest",
                  detail={"copies": copies, "recipients": [info.recipient], "ip": ip})

    await asyncio.to_thread(record)
    metrics.DIGEST_RELEASES.inc()
    if allow_sender and settings.digest.safe_senders and info.sender_addr:
        await asyncio.to_thread(_keep_sender, store, info, ip)
    return info, outcomes[0].status if outcomes else ""


def _keep_sender(store: Store, info: Link, ip: str) -> None:
    entry, new = safe_senders.add(store, info.recipient, info.sender_addr, "digest")
    with store.session() as s:
        audit(s, f"digest:{info.recipient}", "safe_sender.add", f"{entry['recipient']}:{entry['sender']}", source="digest",
              detail={**entry, "new": new, "ip": ip, "mail_id": info.mail_id})


def _ask(store: Store, info: Link, ip: str) -> None:
    new = record_request(store, info.mail_id, info.recipient)
    with store.session() as s:
        audit(s, f"digest:{info.recipient}", "quarantine.request", info.mail_id, source="digest",
              detail={"recipients": [info.recipient], "ip": ip, "again": not new})
    metrics.RELEASE_REQUESTS.inc()


def _untake(store: Store, token: str) -> None:
    with store.session() as s:
        s.execute(update(DigestLinkRow).where(DigestLinkRow.token_hash == token_hash(token)).values(used_at=0.0))
