"""Containment of a compromised account: hold its mail, alert (log, webhook, email), recall what it sent — one incident."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailmoat.accounts import profiles, signals
from mailmoat.config import Settings
from mailmoat.model import Action, Direction, Envelope, Message, Verdict
from mailmoat.model.envelope import new_id
from mailmoat.policy.decide import STAFF_REPORT
from mailmoat.recall import triggers
from mailmoat.store.accounts_models import IncidentRow
from mailmoat.store.audit import audit
from mailmoat.store.db import Store

log = logging.getLogger("mailmoat.accounts")

MODES = ("automatic", "approval", "alert")
ACCOUNT_SOURCE = "account"  # the analyzer's name: its findings are not "content"
WEBHOOK_TIMEOUT = 5.0


@dataclass
class Incident:
    """One compromised-account incident as returned to the pipeline and shown to administrators."""

    id: str
    account: str
    state: str
    mode: str
    held: bool
    opened_at: float
    first_suspect_at: float
    reasons: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    alerts: dict[str, Any] = field(default_factory=dict)
    recall_jobs: list[str] = field(default_factory=list)
    trigger_message: str = ""
    first_suspect_message: str = ""
    suspect_messages: int = 0
    released_at: float = 0.0
    released_by: str = ""
    note: str = ""

    @classmethod
    def from_row(cls, r: IncidentRow) -> Incident:
        return cls(
            id=r.id, account=r.account, state=r.state, mode=r.mode, held=bool(r.held), opened_at=r.opened_at,
            first_suspect_at=r.first_suspect_at, reasons=list(r.reasons or []), evidence=dict(r.evidence or {}),
            alerts=dict(r.alerts or {}), recall_jobs=list(r.recall_jobs or []), trigger_message=r.trigger_message,
            first_suspect_message=r.first_suspect_message, suspect_messages=r.suspect_messages,
            released_at=r.released_at, released_by=r.released_by, note=r.note,
        )

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["summary"] = "; ".join(self.reasons)  # one line for lists (console, CLI)
        return out


def open_incident(session: Session, account: str) -> IncidentRow | None:
    """The account's open incident (there is at most one), if any."""
    return session.scalars(
        select(IncidentRow).where(IncidentRow.account == account, IncidentRow.state == "open").order_by(IncidentRow.opened_at.desc())
    ).first()


def is_held(store: Store, account: str) -> bool:
    with store.session() as s:
        row = open_incident(s, account)
        return bool(row is not None and row.held)


def content_threat(settings: Settings, envelope: Envelope, verdict: Verdict) -> bool:
    """Quarantined on content alone (the account's own behaviour findings left out)."""
    if verdict.action not in (Action.QUARANTINE, Action.REJECT):
        return False
    score = sum(f.score for f in verdict.findings if f.source != ACCOUNT_SOURCE)
    base = settings.policy.thresholds.quarantine
    over = settings.policy.direction.get(envelope.direction.value, {})
    th = over.get("thresholds", {}) if isinstance(over, dict) else {}
    limit = float(th.get("quarantine", base)) if isinstance(th, dict) else base
    return score >= limit


async def observe(store: Store, settings: Settings, envelope: Envelope, message: Message, verdict: Verdict) -> Incident | None:
    """Learn from one recorded internal/outbound message and contain its account when judged compromised.

    Called by the pipeline after the message was recorded and delivered (or held). Returns the
    incident opened now, or None. Never raises: a failure here must not disturb mail flow.
    """
    if not settings.accounts.enabled or envelope.direction is Direction.INBOUND:
        return None
    try:
        return await _observe(store, settings, envelope, message, verdict)
    except Exception:
        log.exception("account profile update failed for %s", envelope.id)
        return None


