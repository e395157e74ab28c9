"""Statistics for the dashboard: volume and threats per day by category, top targeted recipients, top sender domains, waves."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import func, or_, select

from mailmoat.policy.categories import CATEGORIES, categories
from mailmoat.recall.waves import recent_waves
from mailmoat.store.models import DeliveryRow, MessageRow
from mailmoat.web.api.common import web
from mailmoat.web.auth import Reader

router = APIRouter(prefix="/stats", tags=["statistics"])


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _top(counts: Counter[str], n: int) -> list[tuple[str, int]]:
    """The n largest, ties by name: the same answer whatever order the database returned rows in."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _day_start(ts: float) -> float:
    d = datetime.fromtimestamp(ts, UTC)
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()


@router.get("")
def statistics(
    request: Request,
    who: Reader,
    days: Annotated[int, Query(ge=1, le=366)] = 14,
    top: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """Per UTC day: messages by direction and action, threats by category; top targeted recipients and
    sender domains; the waves recognised in the period (`LINK_DOMAIN_WAVE`), the latest first.

    Counting is done by the database (one indexed range per day, one grouping by sender domain);
    only the threats — a small share of the mail — are read row by row, for their categories.
    """
    now = time.time()
    first = _day_start(now - (days - 1) * 86400)
    per_day: dict[str, dict[str, Any]] = {}
    for i in range(days - 1, -1, -1):
        d = _day(now - i * 86400)
        per_day[d] = {"day": d, "total": 0, "threats": 0, "by_direction": {}, "by_action": {}, **{c: 0 for c in CATEGORIES}, "other": 0}
    targeted: Counter[str] = Counter()
    senders: Counter[str] = Counter()
    threat_senders: Counter[str] = Counter()
    threat_ids: list[str] = []
    in_window = MessageRow.received_at >= first
    with web(request).store.session() as s:
        for day in per_day.values():
            start = datetime.strptime(day["day"], "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
            counts = s.execute(
                select(MessageRow.direction, MessageRow.action, func.count())
                .where(MessageRow.received_at >= start, MessageRow.received_at < start + 86400)
                .group_by(MessageRow.direction, MessageRow.action)
            ).all()
            for direction, action, n in counts:
                day["total"] += n
                day["by_direction"][direction] = day["by_direction"].get(direction, 0) + n
                day["by_action"][action] = day["by_action"].get(action, 0) + n
        domain = func.lower(MessageRow.from_domain)
        for dom, n in s.execute(
            select(domain, func.count()).where(in_window, MessageRow.from_domain != "").group_by(domain)
        ):
            senders[dom] += n
        # Without a From domain the envelope sender's domain stands in (rare: no From header).
        for mail_from, n in s.execute(
            select(MessageRow.mail_from, func.count()).where(in_window, MessageRow.from_domain == "").group_by(MessageRow.mail_from)
        ):
            senders[mail_from.rpartition("@")[2].lower() or "(none)"] += n
        # Threats: everything not delivered as clean (see `categories`), read row by row.
        threats = s.execute(
            select(MessageRow.id, MessageRow.received_at, MessageRow.direction, MessageRow.action, MessageRow.status,
                   MessageRow.findings, MessageRow.from_domain, MessageRow.mail_from)
            .where(in_window, or_(MessageRow.action != "deliver", MessageRow.status == "condemned"))
        ).all()
        for mid, at, direction, action, status, findings, from_domain, mail_from in threats:
            bucket = per_day.get(_day(at))
            cats = categories(direction, action, status, list(findings or []))
            if bucket is None or not cats:
                continue
            dom = (from_domain or mail_from.rpartition("@")[2]).lower() or "(none)"
            bucket["threats"] += 1
            threat_ids.append(mid)
            threat_senders[dom] += 1
            for c in cats:
                bucket[c] += 1
        for i in range(0, len(threat_ids), 500):
            for (rcpt,) in s.execute(select(DeliveryRow.recipient).where(DeliveryRow.message_id.in_(threat_ids[i : i + 500]))):
                targeted[rcpt.lower()] += 1  # one person, whatever case each sender typed
        waves = recent_waves(s, first, top)
    return {
        "days": list(per_day.values()),
        "categories": list(CATEGORIES),
        "totals": {
            "messages": sum(d["total"] for d in per_day.values()),
            "threats": sum(d["threats"] for d in per_day.values()),
            **{c: sum(d[c] for d in per_day.values()) for c in CATEGORIES},
        },
        "top_targeted_recipients": [{"recipient": r, "threats": n} for r, n in _top(targeted, top)],
        "top_sender_domains": [{"domain": d, "messages": n, "threats": threat_senders.get(d, 0)} for d, n in _top(senders, top)],
        "top_threat_sender_domains": [{"domain": d, "threats": n} for d, n in _top(threat_senders, top)],
        "waves": waves,
    }
