"""Read-side queries of the record: trace recorded messages and what happened to each copy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, String, cast, exists, func, or_, select
from sqlalchemy.orm import Session

from mailmoat.store.models import DeliveryRow, MessageRow
from mailmoat.store.recall_models import RecallCopyRow

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def recipient_is(addr: str) -> ColumnElement[bool]:
    """A delivery to `addr` in whatever case the sender typed it ("Alice.Wong@Corp.example").

    SMTP keeps that case and the deliveries table records it; lower(recipient) has an index of its
    own (migration 0005). PostgreSQL's lower() folds every script, SQLite's only A-Z, so both
    spellings of the address in lower case are asked for.
    """
    addr = addr.strip()
    return func.lower(DeliveryRow.recipient).in_(sorted({addr.lower(), addr.translate(_ASCII_LOWER)}))


# The largest integer SQLite's INTEGER (and PostgreSQL's BIGINT) holds: a larger id, offset or
# limit cannot even be asked for (OverflowError), so the API and the CLI refuse it as bad input.
MAX_DB_INT = 2**63 - 1

LIKE_ESCAPE = "\\"


def contains_pattern(value: str) -> str:
    """A LIKE pattern (with `escape=LIKE_ESCAPE`) for `value` anywhere in a text. Its % and _ are
    taken literally: a search for "50% off" must not also find "500 off" (in a recall, too much)."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _like(value: str) -> str:
    return contains_pattern(value.lower())


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else ""


def delivery_dict(d: DeliveryRow) -> dict[str, Any]:
    return {
        "recipient": d.recipient,
        "mailbox": d.mailbox,
        "tracking_id": d.tracking_id,
        "status": d.status,
        "attempts": d.attempts,
        "reply": d.reply,
        "location": d.location,
        "delivered_at": _iso(d.delivered_at),
        "next_attempt": _iso(d.next_attempt) if d.status in ("deferred", "sending") else "",
    }


def message_dict(m: MessageRow, deliveries: list[DeliveryRow]) -> dict[str, Any]:
    return {
        "id": m.id,
        "received_at": _iso(m.received_at),
        "direction": m.direction,
        "mail_from": m.mail_from,
        "from": m.from_addr,
        "rcpt_tos": list(m.rcpt_tos or []),
        "subject": m.subject,
        "message_id": m.message_id,
        "size": m.size,
        "action": m.action,
        "score": round(m.score or 0.0, 3),
        "symbols": dict(m.symbols or {}),
        "reasons": list(m.reasons or []),
        "status": m.status,
        "raw_retained": bool(m.raw_path),
        "deliveries": [delivery_dict(d) for d in deliveries],
    }


def trace(
    s: Session,
    *,
    sender: str | None = None,
    rcpt: str | None = None,
    subject: str | None = None,
    message_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
    action: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Messages matching every given filter, newest first, each with its deliveries.

    sender, rcpt and subject match case-insensitive substrings (sender: envelope MAIL FROM or
    header From); message_id matches the Message-ID with or without angle brackets, or a
    mailmoat envelope id, or a tracking id (X-Mailmoat-Id) of one copy.
    """
    q = select(MessageRow)
    if sender:
        pat = _like(sender)
        q = q.where(
            or_(func.lower(MessageRow.mail_from).like(pat, escape=LIKE_ESCAPE), func.lower(MessageRow.from_addr).like(pat, escape=LIKE_ESCAPE))
        )
    if rcpt:
        pat = _like(rcpt)
        q = q.where(
            or_(
                exists().where(DeliveryRow.message_id == MessageRow.id, func.lower(DeliveryRow.recipient).like(pat, escape=LIKE_ESCAPE)),
                func.lower(cast(MessageRow.rcpt_tos, String)).like(pat, escape=LIKE_ESCAPE),
            )
        )
    if subject:
        q = q.where(func.lower(MessageRow.subject).like(_like(subject), escape=LIKE_ESCAPE))
    if message_id:
        bare = message_id.strip().strip("<>")
        q = q.where(
            or_(
                MessageRow.message_id.in_([bare, f"<{bare}>"]),
                MessageRow.id == bare,
                exists().where(DeliveryRow.message_id == MessageRow.id, DeliveryRow.tracking_id == bare),
            )
        )
    if since is not None:
        q = q.where(MessageRow.received_at >= since)
    if until is not None:
        q = q.where(MessageRow.received_at < until)
    if action:
        q = q.where(MessageRow.action == action.lower())
    q = q.order_by(MessageRow.received_at.desc(), MessageRow.id.desc()).limit(max(1, limit))
    messages = list(s.scalars(q))
    by_msg: dict[str, list[DeliveryRow]] = {m.id: [] for m in messages}
    recalled: dict[str, dict[str, str]] = {}
    if messages:
        for d in s.scalars(
            select(DeliveryRow).where(DeliveryRow.message_id.in_(list(by_msg))).order_by(DeliveryRow.id)
        ):
            by_msg[d.message_id].append(d)
        # What the latest recall job that touched a copy did to it (a copy recalled, restored, recalled again).
        for tracking_id, job_id, state in s.execute(
            select(RecallCopyRow.tracking_id, RecallCopyRow.job_id, RecallCopyRow.state)
            .where(RecallCopyRow.message_id.in_(list(by_msg))).order_by(RecallCopyRow.id)
        ):
            recalled[tracking_id] = {"job_id": job_id, "state": state}
    out = [message_dict(m, by_msg[m.id]) for m in messages]
    for item in out:
        for d in item["deliveries"]:
            d["recall"] = recalled.get(d["tracking_id"])
    return out
