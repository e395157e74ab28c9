"""Re-scan retained mail with today's rules, signatures and indicators; recall what is now condemned."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import delete, select

from mailmoat.blobstore import read_blob
from mailmoat.model import Action, Direction, Envelope
from mailmoat.recall import triggers
from mailmoat.recall.auto import AutoOutcome, auto_recall
from mailmoat.recall.engine import RecallEngine
from mailmoat.recall.selection import Selector, parse_time
from mailmoat.store.audit import audit
from mailmoat.store.db import extract_indicators
from mailmoat.store.models import IndicatorRow, MessageRow

CONDEMNED = {Action.QUARANTINE.value, Action.REJECT.value}


class Scans(Protocol):
    """What a re-scan needs of a scanner (mailmoat.scanner.Scanner)."""

    async def scan(self, raw: bytes, envelope: Envelope) -> Any: ...


@dataclass
class RescanReport:
    scanned: int = 0
    changed: int = 0
    newly_condemned: list[str] = field(default_factory=list)
    missing_raw: int = 0
    recalls: list[AutoOutcome] = field(default_factory=list)


async def rescan(
    engine: RecallEngine, scanner: Scans, since: str, actor: str = "system", limit: int = 100_000,
    *, mail_ids: Sequence[str] | None = None, trigger: str = triggers.RESCAN, refresh: bool = False,
) -> RescanReport:
    """Re-scan every retained message received since `since` (only `mail_ids`, when given); recall
    delivered ones whose verdict became a threat. `refresh`: also record new findings under the
    same action (as for held mail always)."""
    report = RescanReport()
    cutoff = parse_time(since)
    query = select(MessageRow.id, MessageRow.raw_path, MessageRow.action).where(MessageRow.received_at >= cutoff)
    if mail_ids is not None:
        query = query.where(MessageRow.id.in_(list(mail_ids)))
    with engine.store.session() as s:
        rows = s.execute(query.order_by(MessageRow.received_at).limit(limit)).all()
    db_engine = getattr(engine.store, "engine", None)
    for mail_id, raw_path, old_action in rows:
        try:
            raw = read_blob(raw_path, db_engine)
        except OSError:
            raw = None
        if raw is None:
            report.missing_raw += 1
            continue
        with engine.store.session() as s:
            row = s.get(MessageRow, mail_id)
            if row is None:
                continue
            held, old_symbols = row.status == "quarantined", set(row.symbols or {})
            env = Envelope(
                id=row.id, mail_from=row.mail_from, rcpt_tos=list(row.rcpt_tos or []), peer_ip=row.peer_ip,
                helo=row.helo, received_at=row.received_at, direction=Direction(row.direction), auth_user=row.auth_user,
                size=row.size,
            )
        result = await scanner.scan(raw, env)
        report.scanned += 1
        verdict = result.verdict
        if held and verdict.action == Action.REJECT:
            # Accepted long ago: as when it arrived, a reject now means it stays held (no bounce).
            from mailmoat.pipeline import NO_BACKSCATTER, as_quarantine

            verdict = as_quarantine(verdict, NO_BACKSCATTER)
        if verdict.action.value == old_action and not ((held or refresh) and set(verdict.symbols) != old_symbols):
            continue  # the same verdict (a held message's is kept up to date: what users may release depends on it)
        report.changed += 1
        with engine.store.session() as s:
            row = s.get(MessageRow, mail_id)
            if row is None:
                continue
            row.action = verdict.action.value
            row.score = verdict.score
            row.symbols = verdict.symbols
            row.findings = [f.to_dict() for f in verdict.findings]
            row.reasons = list(verdict.reasons)
            row.scanned_at = time.time()
            # The searchable facts follow the verdict (`--symbol`, the dashboard, codes a new analyzer
            # found), extracted as when the message was recorded.
            s.execute(delete(IndicatorRow).where(IndicatorRow.message_id == mail_id))
            s.add_all(IndicatorRow(message_id=mail_id, kind=k, value=v) for k, v in extract_indicators(env, result.message, verdict))
            audit(s, actor, "message.rescan", mail_id, detail={"from": old_action, "to": verdict.action.value})
            s.commit()
        if verdict.action.value in CONDEMNED and old_action not in CONDEMNED:
            report.newly_condemned.append(mail_id)
            outcome = await auto_recall(
                engine, [Selector(mail_id=mail_id, since="0")], trigger=trigger,
                reason=f"re-scan changed the verdict from {old_action} to {verdict.action.value}: "
                + "; ".join(verdict.reasons[:3]),
                actor=actor,
            )
            if outcome.job_id:
                report.recalls.append(outcome)
    return report
