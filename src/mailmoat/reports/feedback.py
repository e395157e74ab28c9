"""Telling colleagues what became of what they reported, once the security team decided: one notice per reporter and reported message, sent once (several nodes claim it in the store)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import select, update

from mailmoat import metrics
from mailmoat.config import Settings
from mailmoat.deliver.own_mail import own_message, send_own_mail
from mailmoat.digest.text import shown
from mailmoat.reports.triage import CONDEMNED, OPEN, RECALLED, grouped, states
from mailmoat.schedule import run_every
from mailmoat.store.db import Store
from mailmoat.store.models import MessageRow
from mailmoat.store.report_models import ReportRow

log = logging.getLogger("mailmoat.reports")

CHECK_EVERY = 300.0
FIRST_CHECK_AFTER = 60.0
RECENT = 30 * 86400.0  # reports older than this get no notice (an upgrade must not mail the past)
ACK_WITHIN = 86400.0  # a receipt later than this would only puzzle

_TEXT = {
    "en": {
        "subject": "Your report: {subject}",
        "threat": "The message you reported, \"{subject}\" from {sender}, was confirmed as a threat and removed from "
                  "the mailboxes it reached. Thank you for reporting it: it protected your colleagues too.",
        "safe": "The message you reported, \"{subject}\" from {sender}, was reviewed by the security team and judged not "
                "to be a threat. Thank you all the same: keep reporting what looks suspicious.",
        "received": "Thank you: your report of \"{subject}\" from {sender} reached the security team, who will look "
                    "at it. Meanwhile, do not open its links or attachments or scan its QR codes.",
        "unknown_sender": "an unknown sender",
    },
    "zh": {
        "subject": "您的举报：{subject}",
        "threat": "您举报的邮件“{subject}”（发件人：{sender}）已被确认为威胁邮件，并已从收到它的所有邮箱中移除。"
                  "感谢您的举报，这也保护了您的同事。",
        "safe": "您举报的邮件“{subject}”（发件人：{sender}）经安全团队审核，判定不是威胁邮件。"
                "仍然感谢您的举报，今后遇到可疑邮件请继续举报。",
        "received": "感谢您的举报：您举报的邮件“{subject}”（发件人：{sender}）已提交给安全团队审核。"
                    "在此期间，请勿打开其中的链接、附件或扫描其中的二维码。",
        "unknown_sender": "未知发件人",
    },
}


def compose(settings: Settings, reporter: str, outcome: str, subject: str, sender: str, now: float) -> bytes:
    """The notice to one reporter (`outcome`: "received", "threat" or "safe"); words from the
    reported mail are shown as text, defanged."""
    t = _TEXT[settings.reports.language]
    subject, sender = shown(subject or "-"), shown(sender) or t["unknown_sender"]
    msg = own_message(settings, settings.reports.sender, reporter, t["subject"].format(subject=subject[:150]),
                      settings.reports.language, now, "report")
    msg.set_content(t[outcome if outcome in ("threat", "received") else "safe"].format(subject=subject, sender=sender) + "\n")
    return msg.as_bytes()


def _due(store: Store, now: float) -> list[dict[str, Any]]:
    """One item per reporter and reported message decided since: its report rows, the outcome, and
    the subject and sender to name."""
    out: list[dict[str, Any]] = []
    with store.session() as s:
        rows = s.scalars(select(ReportRow).where(ReportRow.notified_at == 0.0, ReportRow.reported_at >= now - RECENT)).all()
        untold = grouped(rows)
        # A message's state rests on all its reports, told or not, of any age.
        matched = [k for k in untold if not k.startswith("report:")]
        everyone = grouped([r for i in range(0, len(matched), 500)
                            for r in s.scalars(select(ReportRow).where(ReportRow.message_id.in_(matched[i : i + 500])))])
        state = states(s, {k: everyone.get(k, members) for k, members in untold.items()})
        for key, members in untold.items():
            group_state, msg = state[key]
            if group_state == OPEN:
                continue
            outcome = "threat" if group_state in (CONDEMNED, RECALLED) else "safe"
            by_reporter: dict[str, list[int]] = defaultdict(list)
            for r in members:
                by_reporter[r.reporter].append(r.id)
            for reporter, ids in by_reporter.items():
                out.append({"reporter": reporter, "ids": ids, "outcome": outcome,
                            "subject": (msg.subject if msg is not None else "") or members[0].subject,
                            "sender": (msg.from_addr or msg.mail_from if msg is not None else "") or members[0].sender})
    return out


def _unacknowledged(store: Store, now: float) -> list[dict[str, Any]]:
    """One receipt per report mail not yet acknowledged (of the last day), naming what it reports."""
    with store.session() as s:
        rows = s.scalars(select(ReportRow).where(ReportRow.acked_at == 0.0, ReportRow.reported_at >= now - ACK_WITHIN)
                         .order_by(ReportRow.id)).all()
        by_report: dict[str, list[ReportRow]] = defaultdict(list)
        for r in rows:
            by_report[r.report_id].append(r)
        out = []
        for members in by_report.values():
            first = members[0]
            msg = s.get(MessageRow, first.message_id) if first.message_id else None
            out.append({"reporter": first.reporter, "ids": [m.id for m in members], "outcome": "received",
                        "subject": (msg.subject if msg is not None else "") or first.subject,
                        "sender": (msg.from_addr or msg.mail_from if msg is not None else "") or first.sender})
        return out


def _claim(store: Store, ids: list[int], now: float, column: str = "notified_at") -> bool:
    """Mark the rows told (`column`: notified_at or acked_at); False when another node (or run) already did."""
    field = getattr(ReportRow, column)
    with store.session() as s:
        res = s.execute(update(ReportRow).where(ReportRow.id.in_(ids), field == 0.0).values({column: now}))
        return int(getattr(res, "rowcount", 0) or 0) == len(ids)


async def send_feedback(settings: Settings, store: Store, now: float | None = None) -> list[dict[str, Any]]:
    """Receipts for reports not acknowledged yet (`reports.acknowledge`), then notices for every
    decided report not told yet (`reports.feedback`); each once, across nodes."""
    cfg = settings.reports
    now = time.time() if now is None else now
    todo: list[tuple[dict[str, Any], str]] = []
    if cfg.acknowledge:
        todo += [(item, "acked_at") for item in await asyncio.to_thread(_unacknowledged, store, now)]
    if cfg.feedback:
        todo += [(item, "notified_at") for item in await asyncio.to_thread(_due, store, now)]
    sent: list[dict[str, Any]] = []
    for item, column in todo:
        if not await asyncio.to_thread(_claim, store, item["ids"], now, column):
            continue
        try:
            raw = compose(settings, item["reporter"], item["outcome"], item["subject"], item["sender"], now)
            mail_id, ok = await send_own_mail(settings, store, item["reporter"], raw, "notice", "report outcome")
        except Exception:  # one reporter's notice must not cost the others theirs
            log.exception("report notice to %s could not be sent", item["reporter"])
            mail_id, ok = "", False
        metrics.REPORT_FEEDBACK.labels(outcome=item["outcome"], status="sent" if ok else "failed").inc()
        sent.append({"reporter": item["reporter"], "outcome": item["outcome"], "mail_id": mail_id, "sent": ok})
    return sent


async def run_feedback(settings: Settings, store: Store, stop: asyncio.Event) -> None:
    """`send_feedback` every few minutes until `stop` is set (never when receipts and feedback are off)."""
    if not (settings.reports.feedback or settings.reports.acknowledge):
        return

    async def check() -> None:
        await send_feedback(settings, store)

    await run_every(stop, FIRST_CHECK_AFTER, CHECK_EVERY, check, log, "reports: notices to reporters")
