"""Which held messages a digest lists, to whom, and when: the scheduled times, the categories users may see, what is due."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select

from mailmoat.config import Settings
from mailmoat.digest.text import shown
from mailmoat.model import Action
from mailmoat.policy.categories import categories
from mailmoat.policy.decide import DENYLISTED
from mailmoat.store.db import HELD, Store
from mailmoat.store.digest_models import DigestRow
from mailmoat.store.models import DeliveryRow, MessageRow

SENDING, SENT, FAILED = "sending", "sent", "failed"
# How a listed message's link works: the recipient releases it, or asks the administrators to.
RELEASE, REQUEST = "release", "request"


@dataclass
class Item:
    """One held message as a digest lists it."""

    mail_id: str
    received_at: float
    sender: str
    subject: str
    link: str = ""
    way: str = RELEASE


@dataclass
class Digest:
    """What one recipient is to be told at one scheduled time."""

    recipient: str
    slot: str
    items: list[Item]
    total: int
    covered_until: float
    links_until: float = 0.0
    tokens: list[str] = field(default_factory=list)


def current_slot(settings: Settings, now: float) -> tuple[str, float]:
    """The latest scheduled digest time at or before `now` (local time): ("YYYY-MM-DDTHH", its timestamp)."""
    local = datetime.fromtimestamp(now)
    times = [
        datetime(day.year, day.month, day.day, hour)
        for day in (local.date(), local.date() - timedelta(days=1))
        for hour in set(settings.digest.hours)
    ]
    slot = max(t for t in times if t <= local)
    return slot.strftime("%Y-%m-%dT%H"), slot.timestamp()


def way(settings: Settings, row: MessageRow) -> str:
    """How a held message is listed to its recipient: RELEASE (they may release it), REQUEST (they
    may ask the administrators to) or "" (not listed). Listed only when quarantined by the policy
    (not held because an engine failed) and not from a sender the administrators denied; RELEASE
    when every category it has is in `digest.categories`, REQUEST when every one is in those or
    `digest.request_categories`."""
    if row.status != "quarantined" or row.action != Action.QUARANTINE.value:
        return ""
    if any(f.get("symbol") == DENYLISTED.name for f in row.findings or []):
        return ""  # the administrators' decision, not the user's to undo
    cats = categories(row.direction, row.action, row.status, list(row.findings or []))
    if cats <= set(settings.digest.categories):
        return RELEASE
    if cats <= set(settings.digest.categories) | set(settings.digest.request_categories):
        return REQUEST
    return ""


def offered(settings: Settings, row: MessageRow) -> bool:
    """Whether a held message may be released by its recipient (see `way`)."""
    return way(settings, row) == RELEASE


def gets_digests(settings: Settings, address: str) -> bool:
    """Whether a recipient is one of ours that digests go to (`digest.domains`, `digest.exclude`)."""
    address = address.strip().lower()
    domain = address.rpartition("@")[2]
    if not domain or domain not in {d.strip().lower() for d in settings.server.domains}:
        return False
    cfg = settings.digest
    return (not cfg.domains or domain in cfg.domains) and address not in cfg.exclude


def sender_of(row: MessageRow) -> str:
    """The sender as a digest shows it: display name and address."""
    addr = row.from_addr or row.mail_from or "<>"
    return shown(f"{row.from_display} <{addr}>" if row.from_display else addr)


def held_for(store: Store, settings: Settings, until: float, only: Sequence[str] = ()) -> dict[str, list[MessageRow]]:
    """Per local recipient (lower case), the held messages received up to `until` that a digest may
    list, newest first."""
    return {rcpt: [m for m, _ in pairs] for rcpt, pairs in _held(store, settings, until, only).items()}


def _held(store: Store, settings: Settings, until: float, only: Sequence[str]) -> dict[str, list[tuple[MessageRow, float]]]:
    """`held_for`, each message with when the recipient's copy was held."""
    since = until - settings.digest.days * 86400.0
    wanted = {a.strip().lower() for a in only}
    out: dict[str, list[tuple[MessageRow, float]]] = {}
    with store.session() as s:
        rows = s.execute(
            select(DeliveryRow.recipient, DeliveryRow.updated_at, MessageRow)
            .join(MessageRow, MessageRow.id == DeliveryRow.message_id)
            .where(DeliveryRow.status == HELD, MessageRow.status == "quarantined",
                   MessageRow.received_at >= since, MessageRow.received_at <= until)
            .order_by(MessageRow.received_at.desc(), MessageRow.id.desc())
        ).all()
        for rcpt, held_at, msg in rows:
            key = rcpt.strip().lower()
            if (wanted and key not in wanted) or not gets_digests(settings, key) or not way(settings, msg):
                continue
            mine = out.setdefault(key, [])
            if all(m is not msg for m, _ in mine):
                mine.append((msg, float(held_at or 0.0)))
        # Read after the session ends: detached from it, so that its commit expires nothing.
        for m in {m.id: m for pairs in out.values() for m, _ in pairs}.values():
            s.expunge(m)
    return out


