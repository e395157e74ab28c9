"""Helpers shared by the API routers: the web context, audit entries, errors, JSON-safe rows."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import HTTPException, Query, Request
from fastapi import Path as PathParam
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailmoat.store.audit import audit
from mailmoat.store.db import HELD, clean_json
from mailmoat.store.models import DeliveryRow, MessageRow
from mailmoat.store.quarantine import QUARANTINED
from mailmoat.store.queries import MAX_DB_INT
from mailmoat.web.auth import Principal

# Paging and row ids as the database can hold them: a larger number is a 422, not an
# OverflowError from the database driver (HTTP 500).
Offset = Annotated[int, Query(ge=0, le=MAX_DB_INT)]
RowId = Annotated[int, PathParam(ge=1, le=MAX_DB_INT)]


def web(request: Request) -> Any:
    """The application's WebContext (settings, store, engines, background tasks)."""
    return request.app.state.web


def record(request: Request, who: Principal, action: str, target: str = "", detail: dict[str, Any] | None = None, note: str = "") -> None:
    """Append one audit row for a state change made through the API."""
    with web(request).store.session() as s:
        audit(s, who.username, action, target, source=who.source, detail=clean_json(detail or {}), note=note)


async def record_async(request: Request, who: Principal, action: str, target: str = "", detail: dict[str, Any] | None = None, note: str = "") -> None:
    await asyncio.to_thread(record, request, who, action, target, detail, note)


def not_found(what: str) -> HTTPException:
    return HTTPException(404, f"{what} not found")


def message_summary(m: MessageRow, partly_released: bool = False) -> dict[str, Any]:
    return {
        "id": m.id,
        "received_at": m.received_at,
        "direction": m.direction,
        "mail_from": m.mail_from,
        "from_addr": m.from_addr,
        "from_display": m.from_display,
        "rcpt_tos": list(m.rcpt_tos or []),
        "subject": m.subject,
        "message_id": m.message_id,
        "size": m.size,
        "action": m.action,
        "score": m.score,
        "status": m.status,
        # Still quarantined, with some recipients' copies released (by an analyst or from a digest).
        "partly_released": partly_released,
        "symbols": dict(m.symbols or {}),
        "raw_available": bool(m.raw_path) and (m.raw_path.startswith("pglo:") or Path(m.raw_path).is_file()),
    }


def message_summaries(session: Session, rows: Sequence[MessageRow]) -> list[dict[str, Any]]:
    """`message_summary` of each row, with one query for which held messages were partly released."""
    held = [m.id for m in rows if m.status == QUARANTINED]
    partly = set(session.scalars(
        select(DeliveryRow.message_id).where(DeliveryRow.message_id.in_(held), DeliveryRow.status != HELD).distinct()
    )) if held else set()
    return [message_summary(m, m.id in partly) for m in rows]
