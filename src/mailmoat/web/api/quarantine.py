"""Quarantine: list held messages, release them to their recipients, delete them, download the raw message; recipients' release requests."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import Response

from mailmoat.deliver.service import ReleaseError
from mailmoat.digest.decline_notice import tell_declined
from mailmoat.digest.requests import RequestError, decline, open_requests, request_dict
from mailmoat.store.quarantine import QuarantineError, discard, held, release_state
from mailmoat.web.api.common import Offset, RowId, message_summaries, not_found, record, record_async, web
from mailmoat.web.api.messages import raw_response
from mailmoat.web.auth import Actor, Reader

router = APIRouter(prefix="/quarantine", tags=["quarantine"])


@router.get("")
def list_quarantine(
    request: Request,
    who: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Messages held in quarantine, newest first; `requested_by`: the recipients who asked, from a
    digest, for their copy and are waiting for a decision."""
    with web(request).store.session() as s:
        total, rows = held(s, limit=limit, offset=offset)
        items = message_summaries(s, rows)
        asked: dict[str, list[str]] = {}
        for req, _ in open_requests(s, limit=10_000, mail_ids=[item["id"] for item in items]):
            asked.setdefault(req.message_id, []).append(req.recipient)
        for item in items:
            item["requested_by"] = asked.get(item["id"], [])
        return {"total": total, "limit": limit, "offset": offset, "items": items}


@router.get("/requests")
def list_requests(request: Request, who: Reader) -> dict[str, Any]:
    """Recipients' requests, from their digests, that a held copy be released: those waiting for a
    decision, oldest first. Release the copy (`/quarantine/{id}/release` with the recipient) or
    decline the request."""
    with web(request).store.session() as s:
        pairs = open_requests(s)
        summaries = message_summaries(s, [m for _, m in pairs])
        return {"items": [{**request_dict(s, req, "open"), "message": summary} for (req, _), summary in zip(pairs, summaries, strict=True)]}


@router.post("/requests/{request_id}/decline")
async def decline_request(request: Request, request_id: RowId, who: Actor, reason: Annotated[str, Body(embed=True)] = "") -> dict[str, Any]:
    """Decline a release request: the copy stays held, and the recipient is told so with the reason
    (`digest.tell_declines`; `told` says whether the notice went out)."""
    ctx = web(request)

    def decline_it() -> dict[str, Any]:
        with ctx.store.session() as s:
            return decline(s, request_id, who.username, reason)

    try:
        out = await asyncio.to_thread(decline_it)
    except RequestError as exc:
        raise (not_found(f"release request {request_id}") if exc.missing else HTTPException(409, str(exc))) from exc
    await record_async(request, who, "quarantine.decline", out["mail_id"], {"request": request_id, "recipient": out["recipient"]}, note=reason)
    out["told"] = await tell_declined(ctx.settings, ctx.store, out["mail_id"], out["recipient"], reason)
    return out


@router.post("/{mail_id}/release")
async def release(
    request: Request,
    mail_id: str,
    who: Actor,
    reason: Annotated[str, Body(embed=True)] = "",
    recipients: Annotated[list[str] | None, Body(embed=True, description="only these recipients' copies")] = None,
) -> dict[str, Any]:
    """Deliver a quarantined message to its recipients, or to some of them (each copy once)."""
    try:
        outcomes = await web(request).delivery().release(mail_id, recipients or ())
    except ReleaseError as exc:
        code = 404 if "no message" in str(exc) else 409
        raise HTTPException(code, str(exc)) from exc
    result = [{"recipient": o.recipient, "tracking_id": o.tracking_id, "status": o.status, "reply": o.reply} for o in outcomes]
    await record_async(request, who, "quarantine.release", mail_id, {"copies": result, "recipients": recipients or []}, note=reason)
    status = await asyncio.to_thread(release_state, web(request).store, mail_id)
    return {"id": mail_id, "status": status, "copies": result}


@router.post("/{mail_id}/delete")
def delete_message(request: Request, mail_id: str, who: Actor, reason: Annotated[str, Body(embed=True)] = "") -> dict[str, Any]:
    """Discard a quarantined message: it will never be delivered (the raw copy stays until retention ends)."""
    try:
        with web(request).store.session() as s:
            discard(s, mail_id)
    except QuarantineError as exc:
        raise (not_found(f"message {mail_id}") if exc.missing else HTTPException(409, str(exc))) from exc
    record(request, who, "quarantine.delete", mail_id, note=reason)
    return {"id": mail_id, "status": "deleted"}


@router.get("/{mail_id}/raw", response_class=Response)
async def quarantine_raw(request: Request, mail_id: str, who: Actor) -> Response:
    """The raw quarantined message as a download (never rendered); the download is audited."""
    resp = await asyncio.to_thread(raw_response, request, mail_id)
    await record_async(request, who, "message.download", mail_id)
    return resp
