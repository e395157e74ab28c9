"""Compromised-account incidents, when `mailmoat.accounts` is installed; otherwise the lists are empty."""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request

from mailmoat.web.api.common import record_async, web
from mailmoat.web.auth import Actor, Reader

router = APIRouter(prefix="/incidents", tags=["incidents"])


def _service(request: Request) -> Any | None:
    """The accounts package's incident API (`mailmoat.accounts.api`), or None when it is absent."""
    try:
        mod = importlib.import_module("mailmoat.accounts.api")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("mailmoat.accounts"):
            return None
        raise
    ctx = web(request)
    return mod.IncidentService(ctx.settings, ctx.store)


def _audited(request: Request, incident_id: str, since: float) -> bool:
    """Whether the accounts package wrote the audit row itself (one row per release, not two)."""
    from sqlalchemy import select

    from mailmoat.store.audit_models import AuditRow

    with web(request).store.session() as s:
        q = select(AuditRow.id).where(AuditRow.action == "incident.release", AuditRow.target == incident_id, AuditRow.at >= since)
        return s.scalars(q.limit(1)).first() is not None


async def _call(fn: Any, *args: Any) -> Any:
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    return await asyncio.to_thread(fn, *args)


@router.get("")
async def list_incidents(request: Request, who: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    """Incidents (newest first)."""
    svc = _service(request)
    if svc is None:
        return {"items": [], "available": False}
    return {"items": list(await _call(svc.list, limit)), "available": True}


@router.get("/{incident_id}")
async def get_incident(request: Request, incident_id: str, who: Reader) -> dict[str, Any]:
    """One incident with its evidence and actions."""
    svc = _service(request)
    item = await _call(svc.get, incident_id) if svc is not None else None
    if item is None:
        raise HTTPException(404, f"incident {incident_id} not found")
    out: dict[str, Any] = dict(item)
    return out


@router.post("/{incident_id}/release")
async def release_incident(
    request: Request, incident_id: str, who: Actor, reason: Annotated[str, Body(embed=True)] = ""
) -> dict[str, Any]:
    """Lift the containment of an account (the incident is closed as released)."""
    svc = _service(request)
    if svc is None:
        raise HTTPException(404, f"incident {incident_id} not found")
    started = time.time()
    if "source" in inspect.signature(svc.release).parameters:
        result = await _call(functools.partial(svc.release, source=who.source), incident_id, who.username, reason)
    else:
        result = await _call(svc.release, incident_id, who.username, reason)
    if result is None:
        raise HTTPException(409 if await _call(svc.get, incident_id) is not None else 404, f"incident {incident_id} cannot be released")
    if not await asyncio.to_thread(_audited, request, incident_id, started):
        await record_async(request, who, "incident.release", incident_id, note=reason)
    out: dict[str, Any] = dict(result)
    return out
