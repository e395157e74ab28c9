"""Incidents for administrators: list, show (with what was held and recalled) and release (lifts the hold)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from mailmoat.accounts.containment import Incident
from mailmoat.store.accounts_models import IncidentRow
from mailmoat.store.audit import audit
from mailmoat.store.db import Store
from mailmoat.store.models import MessageRow
from mailmoat.store.recall_models import RecallCopyRow, RecallJobRow


class IncidentError(ValueError):
    """An incident request that cannot be carried out (unknown incident, already released)."""


def list_incidents(store: Store, limit: int = 50, state: str = "") -> list[Incident]:
    with store.session() as s:
        q = select(IncidentRow).order_by(IncidentRow.opened_at.desc()).limit(limit)
        if state:
            q = q.where(IncidentRow.state == state)
        return [Incident.from_row(r) for r in s.scalars(q)]


def show_incident(store: Store, incident_id: str) -> dict[str, Any] | None:
    """The incident with the messages held since it opened and the state of its recall jobs."""
    with store.session() as s:
        row = s.get(IncidentRow, incident_id)
        if row is None:
            return None
        out = Incident.from_row(row).to_dict()
        until = row.released_at or time.time() + 1
        held = s.scalars(
            select(MessageRow)
            .where(
                MessageRow.mail_from == row.account,
                MessageRow.received_at >= row.first_suspect_at,
                MessageRow.received_at <= until,
                MessageRow.action == "quarantine",
            )
            .order_by(MessageRow.received_at)
        ).all()
        out["held_messages"] = [
            {"id": m.id, "received_at": m.received_at, "subject": m.subject, "recipients": len(m.rcpt_tos or []),
             "status": m.status, "score": m.score}
            for m in held
        ]
        jobs: list[dict[str, Any]] = []
        for jid in row.recall_jobs or []:
            job = s.get(RecallJobRow, jid)
            if job is None:
                continue
            counts: dict[str, int] = {}
            for st in s.scalars(select(RecallCopyRow.state).where(RecallCopyRow.job_id == jid)):
                counts[st] = counts.get(st, 0) + 1
            jobs.append({"id": jid, "state": job.state, "counts": counts})
        out["recalls"] = jobs
        out["recalled_copies"] = sum(int(j["counts"].get("recalled", 0)) for j in jobs)
        return out


def release_incident(store: Store, incident_id: str, actor: str, note: str = "", source: str = "") -> Incident:
    """Close the incident and lift the hold on the account (held messages stay in quarantine for review)."""
    with store.session() as s:
        row = s.get(IncidentRow, incident_id)
        if row is None:
            raise IncidentError(f"no incident {incident_id}")
        if row.state != "open":
            raise IncidentError(f"incident {incident_id} is already {row.state}")
        row.state = "released"
        row.held = False
        row.released_at = time.time()
        row.released_by = actor
        row.note = note
        audit(s, actor, "incident.release", incident_id, source=source, detail={"account": row.account}, note=note)
        return Incident.from_row(row)
