"""Quarantine digests: each local recipient is told, at set hours, what was held for them, with links to release it."""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from mailmoat import metrics
from mailmoat.config import Settings
from mailmoat.model import Action, Direction, Envelope, Verdict
from mailmoat.policy.categories import categories
from mailmoat.schedule import run_every
from mailmoat.store.audit import audit
from mailmoat.store.db import HELD, Store
from mailmoat.store.digest_models import DigestLinkRow, DigestRow
from mailmoat.store.models import DeliveryRow, MessageRow
from mailmoat.store.queries import recipient_is

log = logging.getLogger("mailmoat.digest")

SENDING, SENT, FAILED = "sending", "sent", "failed"
# How often the gateway looks whether a digest time has come; a digest goes out at most this late.
CHECK_EVERY = 300.0
FIRST_CHECK_AFTER = 60.0
MAX_SUBJECT = 150
LINKS_KEPT = 30 * 86400.0
# Control, line-break and bidi-override characters: a subject must show as one honest line.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]+")
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{1,15}):/+")
_WWW = re.compile(r"(?i)\b(www)\.")

_TEXT = {
    "en": {
        "subject": "Quarantine digest: {n} message(s) held for you",
        "intro": "These messages addressed to {rcpt} were held as likely spam and were not delivered (newest first).",
        "links": "If one of them is legitimate, open its link to release it to your mailbox. The links work until {until}.",
        "nolinks": "If one of them is legitimate, ask your mail administrators to release it.",
        "hidden": "Messages judged to be phishing or malware are never listed here; your administrators handle them.",
        "date": "Date", "from": "From", "subject_col": "Subject", "release": "Release",
        "more": "... and {n} more; your administrators can see them all.",
    },
    "zh": {
        "subject": "隔离邮件摘要：{n} 封发给您的邮件被拦截",
        "intro": "以下发给 {rcpt} 的邮件被判定为疑似垃圾邮件，已被拦截，未投递（最新的在前）。",
        "links": "如果其中有正常邮件，请打开对应的链接，将其放行到您的邮箱。链接有效期至 {until}。",
        "nolinks": "如果其中有正常邮件，请联系邮件管理员放行。",
        "hidden": "被判定为钓鱼或恶意软件的邮件不会列在这里，由管理员处理。",
        "date": "时间", "from": "发件人", "subject_col": "主题", "release": "放行",
        "more": "……还有 {n} 封；管理员可以看到全部。",
    },
}


@dataclass
class Item:
    """One held message as a digest lists it."""

    mail_id: str
    received_at: float
    sender: str
    subject: str
    link: str = ""


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


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def shown(text: str, limit: int = MAX_SUBJECT) -> str:
    """Text from mail as one line a reader can trust: no control or bidi characters, bounded, and
    no address a mail client would turn into a link (a subject must not pose as a release link)."""
    t = _UNSAFE.sub(" ", text).strip()
    t = _SCHEME.sub(lambda m: m.group(1) + "[:]//", t)
    t = _WWW.sub(lambda m: m.group(1) + "[.]", t)
    return t if len(t) <= limit else t[: limit - 1] + "…"


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


def offered(settings: Settings, row: MessageRow) -> bool:
    """Whether a held message may be listed to, and released by, its recipient: quarantined by the
    policy (not held because an engine failed) and of no category outside `digest.categories`."""
    if row.status != "quarantined" or row.action != Action.QUARANTINE.value:
        return False
    return categories(row.direction, row.action, row.status, list(row.findings or [])) <= set(settings.digest.categories)


def _local(settings: Settings, address: str) -> bool:
    domain = address.rpartition("@")[2].strip().lower()
    return bool(domain) and domain in {d.strip().lower() for d in settings.server.domains}


def _sender(row: MessageRow) -> str:
    addr = row.from_addr or row.mail_from or "<>"
    return shown(f"{row.from_display} <{addr}>" if row.from_display else addr)


