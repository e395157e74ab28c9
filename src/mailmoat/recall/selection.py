"""Which recorded, delivered copies a recall (or a search) is about: any combination of selectors."""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from mailmoat.store.models import DeliveryRow, IndicatorRow, MessageRow
from mailmoat.store.queries import LIKE_ESCAPE, contains_pattern, recipient_is

_REL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdwSMHDW])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class SelectionError(ValueError):
    """A selector that cannot be understood (e.g. a bad time)."""


def parse_time(value: str, now: float | None = None) -> float:
    """'3d', '12h', '30m', '2w' (that long ago), an ISO date/time (local time when naive; 'Z' is UTC)
    or epoch seconds → epoch seconds. One reading of times for every command and the API."""
    now = time.time() if now is None else now
    bad = SelectionError(f"cannot read time {value!r} (use 3d, 12h, 2026-11-28 or 2026-11-28T10:00)")
    m = _REL.match(value)
    if m:
        ts = now - float(m.group(1)) * _UNIT[m.group(2).lower()]
    else:
        try:
            ts = float(value)
        except ValueError:
            text = value.strip()
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            try:
                ts = datetime.fromisoformat(text).timestamp()
            except (ValueError, OverflowError) as exc:
                raise bad from exc
    # float() reads "nan", "inf" and "1e400" (inf): compared with a time, they select nothing at
    # all, and a search, trace or recall would quietly come back empty instead of saying why.
    if not math.isfinite(ts):
        raise bad
    return ts


@dataclass
class Selector:
    tracking_id: str = ""
    message_id: str = ""  # the Message-ID header
    mail_id: str = ""  # the recorded message id (envelope id)
    sender: str = ""  # address or domain; envelope sender or From
    recipient: str = ""
    subject: str = ""  # substring, case-insensitive
    url: str = ""  # substring of a recorded URL
    url_domain: str = ""  # registrable domain (or host, or page on a shared host) of a recorded URL
    sha256: str = ""
    qr: str = ""  # substring of a decoded QR payload
    action: str = ""  # verdict action
    symbol: str = ""
    direction: str = ""
    since: str = ""
    until: str = ""
    # Leaves out messages that raised this symbol; it narrows a selection and selects nothing alone
    # (automatic recalls leave STAFF_REPORT mail, the reports in the security team's mailbox, alone).
    not_symbol: str = ""

    def is_empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self) if f.name != "not_symbol")

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Selector:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SelectionError(f"unknown selector(s): {', '.join(sorted(unknown))}")
        return cls(**{k: str(v) for k, v in d.items() if v not in (None, "")})


def _has_indicator(kind: str, value: str, *, like: bool = False) -> Any:
    cond = IndicatorRow.value.ilike(contains_pattern(value), escape=LIKE_ESCAPE) if like else IndicatorRow.value == value
    return MessageRow.id.in_(select(IndicatorRow.message_id).where(IndicatorRow.kind == kind, cond))


def message_conditions(sel: Selector, now: float | None = None) -> list[Any]:
    """SQL conditions on MessageRow for every message-level selector."""
    c: list[Any] = []
    if sel.message_id:
        mid = sel.message_id.strip()
        c.append(or_(MessageRow.message_id == mid, MessageRow.message_id == mid.strip("<>"), MessageRow.message_id == f"<{mid.strip('<>')}>"))
    if sel.mail_id:
        c.append(MessageRow.id == sel.mail_id)
    if sel.sender:
        s = sel.sender.strip().lower()
        if "@" in s:
            c.append(or_(MessageRow.mail_from == s, MessageRow.from_addr == s))
        else:
            # The sender_domain indicator holds the domains of both the envelope sender and From:
            # one indexed lookup instead of an OR that makes the database scan every message.
            c.append(_has_indicator("sender_domain", s))
    if sel.subject:
        c.append(MessageRow.subject.ilike(contains_pattern(sel.subject), escape=LIKE_ESCAPE))
    if sel.url:
        c.append(_has_indicator("url", sel.url, like=True))
    if sel.url_domain:
        d = sel.url_domain.strip()
        # A page on a shared host ("forms.gle/Xy7Q2", as the wave sign names it) keeps its case.
        c.append(MessageRow.id.in_(
            select(IndicatorRow.message_id).where(or_(
                and_(IndicatorRow.kind.in_(["url_domain", "url_host"]), IndicatorRow.value == d.lower()),
                and_(IndicatorRow.kind == "url_page", IndicatorRow.value == d),
            ))
        ))
    if sel.sha256:
        c.append(_has_indicator("sha256", sel.sha256.strip().lower()))
    if sel.qr:
        c.append(_has_indicator("qr", sel.qr, like=True))
    if sel.action:
        c.append(MessageRow.action == sel.action)
    if sel.symbol:
        c.append(_has_indicator("symbol", sel.symbol.strip().upper()))
    if sel.not_symbol:
        c.append(~_has_indicator("symbol", sel.not_symbol.strip().upper()))
    if sel.direction:
        c.append(MessageRow.direction == sel.direction)
    if sel.since:
        c.append(MessageRow.received_at >= parse_time(sel.since, now))
    if sel.until:
        c.append(MessageRow.received_at <= parse_time(sel.until, now))
    return c


def delivered_copies_query(sel: Selector, now: float | None = None) -> Select[MessageRow, DeliveryRow]:
    conds = message_conditions(sel, now)
    q = select(MessageRow, DeliveryRow).join(DeliveryRow, DeliveryRow.message_id == MessageRow.id)
    q = q.where(DeliveryRow.status == "delivered")
    if sel.tracking_id:
        t = sel.tracking_id.strip()
        # a bare message id selects all of its copies (tracking ids are "<message id>-<n>")
        conds.append(or_(DeliveryRow.tracking_id == t, DeliveryRow.message_id == t))
    if sel.recipient:
        conds.append(recipient_is(sel.recipient))
    if conds:
        q = q.where(and_(*conds))
    return q.order_by(MessageRow.received_at, DeliveryRow.id)


def select_copies(session: Session, sel: Selector, now: float | None = None) -> list[tuple[MessageRow, DeliveryRow]]:
    if sel.is_empty():
        raise SelectionError("refusing an empty selection: name at least one selector")
    return [(m, d) for m, d in session.execute(delivered_copies_query(sel, now)).all()]
