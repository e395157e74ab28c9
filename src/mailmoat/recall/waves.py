"""Waves once recognised: the recent ones listed, and the copies delivered before recognition judged again (recalled when now condemned)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from mailmoat.config import Settings
from mailmoat.model import Action, Direction, Envelope, Verdict
from mailmoat.recall import triggers
from mailmoat.recall.engine import RecallEngine
from mailmoat.recall.rescan import RescanReport, Scans, rescan
from mailmoat.store.db import Store
from mailmoat.store.models import IndicatorRow, MessageRow
from mailmoat.urlcheck.links import sender_identity

log = logging.getLogger(__name__)

SYMBOL = "LINK_DOMAIN_WAVE"
_HELD = (Action.QUARANTINE.value, Action.REJECT.value)
_PASSED = (Action.DELIVER.value, Action.TAG.value)


def passed_copies(store: Store, dest: tuple[str, str], since: float, until: float, limit: int = 1000) -> list[str]:
    """Inbound messages linking the destination (indicator kind, value) between `since` and `until`
    that were delivered (or tagged)."""
    kind, value = dest
    with store.session() as s:
        rows = s.execute(
            select(MessageRow.id)
            .join(IndicatorRow, IndicatorRow.message_id == MessageRow.id)
            .where(
                IndicatorRow.kind == kind,
                IndicatorRow.value == value,
                MessageRow.direction == Direction.INBOUND.value,
                MessageRow.received_at >= since,
                MessageRow.received_at < until,
                MessageRow.action.in_(_PASSED),
            )
            .order_by(MessageRow.received_at)
            .limit(limit)
        ).scalars()
        return list(dict.fromkeys(str(r) for r in rows))


def recent_waves(session: Any, since: float, limit: int) -> list[dict[str, Any]]:
    """Link destinations that mail marked LINK_DOMAIN_WAVE led to since `since`: how many messages,
    from how many unrelated senders (as the sign counts them), how many held, first and last seen;
    the latest first."""
    marked = select(IndicatorRow.message_id).where(IndicatorRow.kind == "symbol", IndicatorRow.value == SYMBOL)
    rows = session.execute(
        select(MessageRow.received_at, MessageRow.action, MessageRow.status, MessageRow.from_addr, MessageRow.from_domain,
               MessageRow.findings)
        .where(MessageRow.received_at >= since, MessageRow.id.in_(marked))
    ).all()
    found: dict[str, dict[str, Any]] = {}
    senders: dict[str, set[str]] = {}
    for at, action, status, from_addr, from_domain, findings in rows:
        data = next((f.get("data") or {} for f in findings or [] if f.get("symbol") == SYMBOL), {})
        dest = str(data.get("domain") or "")
        if not dest:
            continue
        w = found.setdefault(dest, {"domain": dest, "messages": 0, "held": 0, "first_seen": at, "last_seen": at})
        w["messages"] += 1
        w["held"] += 1 if action in _HELD or status == "condemned" else 0
        w["first_seen"], w["last_seen"] = min(w["first_seen"], at), max(w["last_seen"], at)
        senders.setdefault(dest, set()).add(sender_identity(from_addr or "", from_domain or ""))
    for dest, w in found.items():
        w["senders"] = len(senders[dest] - {""})
    return sorted(found.values(), key=lambda w: (-w["last_seen"], w["domain"]))[:limit]


class WaveFollowUp:
    """Once per link domain and window (per process): when a copy of a wave is held, re-scan the
    copies delivered before the wave was recognised; those now condemned are recalled (trigger
    "auto:wave"), by the recall policy (`recall.auto`) like every automatic recall."""

    def __init__(self, settings: Settings, store: Store, scanner: Scans) -> None:
        self.settings = settings
        self.store = store
        self.scanner = scanner
        self._done: dict[tuple[str, str], float] = {}  # destination -> when its earlier copies were judged again

    def due(self, envelope: Envelope, verdict: Verdict) -> tuple[str, str] | None:
        """The wave's link destination (indicator kind, value) when this verdict calls for a follow-up."""
        if envelope.direction is not Direction.INBOUND or verdict.action.value not in _HELD:
            return None
        finding = next((f for f in verdict.findings if f.symbol == SYMBOL and f.score > 0), None)
        if finding is None or not finding.data.get("domain"):
            return None
        dest = (str(finding.data.get("kind") or "url_domain"), str(finding.data["domain"]))
        window = self.settings.waves.window_hours * 3600.0
        if envelope.received_at - self._done.get(dest, float("-inf")) < window:
            return None
        return dest

    async def after(self, envelope: Envelope, verdict: Verdict) -> RescanReport | None:
        """Never raises: a failure is logged, and `mailmoat rescan` remains."""
        dest = self.due(envelope, verdict)
        if dest is None:
            return None
        self._done[dest] = envelope.received_at
        if len(self._done) > 10_000:
            for old in list(self._done)[:5_000]:
                del self._done[old]
        window = max(self.settings.waves.window_hours, 1.0) * 3600.0
        engine = RecallEngine(self.settings, self.store)
        try:
            ids = passed_copies(self.store, dest, envelope.received_at - window, envelope.received_at)
            if not ids:
                return None
            report = await rescan(engine, self.scanner, "0", "system", mail_ids=ids, trigger=triggers.WAVE)
            log.warning(
                "wave %s: %d earlier copies judged again, %d now condemned, recall jobs %s",
                dest[1], report.scanned, len(report.newly_condemned), [r.job_id for r in report.recalls],
            )
            return report
        except Exception:
            log.exception("wave %s: judging the earlier copies again failed (mailmoat rescan can do it)", dest[1])
            return None
        finally:
            await engine.close()

