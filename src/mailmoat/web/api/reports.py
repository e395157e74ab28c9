"""Colleagues' reports of suspect mail: the reported messages to triage, and dismissing them (condemn one with /messages/{id}/condemn)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request

from mailmoat.reports.triage import ReportError, dismiss, reported
from mailmoat.web.api.common import record, web
from mailmoat.web.auth import Actor, Reader

router = APIRouter(prefix="/reports", tags=["reports"])


@router.get("")
def list_reports(
    request: Request,
    who: Reader,
    everything: Annotated[bool, Query(alias="all", description="also those condemned, recalled or dismissed")] = False,
    days: Annotated[float, Query(ge=0, description="reported in the last N days (0 = any time)")] = 30.0,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> dict[str, Any]:
    """Reported messages, most recently reported first: who reported each, how it was found, what
    it is and what became of it. A report whose message was not found is an item of its own."""
    since = time.time() - days * 86400.0 if days else 0.0
    with web(request).store.session() as s:
        return {"items": reported(s, everything=everything, since=since, limit=limit)}


@router.post("/{key}/dismiss")
def dismiss_reports(request: Request, key: str, who: Actor, reason: Annotated[str, Body(embed=True)] = "") -> dict[str, Any]:
    """Dismiss the reports of a message (its id), or an unmatched report (the report's id): nothing
    is recalled, and it leaves the list."""
    try:
        with web(request).store.session() as s:
            n = dismiss(s, key, who.username)
    except ReportError as exc:
        raise HTTPException(404, str(exc)) from exc
    record(request, who, "report.dismiss", key, {"reports": n}, note=reason)
    return {"key": key, "dismissed": n}