def held_for(store: Store, settings: Settings, until: float, only: Sequence[str] = ()) -> dict[str, list[MessageRow]]:
    """Per local recipient (lower case), the held messages received up to `until` that a digest may
    list, newest first."""
    since = until - settings.digest.days * 86400.0
    wanted = {a.strip().lower() for a in only}
    out: dict[str, list[MessageRow]] = {}
    with store.session() as s:
        rows = s.execute(
            select(DeliveryRow.recipient, MessageRow)
            .join(MessageRow, MessageRow.id == DeliveryRow.message_id)
            .where(DeliveryRow.status == HELD, MessageRow.status == "quarantined",
                   MessageRow.received_at >= since, MessageRow.received_at <= until)
            .order_by(MessageRow.received_at.desc(), MessageRow.id.desc())
        ).all()
        for rcpt, msg in rows:
            key = rcpt.strip().lower()
            if (wanted and key not in wanted) or not _local(settings, key) or not offered(settings, msg):
                continue
            if msg not in out.setdefault(key, []):
                out[key].append(msg)
        # Read after the session ends: detached from it, so that its commit expires nothing.
        for m in {m.id: m for msgs in out.values() for m in msgs}.values():
            s.expunge(m)
    return out


def due(store: Store, settings: Settings, now: float, only: Sequence[str] = (), at_now: bool = False) -> list[Digest]:
    """The digests the latest scheduled time calls for (nothing is changed): one per local recipient
    with something held between their last digest and that time, unless that time's was already
    sent. What is held after it waits for the next one, so digests go out at the set hours only.
    `at_now`: as if now were a scheduled time (an administrator's `mailmoat digest send --now`)."""
    slot, slot_at = (datetime.fromtimestamp(now).strftime("%Y-%m-%dT%H:%M:%S"), now) if at_now else current_slot(settings, now)
    groups = held_for(store, settings, slot_at, only)
    if not groups:
        return []
    with store.session() as s:
        covered = dict(
            s.execute(
                select(DigestRow.recipient, func.max(DigestRow.covered_until))
                .where(DigestRow.recipient.in_(list(groups)), DigestRow.status == SENT)
                .group_by(DigestRow.recipient)
            ).all()
        )
        done = set(s.scalars(select(DigestRow.recipient).where(DigestRow.slot == slot, DigestRow.recipient.in_(list(groups)))))
    out: list[Digest] = []
    for rcpt, msgs in sorted(groups.items()):
        if rcpt in done or msgs[0].received_at <= covered.get(rcpt, 0.0):
            continue
        out.append(_digest(settings, rcpt, slot, msgs))
    return out


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
                                        created_at=now, expires_at=d.links_until, used_at=0.0))
                    item.link = f"{base}/digest/{token}"
    except IntegrityError:
        for item in d.items:
            item.link = ""
        return False
    return True


