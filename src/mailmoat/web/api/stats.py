"""Statistics for the dashboard: volume and threats per day by category, top targeted recipients, top sender domains."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from mailmoat.store.models import DeliveryRow, MessageRow
from mailmoat.web.api.common import web
from mailmoat.web.auth import Reader

router = APIRouter(prefix="/stats", tags=["statistics"])

CATEGORIES = ("phishing", "spam", "malware", "qr", "impersonation", "internal")
_GROUPS = {
    "malware": "malware", "qr": "qr", "impersonation": "impersonation", "bec": "impersonation",
    "phishing": "phishing", "url": "phishing", "intel": "phishing", "bayes": "spam", "content": "spam", "spam": "spam",
}
_SYMBOLS = {"ATTACH_BLOCKED_TYPE": "malware", "ARCHIVE_BOMB": "malware", "HTML_ATTACH_CREDENTIAL_FORM": "phishing"}


def categories(direction: str, action: str, status: str, findings: list[dict[str, Any]]) -> set[str]:
    """The threat categories of one message (empty when it was delivered as clean)."""
    if action == "deliver" and status != "condemned":
        return set()
    out: set[str] = set()
    for f in findings:
        if float(f.get("score") or 0.0) <= 0:
            continue
        sym = str(f.get("symbol", ""))
        cat = _SYMBOLS.get(sym) or _GROUPS.get(str(f.get("group", "")))
        if cat is None and sym.startswith(("CLAMAV", "YARA")):
            cat = "malware"
        if cat:
            out.add(cat)
    if direction == "internal":
        out.add("internal")
    return out or {"other"}


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


@router.get("")
def statistics(
    request: Request,
    who: Reader,
    days: Annotated[int, Query(ge=1, le=366)] = 14,
    top: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """Per UTC day: messages by direction and action, threats by category; top targeted recipients and sender domains."""
    now = time.time()
    since = now - days * 86400
    per_day: dict[str, dict[str, Any]] = {}
    for i in range(days - 1, -1, -1):
        d = _day(now - i * 86400)
        per_day[d] = {"day": d, "total": 0, "threats": 0, "by_direction": {}, "by_action": {}, **{c: 0 for c in CATEGORIES}, "other": 0}
    targeted: Counter[str] = Counter()
    senders: Counter[str] = Counter()
    threat_senders: Counter[str] = Counter()
    threat_ids: set[str] = set()
    with web(request).store.session() as s:
        rows = s.execute(
            select(MessageRow.id, MessageRow.received_at, MessageRow.direction, MessageRow.action, MessageRow.status,
                   MessageRow.findings, MessageRow.from_domain, MessageRow.mail_from)
            .where(MessageRow.received_at >= since)
        ).all()
        for mid, at, direction, action, status, findings, from_domain, mail_from in rows:
            day = per_day.get(_day(at))
            if day is None:
                continue
            day["total"] += 1
            day["by_direction"][direction] = day["by_direction"].get(direction, 0) + 1
            day["by_action"][action] = day["by_action"].get(action, 0) + 1
            domain = (from_domain or mail_from.rpartition("@")[2]).lower() or "(none)"
            senders[domain] += 1
            cats = categories(direction, action, status, list(findings or []))
            if cats:
                day["threats"] += 1
                threat_ids.add(mid)
                threat_senders[domain] += 1
                for c in cats:
                    day[c] += 1
        if threat_ids:
            ids = list(threat_ids)
            for i in range(0, len(ids), 500):
                for (rcpt,) in s.execute(select(DeliveryRow.recipient).where(DeliveryRow.message_id.in_(ids[i : i + 500]))):
                    targeted[rcpt] += 1
    return {
        "days": list(per_day.values()),
        "categories": list(CATEGORIES),
        "totals": {
            "messages": sum(d["total"] for d in per_day.values()),
            "threats": sum(d["threats"] for d in per_day.values()),
            **{c: sum(d[c] for d in per_day.values()) for c in CATEGORIES},
        },
        "top_targeted_recipients": [{"recipient": r, "threats": n} for r, n in targeted.most_common(top)],
        "top_sender_domains": [{"domain": d, "messages": n, "threats": threat_senders.get(d, 0)} for d, n in senders.most_common(top)],
        "top_threat_sender_domains": [{"domain": d, "threats": n} for d, n in threat_senders.most_common(top)],
    }