async def _observe(store: Store, settings: Settings, envelope: Envelope, message: Message, verdict: Verdict) -> Incident | None:
    facts = profiles.facts_of(envelope, message, settings)
    if facts is None:
        return None
    threat = content_threat(settings, envelope, verdict)
    opened: IncidentRow | None = None
    late_copies = False
    with store.session() as s:
        sig = signals.compute(s, settings, facts, current_threat=threat)
        profiles.record_event(
            s, facts, action=verdict.action.value, content_threat=threat, new_ip=sig.new_ip,
            new_name=sig.new_name and bool(sig.name_kind),
        )
        current = open_incident(s, facts.account)
        # A report forwards someone else's mail: its links and names are the phish's, not the
        # reporter's (three reports of a lure made its domain one of the account's usual links).
        report = any(f.symbol == STAFF_REPORT.name for f in verdict.findings)
        if current is None and not threat and not report:
            # New values are learnt at once but count as usual only after accounts.learn_after, so
            # a wave cannot teach the profile its own origin; a contained account learns nothing.
            profiles.learn(s, facts)
        if current is not None:
            late_copies = verdict.action in (Action.DELIVER, Action.TAG) and current.held and bool(facts.internal_rcpts)
            incident_id = current.id
        else:
            reasons = signals.judge(sig)
            if reasons:
                opened = _new_incident(settings, facts, sig, reasons)
                s.add(opened)
                audit(s, "system", "account.contain", opened.id, detail={"account": facts.account, "reasons": reasons})
        profiles.prune(s, facts.at - settings.accounts.keep_events_days * 86400)
    if current is not None:
        if late_copies:
            # Scanned before the hold but delivered after it: recall these copies too.
            await _recall(store, settings, incident_id, [envelope.id], since=0.0)
        return None
    if opened is None:
        return None
    return await contain(store, settings, opened.id, sig)


def _new_incident(settings: Settings, facts: profiles.Facts, sig: signals.Signals, reasons: list[str]) -> IncidentRow:
    mode = settings.accounts.containment if settings.accounts.containment in MODES else "automatic"
    now = time.time()
    return IncidentRow(
        id=new_id(), account=facts.account, state="open", mode=mode, held=mode != "alert", opened_at=now,
        first_suspect_at=sig.first_suspect_at, first_suspect_message=sig.first_suspect_message,
        trigger_message=facts.message_id, suspect_messages=len(sig.window_messages), reasons=reasons,
        evidence={"signals": sig.to_dict(), "trigger": {"message": facts.message_id, "client_ip": facts.client_ip,
                  "host": facts.host, "display": facts.display, "fingerprint": facts.fingerprint,
                  "urls": facts.urls, "qrs": facts.qrs}},
        alerts={}, recall_jobs=[], released_at=0.0, released_by="", note="",
    )


async def contain(store: Store, settings: Settings, incident_id: str, sig: signals.Signals) -> Incident:
    """Carry out the containment policy for a freshly opened incident."""
    with store.session() as s:
        row = s.get(IncidentRow, incident_id)
        assert row is not None
        inc = Incident.from_row(row)
    log.warning(
        "account.contained incident=%s account=%s mode=%s reasons=%s", inc.id, inc.account, inc.mode, "; ".join(inc.reasons)
    )
    alerts: dict[str, Any] = {"log": "written"}
    if inc.mode != "alert":
        ids = sig.window_messages
        await _recall(store, settings, inc.id, ids, since=inc.first_suspect_at)
    payload = _payload(store, inc.id)
    if settings.accounts.webhook:
        alerts["webhook"] = await asyncio.to_thread(_post, settings.accounts.webhook, payload)
    if settings.accounts.security_address:
        alerts["email"] = await _email(store, settings, payload)
    with store.session() as s:
        row = s.get(IncidentRow, inc.id)
        assert row is not None
        row.alerts = {**(row.alerts or {}), **alerts}
        return Incident.from_row(row)


