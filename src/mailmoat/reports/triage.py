"""Reported mail as the security team sees it: each reported message with who reported it and what became of it; dismissing; condemning by itself after enough reports."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailmoat.config import Settings
from mailmoat.model import Envelope, Message
from mailmoat.reports.intake import take_report
from mailmoat.store.db import Store
from mailmoat.store.models import MessageRow
from mailmoat.store.recall_models import RecallCopyRow
from mailmoat.store.report_models import ReportRow

log = logging.getLogger("mailmoat.reports")

OPEN, CONDEMNED, RECALLED, DISMISSED = "open", "condemned", "recalled", "dismissed"
AUTO_ACTOR = "auto:reports"


class ReportError(Exception):
    pass


def _state(msg: MessageRow | None, recalled: bool, rows: list[ReportRow]) -> str:
    if msg is not None and msg.status == "condemned":
        return CONDEMNED
    if recalled:
        return RECALLED
    return DISMISSED if all(r.dismissed_at for r in rows) else OPEN


def _recalled(session: Session, mail_ids: list[str]) -> set[str]:
    """Which of these messages had copies recalled."""
    out: set[str] = set()
    for i in range(0, len(mail_ids), 500):
        out.update(session.scalars(select(RecallCopyRow.message_id).where(
            RecallCopyRow.message_id.in_(mail_ids[i : i + 500]), RecallCopyRow.state.in_(["recalled", "already_gone"])).distinct()))
    return out


def state_of(session: Session, mail_id: str, rows: list[ReportRow]) -> str:
    """What became of a reported message: CONDEMNED, RECALLED (copies recalled), DISMISSED (every
    report of it dismissed) or OPEN. An unmatched report (no mail_id) is OPEN until dismissed."""
    if not mail_id:
        return _state(None, False, rows)
    return _state(session.get(MessageRow, mail_id), bool(_recalled(session, [mail_id])), rows)


def _summary(msg: MessageRow | None) -> dict[str, Any] | None:
    if msg is None:
        return None
    return {"id": msg.id, "received_at": msg.received_at, "direction": msg.direction, "from_addr": msg.from_addr,
            "mail_from": msg.mail_from, "subject": msg.subject, "action": msg.action, "score": msg.score,
            "status": msg.status, "rcpt_count": len(msg.rcpt_tos or [])}


def grouped(rows: Sequence[ReportRow]) -> dict[str, list[ReportRow]]:
    """Report rows by what they report: a message's id, or "report:<id>" for a report whose message
    was not found (an item of its own)."""
    groups: dict[str, list[ReportRow]] = defaultdict(list)
    for r in rows:
        groups[r.message_id or f"report:{r.report_id}"].append(r)
    return groups


def states(session: Session, groups: dict[str, list[ReportRow]]) -> dict[str, tuple[str, MessageRow | None]]:
    """Each group's state (see `state_of`, each group's rows standing for its reports) and its
    message, read in batches."""
    ids = sorted(k for k in groups if not k.startswith("report:"))
    messages: dict[str, MessageRow] = {}
    for i in range(0, len(ids), 500):
        messages.update((m.id, m) for m in session.scalars(select(MessageRow).where(MessageRow.id.in_(ids[i : i + 500]))))
    recalled = _recalled(session, ids)
    return {key: (_state(messages.get(key), key in recalled, members), messages.get(key))
            for key, members in groups.items()}


def reported(session: Session, everything: bool = False, since: float = 0.0, limit: int = 200) -> list[dict[str, Any]]:
    """Reported messages, most recently reported first: each with its reporters, when, what it is
    and its state; a report whose message was not found is an item of its own (keyed by the
    report's id). Only OPEN ones unless `everything`."""
    rows = session.scalars(select(ReportRow).where(ReportRow.reported_at >= since)
                           .order_by(ReportRow.reported_at.desc()).limit(20_000)).all()
    groups = grouped(rows)
    state = states(session, groups)
    out: list[dict[str, Any]] = []
    for key, members in groups.items():
        mail_id = members[0].message_id
        group_state, msg = state[key]
        if group_state != OPEN and not everything:
            continue
        out.append({
            "key": mail_id or members[0].report_id, "mail_id": mail_id, "matched_by": sorted({m.matched_by for m in members}),
            "reporters": sorted({m.reporter for m in members}), "reports": len(members),
            "first_reported": min(m.reported_at for m in members), "last_reported": max(m.reported_at for m in members),
            "subject": members[0].subject, "sender": members[0].sender, "report_ids": sorted({m.report_id for m in members}),
            "state": group_state, "message": _summary(msg),
        })
        if len(out) >= limit:
            break
    return out


def count_open(session: Session) -> int:
    return len(reported(session, limit=10_000))


def reports_of(session: Session, mail_id: str) -> list[dict[str, Any]]:
    """Every report of one recorded message (the message page shows them)."""
    rows = session.scalars(select(ReportRow).where(ReportRow.message_id == mail_id).order_by(ReportRow.reported_at)).all()
    return [{"reporter": r.reporter, "reported_at": r.reported_at, "report_id": r.report_id, "matched_by": r.matched_by,
             "dismissed_at": r.dismissed_at, "dismissed_by": r.dismissed_by} for r in rows]


def dismiss(session: Session, key: str, by: str, now: float | None = None) -> int:
    """Dismiss the reports of a reported message (its id), or an unmatched report (the report's
    id): the message stays as it is and leaves the list. ReportError when nothing is open there."""
    now = time.time() if now is None else now
    res = session.execute(
        update(ReportRow)
        .where(((ReportRow.message_id == key) | ((ReportRow.message_id == "") & (ReportRow.report_id == key))),
               ReportRow.dismissed_at == 0.0)
        .values(dismissed_at=now, dismissed_by=by[:128])
    )
    n = int(getattr(res, "rowcount", 0) or 0)
    if not n:
        raise ReportError(f"no open report of {key}")
    return n


def judged_safe(session: Session, mail_ids: list[str], by: str, now: float | None = None) -> list[str]:
    """Messages an administrator put back from a recall as no threat (a job restored whole): their
    open reports are dismissed, and a reporter already told "confirmed as a threat" is told again
    by the next feedback sweep (`reports.feedback`). Returns the messages whose reports were open."""
    now = time.time() if now is None else now
    dismissed: list[str] = []
    for i in range(0, len(mail_ids), 500):
        chunk = mail_ids[i : i + 500]
        dismissed += list(session.scalars(select(ReportRow.message_id).where(
            ReportRow.message_id.in_(chunk), ReportRow.dismissed_at == 0.0).distinct()))
        session.execute(update(ReportRow).where(ReportRow.message_id.in_(chunk), ReportRow.dismissed_at == 0.0)
                        .values(dismissed_at=now, dismissed_by=by[:128]))
        session.execute(update(ReportRow).where(ReportRow.message_id.in_(chunk), ReportRow.notified_at != 0.0)
                        .values(notified_at=0.0))
    return dismissed


def _due_for_condemning(store: Store, settings: Settings, mail_ids: list[str]) -> list[tuple[str, int]]:
    """The reported messages that enough colleagues reported and that are still open."""
    due: list[tuple[str, int]] = []
    with store.session() as s:
        for mail_id in mail_ids:
            members = list(s.scalars(select(ReportRow).where(ReportRow.message_id == mail_id)))
            reporters = {m.reporter for m in members}
            if len(reporters) >= settings.policy.report_condemn_after and state_of(s, mail_id, members) == OPEN:
                due.append((mail_id, len(reporters)))
    return due


async def on_report(store: Store, settings: Settings, envelope: Envelope, message: Message) -> list[tuple[str, int]]:
    """A colleague's report was recorded and delivered: link it to what it reports. Returns the
    messages now reported by enough colleagues to condemn (`policy.report_condemn_after`), with
    their counts, for `condemn_reported`. Never raises."""
    try:
        found = await asyncio.to_thread(take_report, store, settings, envelope, message)
        wanted = sorted({mail_id for mail_id, _ in found if mail_id})
        if settings.policy.report_condemn_after <= 0 or not wanted:
            return []
        return await asyncio.to_thread(_due_for_condemning, store, settings, wanted)
    except Exception:
        log.exception("report %s: acting on it failed", envelope.id)
        return []


async def condemn_reported(store: Store, settings: Settings, due: list[tuple[str, int]]) -> None:
    """Condemn the messages enough colleagues reported, and recall them (with the rest of their
    campaign): seconds to minutes, so the pipeline runs it beside the mail flow. Never raises; a
    message not condemned (the gateway stopped first) stays open on the Reports list."""
    from mailmoat.recall.auto import condemn_message
    from mailmoat.recall.engine import RecallEngine

    for mail_id, n in due:
        try:
            if not await asyncio.to_thread(_due_for_condemning, store, settings, [mail_id]):
                continue  # another report's condemnation (or a person) got there first
            outcome = await condemn_message(RecallEngine(settings, store), mail_id, AUTO_ACTOR,
                                            f"reported by {n} colleagues (policy.report_condemn_after)", once=True)
            if outcome.detail.get("already"):
                continue  # two reports' condemnations at once (two workers): the other one marked it
            log.warning("message %s condemned after %d reports: recall %s", mail_id, n, outcome.state)
        except Exception:
            log.exception("message %s: condemning it after %d reports failed", mail_id, n)
