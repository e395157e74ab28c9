"""Sending digests: each claimed in the store (so several nodes send it once), written, recorded and delivered; the schedule."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from mailmoat import metrics
from mailmoat.config import Settings
from mailmoat.deliver.own_mail import send_own_mail
from mailmoat.digest.compose import render_to_keep
from mailmoat.digest.links import token_hash
from mailmoat.digest.listing import FAILED, SENDING, SENT, Digest, current_slot, due
from mailmoat.schedule import run_every
from mailmoat.store.db import Store
from mailmoat.store.digest_models import DigestLinkRow, DigestRow

log = logging.getLogger("mailmoat.digest")

# How often the gateway looks whether a digest time has come; a digest goes out at most this late.
CHECK_EVERY = 300.0
FIRST_CHECK_AFTER = 60.0
LINKS_KEPT = 30 * 86400.0


def _claim(store: Store, settings: Settings, d: Digest, now: float) -> bool:
    """Record the digest as being sent, with its links, in one commit; False when another node (or
    run) already claimed this recipient's digest for this time."""
    base = settings.digest.console_url.strip().rstrip("/")
    d.links_until = now + settings.digest.link_days * 86400.0
    try:
        with store.session() as s:
            s.add(DigestRow(recipient=d.recipient, slot=d.slot, status=SENDING, items=len(d.items),
                            covered_until=d.covered_until, at=now))
            s.flush()
            if base:
                for item in d.items:
                    token = secrets.token_urlsafe(24)
                    s.add(DigestLinkRow(token_hash=token_hash(token), message_id=item.mail_id, recipient=d.recipient,
                                        created_at=now, expires_at=d.links_until, used_at=0.0, kind=item.way))
                    item.link = f"{base}/digest/{token}"
    except IntegrityError:
        for item in d.items:
            item.link = ""
        return False
    return True


async def _deliver(settings: Settings, store: Store, d: Digest, now: float) -> tuple[str, str]:
    """(mail id, status): the digest recorded and delivered like any mail the gateway makes itself
    (the record without its release links: see render_to_keep)."""
    raw, kept = render_to_keep(settings, d, now)
    mail_id, ok = await send_own_mail(settings, store, d.recipient, raw, "digest", "quarantine digest", kept)
    return mail_id, SENT if ok else FAILED


async def send_due(
    settings: Settings, store: Store, now: float | None = None, only: Sequence[str] = (), at_now: bool = False
) -> list[dict[str, Any]]:
    """Send the digests that are due (see `due`); each is claimed in the store first, so several
    nodes send it once. Returns what was sent: recipient, items, status, mail id."""
    now = time.time() if now is None else now
    results: list[dict[str, Any]] = []
    for d in await asyncio.to_thread(due, store, settings, now, only, at_now):
        if not await asyncio.to_thread(_claim, store, settings, d, now):
            continue
        mail_id, status = "", FAILED
        try:
            mail_id, status = await _deliver(settings, store, d, now)
        except Exception:  # one recipient's failure must not cost the others their digest
            log.exception("digest for %s could not be sent", d.recipient)
        await asyncio.to_thread(_finish, store, d, status, mail_id)
        metrics.DIGESTS.labels(status=status).inc()
        log.info("digest %s to %s: %d of %d held message(s), %s", d.slot, d.recipient, len(d.items), d.total, status)
        results.append({"recipient": d.recipient, "items": len(d.items), "total": d.total, "status": status, "mail_id": mail_id})
    await asyncio.to_thread(_purge_links, store, now)
    return results


def _finish(store: Store, d: Digest, status: str, mail_id: str) -> None:
    with store.session() as s:
        s.execute(update(DigestRow).where(DigestRow.recipient == d.recipient, DigestRow.slot == d.slot)
                  .values(status=status, mail_id=mail_id))


def _purge_links(store: Store, now: float) -> None:
    """Forget links a month after they expired (until then, one opened late says "expired")."""
    with store.session() as s:
        s.execute(delete(DigestLinkRow).where(DigestLinkRow.expires_at < now - LINKS_KEPT))


async def run_digests(settings: Settings, store: Store, stop: asyncio.Event) -> None:
    """`send_due` once per scheduled time, looked for every few minutes until `stop` is set (never
    when digests are off). Once a time's pass is done nothing more can fall due before the next
    time (what is held later waits for it), so the store is not read again until then."""
    if not settings.digest.enabled:
        return
    done = ""

    async def check() -> None:
        nonlocal done
        slot = current_slot(settings, time.time())[0]
        if slot != done:
            await send_due(settings, store)
            done = slot  # not after a failed pass: that one is tried again at the next check

    await run_every(stop, FIRST_CHECK_AFTER, CHECK_EVERY, check, log, "digests: the scheduled run")
