"""Telling a recipient that the administrators declined their release request: the message stays held, and why."""

from __future__ import annotations

import logging
import time

from mailmoat import metrics
from mailmoat.config import Settings
from mailmoat.deliver.own_mail import own_message, send_own_mail
from mailmoat.digest.text import shown
from mailmoat.store.db import Store

log = logging.getLogger("mailmoat.digest")

_TEXT = {
    "en": {
        "subject": "Release request declined: {subject}",
        "body": "Your mail administrators reviewed your request to release \"{subject}\" from {sender}, and declined it: "
                "the message stays in quarantine and will not be delivered. Do not ask the sender to send it again.",
        "why": "Their reason: {reason}",
        "unknown_sender": "an unknown sender",
    },
    "zh": {
        "subject": "放行申请未获批准：{subject}",
        "body": "邮件管理员审核了您对邮件“{subject}”（发件人：{sender}）的放行申请，未予批准："
                "该邮件仍处于隔离状态，不会投递给您。请勿让发件人重新发送。",
        "why": "原因：{reason}",
        "unknown_sender": "未知发件人",
    },
}


def compose(settings: Settings, recipient: str, subject: str, sender: str, reason: str, now: float) -> bytes:
    """The notice, in `digest.language`; words from the held mail and the reason shown as text, defanged."""
    t = _TEXT[settings.digest.language]
    subject, sender = shown(subject or "-"), shown(sender) or t["unknown_sender"]
    msg = own_message(settings, settings.digest.sender, recipient, t["subject"].format(subject=subject),
                      settings.digest.language, now, "release")
    lines = [t["body"].format(subject=subject, sender=sender)]
    if reason.strip():
        lines += ["", t["why"].format(reason=shown(reason, 500))]
    msg.set_content("\n".join(lines) + "\n")
    return msg.as_bytes()


async def tell_declined(settings: Settings, store: Store, mail_id: str, recipient: str, reason: str) -> bool:
    """Send the recipient the notice (`digest.tell_declines`); whether it was delivered or queued.
    Never raises: the decline itself is already recorded."""
    if not settings.digest.tell_declines:
        return False
    try:
        row = store.get_message(mail_id)
        subject = row.subject if row is not None else ""
        sender = (row.from_addr or row.mail_from) if row is not None else ""
        raw = compose(settings, recipient, subject, sender, reason, time.time())
        _, ok = await send_own_mail(settings, store, recipient, raw, "notice", "release request declined")
    except Exception:
        log.exception("telling %s that their release request for %s was declined failed", recipient, mail_id)
        ok = False
    metrics.DECLINE_NOTICES.labels(status="sent" if ok else "failed").inc()
    return ok
