"""Recipients' safe senders: chosen on a digest's release page, they release that recipient's copy of later spam-held mail from the sender at once; never phishing, malware or a failed DMARC."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from mailmoat import metrics
from mailmoat.config import Settings
from mailmoat.model import Action, Direction, Envelope, Message, Verdict
from mailmoat.policy.categories import categories
from mailmoat.policy.decide import DENYLISTED, dmarc_failed
from mailmoat.store.audit import audit
from mailmoat.store.db import Store
from mailmoat.store.digest_models import SafeSenderRow

log = logging.getLogger("mailmoat.digest")


def add(store: Store, recipient: str, sender: str, via: str) -> tuple[dict[str, Any], bool]:
    """(the entry, whether it is new), in a session of its own; the loser of two at once updates."""
    rcpt, addr = recipient.strip().lower(), sender.strip().strip("<>").lower()
    if "@" not in addr or "@" not in rcpt:
        raise ValueError(f"not an address: {sender!r}")

    def once() -> tuple[dict[str, Any], bool]:
        with store.session() as s:
            row = s.scalar(select(SafeSenderRow).where(SafeSenderRow.recipient == rcpt, SafeSenderRow.sender == addr))
            new = row is None
            if row is None:
                row = SafeSenderRow(recipient=rcpt, sender=addr, created_at=time.time(), via=via[:64])
                s.add(row)
                s.flush()
            return entry_dict(row), new

    try:
        return once()
    except IntegrityError:
        return once()


def entry_dict(r: SafeSenderRow) -> dict[str, Any]:
    return {"id": r.id, "recipient": r.recipient, "sender": r.sender, "created_at": r.created_at, "via": r.via}


def entries(store: Store, recipient: str = "") -> list[dict[str, Any]]:
    with store.session() as s:
        q = select(SafeSenderRow).order_by(SafeSenderRow.recipient, SafeSenderRow.sender)
        if recipient:
            q = q.where(SafeSenderRow.recipient == recipient.strip().lower())
        return [entry_dict(r) for r in s.scalars(q)]


def remove(store: Store, entry_id: int) -> dict[str, Any] | None:
    with store.session() as s:
        row = s.get(SafeSenderRow, entry_id)
        if row is None:
            return None
        out = entry_dict(row)
        s.execute(delete(SafeSenderRow).where(SafeSenderRow.id == entry_id))
        return out


def honoured(settings: Settings, envelope: Envelope, verdict: Verdict) -> bool:
    """Whether a recipient's safe sender may release their copy of this message: mail from outside,
    held by the policy, of no category beyond what users may release from their digests
    (`digest.categories`: spam by default), not from a denied sender, and DMARC did not fail (a
    forged From must not pass as the safe sender)."""
    if envelope.direction is not Direction.INBOUND or verdict.action is not Action.QUARANTINE:
        return False
    if any(f.symbol == DENYLISTED.name for f in verdict.findings) or dmarc_failed(verdict.findings):
        return False
    cats = categories(envelope.direction.value, verdict.action.value, "quarantined", [f.to_dict() for f in verdict.findings])
    return cats <= set(settings.digest.categories)


def safe_for(store: Store, envelope: Envelope, sender: str) -> list[str]:
    """The recipients of `envelope` who keep `sender` as a safe sender, as the envelope spells them."""
    addr = sender.strip().lower()
    if not addr:
        return []
    wanted = {r.strip().lower(): r for r in envelope.rcpt_tos}
    with store.session() as s:
        hits = s.scalars(select(SafeSenderRow.recipient).where(SafeSenderRow.sender == addr,
                                                              SafeSenderRow.recipient.in_(sorted(wanted)))).all()
    return [wanted[h] for h in hits if h in wanted]


async def release_to_safe(settings: Settings, store: Store, delivery: Any, envelope: Envelope, message: Message,
                          verdict: Verdict) -> list[str]:
    """Release, at once, the held copies of the recipients who keep the sender as safe (the others
    stay held); audited as `safe-sender:<recipient>`. Never raises: the copies stay held."""
    if not honoured(settings, envelope, verdict):
        return []
    try:
        rcpts = await asyncio.to_thread(safe_for, store, envelope, message.from_.addr)
        if not rcpts:
            return []
        # A personal preference, not a judgment: nothing is learnt from it, for anyone.
        outcomes = await delivery.release(envelope.id, rcpts, judged=False)
        copies = [{"recipient": o.recipient, "tracking_id": o.tracking_id, "status": o.status} for o in outcomes]

        def record() -> None:
            with store.session() as s:
                for rcpt in rcpts:
                    audit(s, f"safe-sender:{rcpt.lower()}", "quarantine.release", envelope.id, source="safe-sender",
                          detail={"copies": copies, "recipients": [rcpt], "sender": message.from_.addr.lower()})

        await asyncio.to_thread(record)
        metrics.SAFE_SENDER_RELEASES.inc(len(rcpts))
        return rcpts
    except Exception:
        log.exception("message %s: releasing it to its recipients' safe-sender lists failed (it stays held)", envelope.id)
        return []