def compose(settings: Settings, d: Digest) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of the digest, in `digest.language`; everything from mail escaped."""
    t = _TEXT[settings.digest.language]
    until = datetime.fromtimestamp(d.links_until).strftime("%Y-%m-%d %H:%M") if d.links_until else ""
    has_links = any(i.link for i in d.items)
    intro = [t["intro"].format(rcpt=d.recipient), t["links"].format(until=until) if has_links else t["nolinks"], t["hidden"]]
    more = t["more"].format(n=d.total - len(d.items)) if d.total > len(d.items) else ""
    lines = [*intro, ""]
    for n, i in enumerate(d.items, 1):
        when = datetime.fromtimestamp(i.received_at).strftime("%Y-%m-%d %H:%M")
        lines += [f"{n}. {when}  {t['from']}: {i.sender}", f"   {t['subject_col']}: {i.subject}"]
        if i.link:
            lines.append(f"   {t['release']}: {i.link}")
        lines.append("")
    if more:
        lines.append(more)
    e = html.escape

    def row(i: Item) -> str:
        when = datetime.fromtimestamp(i.received_at).strftime("%Y-%m-%d %H:%M")
        link = f'<a href="{e(i.link)}">{e(t["release"])}</a>' if i.link else ""
        return f"<tr><td>{e(when)}</td><td>{e(i.sender)}</td><td>{e(i.subject)}</td><td>{link}</td></tr>"

    page = (
        f'<!doctype html><html lang="{"zh-CN" if settings.digest.language == "zh" else "en"}"><head><meta charset="utf-8"></head><body>'
        + "".join(f"<p>{e(p)}</p>" for p in intro)
        + f'<table border="1" cellpadding="4" cellspacing="0"><tr><th>{e(t["date"])}</th><th>{e(t["from"])}</th>'
        f'<th>{e(t["subject_col"])}</th><th></th></tr>{"".join(row(i) for i in d.items)}</table>'
        + (f"<p>{e(more)}</p>" if more else "")
        + "</body></html>"
    )
    return t["subject"].format(n=d.total), "\n".join(lines), page


def render(settings: Settings, d: Digest, now: float) -> bytes:
    """The digest as a MIME message: the plain text, and the same as an HTML table."""
    subject, text, page = compose(settings, d)
    sender = settings.digest.sender.strip() or f"postmaster@{settings.server.hostname}"
    msg = EmailMessage()
    msg["From"] = formataddr(("mailmoat", sender))
    msg["To"] = d.recipient
    msg["Subject"] = subject
    msg["Date"] = formatdate(now, localtime=True)
    msg["Message-ID"] = make_msgid("digest", domain=settings.server.hostname)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
    msg["Content-Language"] = "zh-CN" if settings.digest.language == "zh" else "en"
    msg.set_content(text)
    msg.add_alternative(page, subtype="html")
    return msg.as_bytes()


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
    items = [Item(m.id, m.received_at, _sender(m), shown(m.subject or "")) for m in msgs[: max(1, settings.digest.max_items)]]
    return Digest(rcpt, slot, items, len(msgs), msgs[0].received_at)


async def _deliver(settings: Settings, store: Store, d: Digest, raw: bytes) -> tuple[str, str]:
    """(mail id, status): the digest recorded and delivered like any mail the gateway makes itself
    (null envelope sender, so that nothing bounces to or learns from it)."""
    from mailmoat.deliver import DeliveryService
    from mailmoat.parse import parse

    env = Envelope(mail_from="", rcpt_tos=[d.recipient], direction=Direction.INBOUND, listener="digest",
                   helo=settings.server.hostname, peer_ip="127.0.0.1", size=len(raw))
    verdict = Verdict(Action.DELIVER, 0.0, [], ["quarantine digest"])
    message = parse(raw)
    path = await asyncio.to_thread(store.retain_raw, env, raw, settings.raw_dir)
    await asyncio.to_thread(store.record_message, env, message, verdict, path)
    service = DeliveryService(settings, store)
    try:
        outcomes = await service.deliver(env, raw, verdict, message)
    finally:
        service.close()
    ok = bool(outcomes) and all(o.status in ("delivered", "deferred") for o in outcomes)
    return env.id, SENT if ok else FAILED


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
            mail_id, status = await _deliver(settings, store, d, render(settings, d, now))
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
    from sqlalchemy import delete

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


# -- release links ------------------------------------------------------------------------------

@dataclass
class Link:
    """What a release link stands for, and whether it can still be used: state is "ok", "unknown",
    "expired", "used" (released through it), "done" (the copy is no longer held: released or
    deleted by the administrators) or "withheld" (the message is no longer one users may release)."""

    state: str
    mail_id: str = ""
    recipient: str = ""
    subject: str = ""
    sender: str = ""
    received_at: float = 0.0


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
        info = Link("ok", msg.id, link.recipient, shown(msg.subject or ""), _sender(msg), msg.received_at)
        copies = s.scalars(select(DeliveryRow.status).where(DeliveryRow.message_id == msg.id, recipient_is(link.recipient))).all()
        if link.used_at:
            info.state = "used"
        elif link.expires_at < now:
            info.state = "expired"
        elif HELD not in copies or msg.status != "quarantined":
            info.state = "done"
        elif not offered(settings, msg):
            info.state = "withheld"
        return info


async def redeem(settings: Settings, store: Store, delivery: Any, token: str, ip: str = "") -> tuple[Link, str]:
    """Release the recipient's own copy named by a link, once: (the link as it was, the copy's
    delivery status, or "" when nothing was released). Audited as `digest:<recipient>`."""
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
        info.state = "used"
        return info, ""
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
    return info, outcomes[0].status if outcomes else ""


def _untake(store: Store, token: str) -> None:
    with store.session() as s:
        s.execute(update(DigestLinkRow).where(DigestLinkRow.token_hash == token_hash(token)).values(used_at=0.0))