async def _recall(store: Store, settings: Settings, incident_id: str, message_ids: list[str], since: float) -> None:
    """Recall the account's delivered internal copies (the suspect window's messages, and anything later)."""
    from mailmoat.recall.engine import RecallEngine
    from mailmoat.recall.selection import Selector

    with store.session() as s:
        row = s.get(IncidentRow, incident_id)
        assert row is not None
        account, mode = row.account, row.mode
    # What the account sent to the report mailbox is evidence for the security team, not a threat.
    keep = STAFF_REPORT.name
    sels = [Selector(mail_id=m, direction="internal", not_symbol=keep) for m in dict.fromkeys(message_ids)]
    if since:
        sels.append(Selector(sender=account, direction="internal", since=str(since), not_symbol=keep))
    engine = RecallEngine(settings, store)
    try:
        if engine.preview(sels).copies == 0:
            return
        job = engine.plan(sels, "system", f"compromised account {account} (incident {incident_id})", trigger=triggers.INCIDENT,
                          require_approval=(mode == "approval"))
        with store.session() as s:
            r = s.get(IncidentRow, incident_id)
            assert r is not None
            r.recall_jobs = [*(r.recall_jobs or []), job]
        if mode == "automatic":
            st = await engine.run(job, "system")
            log.warning("account.recall incident=%s job=%s counts=%s", incident_id, job, st["counts"])
    finally:
        await engine.close()


def _payload(store: Store, incident_id: str) -> dict[str, Any]:
    with store.session() as s:
        row = s.get(IncidentRow, incident_id)
        assert row is not None
        inc = Incident.from_row(row)
    return {"event": "account.compromised", **inc.to_dict()}


def _post(url: str, payload: dict[str, Any]) -> str:
    data = json.dumps(payload, ensure_ascii=False, default=str).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=WEBHOOK_TIMEOUT) as resp:
            return f"sent ({resp.status})"
    except Exception as exc:  # an unreachable webhook is reported in the incident, never raised
        log.warning("incident webhook %s failed: %s", url, exc)
        return f"failed: {exc}"


async def _email(store: Store, settings: Settings, payload: dict[str, Any]) -> str:
    """The alert as an email to the security address, delivered like any other mail (same delivery service)."""
    from mailmoat.deliver import DeliveryService
    from mailmoat.parse import parse

    sender = f"mailmoat@{settings.server.hostname}"
    to = settings.accounts.security_address
    msg = EmailMessage()
    msg["From"] = f"mailmoat <{sender}>"
    msg["To"] = to
    msg["Subject"] = f"[mailmoat] account {payload['account']} contained (incident {payload['id']})"
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=settings.server.hostname)
    lines = [
        f"The account {payload['account']} was judged compromised and contained ({payload['mode']}).",
        "",
        "Why:",
        *[f"  - {r}" for r in payload["reasons"]],
        "",
        f"Held: {'yes' if payload['held'] else 'no'}; recall jobs: {', '.join(payload['recall_jobs']) or 'none'}",
        f"Release: mailmoat incidents release {payload['id']} --note '...'",
    ]
    msg.set_content("\n".join(lines))
    msg.add_attachment(json.dumps(payload, ensure_ascii=False, indent=2, default=str).encode(), maintype="application",
                       subtype="json", filename=f"incident-{payload['id']}.json")
    raw = msg.as_bytes()
    env = Envelope(mail_from=sender, rcpt_tos=[to], direction=Direction.INBOUND, listener="system", size=len(raw))
    verdict = Verdict(action=Action.DELIVER, score=0.0, findings=[], reasons=["incident alert"])
    service = DeliveryService(settings, store)
    try:
        message = parse(raw)
        await asyncio.to_thread(store.record_message, env, message, verdict, "")
        out = await service.deliver(env, raw, verdict, message)
        return ", ".join(f"{o.recipient}: {o.status}" for o in out) or "not sent"
    except Exception as exc:
        log.warning("incident email to %s failed: %s", to, exc)
        return f"failed: {exc}"
    finally:
        service.close()
