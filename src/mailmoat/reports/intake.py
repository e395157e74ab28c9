"""A colleague's report to the report mailbox: which message it reports (the attached original, or a forward's sender and subject), found in the record, and recorded."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from email.parser import HeaderParser
from email.policy import compat32

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailmoat import metrics
from mailmoat.config import Settings
from mailmoat.model import Envelope, Message, Part
from mailmoat.parse.subjects import bare_subject
from mailmoat.policy.decide import STAFF_REPORT
from mailmoat.store.db import Store
from mailmoat.store.models import DeliveryRow, MessageRow
from mailmoat.store.queries import recipient_is
from mailmoat.store.report_models import ReportRow

log = logging.getLogger("mailmoat.reports")

LOOKBACK = 30 * 86400.0  # a forward is matched among the reporter's mail of the last 30 days
MAX_REPORTED = 20  # originals read from one report (a report with more attachments is unusual)
MAX_ITEM_HEADERS = 256 * 1024  # bytes read of one property of an attached Outlook item
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# The header block a mail client writes above a forwarded message, in the languages of our users.
_FROM = re.compile(r"^(?:from|发件人|寄件者|von|de|van)\s*[:：]\s*(?P<v>.+)$", re.I)
_SUBJECT = re.compile(r"^(?:subject|主题|主旨|betreff|objet|onderwerp|assunto|asunto)\s*[:：]\s*(?P<v>.+)$", re.I)
_ADDR = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass(frozen=True)
class Reported:
    """What a report says of the message it reports."""

    tracking_id: str = ""  # the X-Mailmoat-Id of the copy, when the original is attached
    message_id: str = ""  # its Message-ID header
    sender: str = ""  # its From address
    subject: str = ""


def _forwarded_header(text: str) -> Reported | None:
    """The From and Subject of the first forwarded header block in a body ("From: … Sent: … Subject: …",
    "发件人: … 主题: …"), in either order, within a few lines of each other."""
    # Header lines are short: reading at most 1,000 characters of each keeps the address pattern
    # linear (on a 100,000-letter line it took 16 s).
    lines = [ln[:1000].strip().lstrip(">").strip().strip("*").strip() for ln in text[:200_000].splitlines()[:400]]
    for i, line in enumerate(lines):
        m = _FROM.match(line)
        if not m:
            continue
        near = lines[max(0, i - 6) : i + 8]
        subject = next((s.group("v").strip() for ln in near if (s := _SUBJECT.match(ln))), "")
        addr = _ADDR.search(m.group("v"))
        if subject or addr:
            return Reported(sender=addr.group(0).lower() if addr else "", subject=subject)
    return None


def _outlook_item(data: bytes) -> Reported | None:
    """What an attached Outlook item (.msg, as Outlook and Exchange forward "as attachment") says of
    its message: the internet headers it keeps (PR_TRANSPORT_MESSAGE_HEADERS, with the copy's
    X-Mailmoat-Id), else its subject, sender address and Message-ID properties."""
    import olefile

    try:
        ole = olefile.OleFileIO(data)
    except Exception:  # not a compound file, or a damaged one
        return None
    try:
        def prop(tag: str) -> str:
            for kind, codec in (("001F", "utf-16-le"), ("001E", "latin-1")):
                name = f"__substg1.0_{tag}{kind}"
                if ole.exists(name):
                    return str(ole.openstream(name).read(MAX_ITEM_HEADERS).decode(codec, "replace").split("\x00", 1)[0]).strip()
            return ""

        headers = prop("007D")
        head = HeaderParser(policy=compat32).parsestr(headers) if headers else None
        sender = _ADDR.search(((head.get("From", "") if head else "") or prop("5D01") or prop("0C1F"))[:1000])
        return Reported(
            tracking_id=str(head.get("X-Mailmoat-Id", "")).strip() if head else "",
            message_id=(str(head.get("Message-ID", "")) if head else "").strip() or prop("1035"),
            sender=sender.group(0).lower() if sender else "",
            subject=prop("0037") or (str(head.get("Subject", "")) if head else ""),
        )
    except Exception:
        log.info("an attached Outlook item could not be read", exc_info=True)
        return None
    finally:
        ole.close()


def _is_outlook_item(part: Part) -> bool:
    return bool(part.payload) and part.payload[:8] == OLE_MAGIC and (
        part.filename.lower().endswith(".msg") or part.content_type == "application/vnd.ms-outlook"
        or b"_\x00_\x00s\x00u\x00b\x00s\x00t\x00g\x001\x00" in part.payload[:65536])


def reported_in(message: Message) -> list[Reported]:
    """What a report mail reports: each attached original (its tracking id, Message-ID, sender and
    subject; a message/rfc822 part or an Outlook .msg item), else the forwarded header block in its
    text, else its own subject without "FW:"."""
    out = [
        Reported(tracking_id=m.header("X-Mailmoat-Id").strip(), message_id=m.message_id.strip(),
                 sender=m.from_.addr.lower(), subject=m.subject)
        for m in message.attached_messages[:MAX_REPORTED]
    ]
    out += [r for p in message.parts if _is_outlook_item(p) for r in [_outlook_item(p.payload)] if r is not None][:MAX_REPORTED]
    if out:
        return out
    inline = _forwarded_header(message.text or message.html_text)
    if inline is not None:
        return [inline]
    return [Reported(subject=message.subject)] if bare_subject(message.subject) else []


def find(session: Session, reporter: str, r: Reported, before: float) -> tuple[str, str]:
    """(the recorded message's id, how it was found) for what a report names, or ("", "none").
    Only the reporter's own mail is searched: by the tracking id of the attached copy, then newest
    first by Message-ID, by sender and subject, and by subject alone. (A report cannot point at
    mail its sender never had: a taken-over account must not steer condemnations.)"""
    if r.tracking_id:
        copy_of = session.scalar(select(DeliveryRow.message_id).where(DeliveryRow.tracking_id == r.tracking_id,
                                                                       recipient_is(reporter)))
        if copy_of:
            return copy_of, "tracking_id"
    theirs = (
        select(MessageRow.id, MessageRow.subject, MessageRow.from_addr, MessageRow.mail_from, MessageRow.symbols)
        .join(DeliveryRow, DeliveryRow.message_id == MessageRow.id)
        .where(recipient_is(reporter), MessageRow.received_at >= before - LOOKBACK, MessageRow.received_at <= before)
        .order_by(MessageRow.received_at.desc())
    )
    if r.message_id:
        got = session.execute(theirs.where(MessageRow.message_id == r.message_id).limit(1)).first()
        if got is not None:
            return str(got.id), "message_id"
    wanted = bare_subject(r.subject)
    if not wanted:
        return "", "none"
    candidates = [
        m for m in session.execute(theirs.limit(500))
        if STAFF_REPORT.name not in (m.symbols or {}) and bare_subject(m.subject) == wanted
    ]
    if r.sender:
        same = [m for m in candidates if r.sender in ((m.from_addr or "").lower(), (m.mail_from or "").lower())]
        if same:
            return str(same[0].id), "sender_subject"
    return (str(candidates[0].id), "subject") if candidates else ("", "none")


def reporter_of(envelope: Envelope, message: Message) -> str:
    """Who reported: the account that sent the report (its login, else its envelope sender)."""
    return (envelope.auth_user or envelope.mail_from or message.from_.addr).strip().lower()


def take_report(store: Store, settings: Settings, envelope: Envelope, message: Message,
                now: float | None = None) -> list[tuple[str, str]]:
    """Record what a report reports: [(message id or "", how it was found)]. Never raises: a
    report that cannot be read is still in the report mailbox."""
    now = time.time() if now is None else now
    reporter = reporter_of(envelope, message)
    try:
        found: list[tuple[str, str]] = []
        with store.session() as s:
            for r in reported_in(message) or [Reported()]:
                mail_id, how = find(s, reporter, r, envelope.received_at or now)
                if mail_id == envelope.id:
                    mail_id, how = "", "none"  # the report itself, never what it reports
                found.append((mail_id, how))
                s.add(ReportRow(report_id=envelope.id, reporter=reporter, message_id=mail_id, matched_by=how,
                                subject=(r.subject or "")[:998], sender=r.sender[:320], reported_at=now,
                                dismissed_at=0.0, dismissed_by="", notified_at=0.0, acked_at=0.0))
                metrics.REPORTS.labels(matched_by=how).inc()
        return found
    except Exception:
        log.exception("report %s could not be linked to what it reports", envelope.id)
        return []