def due(store: Store, settings: Settings, now: float, only: Sequence[str] = (), at_now: bool = False) -> list[Digest]:
    """The digests the latest scheduled time calls for (nothing is changed): one per local recipient
    with something held between their last digest and that time, unless that time's was already
    sent. What is held after it waits for the next one, so digests go out at the set hours only.
    A message received before the last digest but held after it (analysis retried, or still under
    way at the digest hour) is new too. `at_now`: as if now were a scheduled time (an
    administrator's `mailmoat digest send --now`)."""
    slot, slot_at = (datetime.fromtimestamp(now).strftime("%Y-%m-%dT%H:%M:%S"), now) if at_now else current_slot(settings, now)
    groups = _held(store, settings, slot_at, only)
    if not groups:
        return []
    with store.session() as s:
        last = {
            rcpt: (float(covered or 0.0), float(at or 0.0))
            for rcpt, covered, at in s.execute(
                select(DigestRow.recipient, func.max(DigestRow.covered_until), func.max(DigestRow.at))
                .where(DigestRow.recipient.in_(list(groups)), DigestRow.status == SENT)
                .group_by(DigestRow.recipient)
            )
        }
        done = set(s.scalars(select(DigestRow.recipient).where(DigestRow.slot == slot, DigestRow.recipient.in_(list(groups)))))
    out: list[Digest] = []
    for rcpt, pairs in sorted(groups.items()):
        covered, made_at = last.get(rcpt, (0.0, 0.0))
        newest_received, newest_held = pairs[0][0].received_at, max(held for _, held in pairs)
        if rcpt in done or (newest_received <= covered and newest_held <= made_at):
            continue
        out.append(_digest(settings, rcpt, slot, [m for m, _ in pairs]))
    return out


def preview(store: Store, settings: Settings, recipient: str, now: float | None = None) -> Digest | None:
    """What `recipient` would be told now, whatever was sent before (nothing is recorded: each link
    reads `<token>`); None when nothing held is listable."""
    now = time.time() if now is None else now
    rcpt = recipient.strip().lower()
    msgs = held_for(store, settings, now, [rcpt]).get(rcpt, [])
    if not msgs:
        return None
    d = _digest(settings, rcpt, current_slot(settings, now)[0], msgs)
    if base := settings.digest.console_url.strip().rstrip("/"):
        d.links_until = now + settings.digest.link_days * 86400.0
        for item in d.items:
            item.link = f"{base}/digest/<token>"
    return d


def _digest(settings: Settings, rcpt: str, slot: str, msgs: list[MessageRow]) -> Digest:
    items = [Item(m.id, m.received_at, sender_of(m), shown(m.subject or ""), way=way(settings, m))
             for m in msgs[: max(1, settings.digest.max_items)]]
    return Digest(rcpt, slot, items, len(msgs), msgs[0].received_at)
