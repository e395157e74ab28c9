"""Recall jobs: preview, plan (from selectors or a message), approve, run in the background, follow, restore."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from mailmoat.recall.engine import RecallError
from mailmoat.recall.selection import SelectionError, Selector
from mailmoat.web.api.common import web
from mailmoat.web.auth import Actor, Admin, Principal, Reader

router = APIRouter(prefix="/recall", tags=["recall"])

# A job in one of these states does nothing more until someone acts on it.
QUIET_STATES = frozenset({"planned", "awaiting_approval", "done", "failed", "restored"})
STREAM_POLL = 0.5
STREAM_MAX = 1800.0


class RecallRequest(BaseModel):
    selector: dict[str, str] | None = Field(default=None, description="one selector: field → value (as in search)")
    selectors: list[dict[str, str]] | None = Field(default=None, description="several selectors (their union)")
    mail_id: str = Field(default="", description="shortcut: every copy of this recorded message")
    reason: str = ""
    run: bool = Field(default=False, description="start the job at once when it needs no approval")


def _selectors(req: RecallRequest) -> list[Selector]:
    raw: list[dict[str, str]] = []
    if req.selector:
        raw.append(req.selector)
    raw.extend(req.selectors or [])
    if req.mail_id:
        raw.append({"mail_id": req.mail_id, "since": "0"})
    try:
        sels = [Selector.from_dict(d) for d in raw]
    except SelectionError as exc:
        raise HTTPException(422, str(exc)) from exc
    sels = [s for s in sels if not s.is_empty()]
    if not sels:
        raise HTTPException(422, "name at least one selector (or a mail_id)")
    return sels


def _status(request: Request, job_id: str, with_copies: bool = True) -> dict[str, Any]:
    ctx = web(request)
    try:
        st: dict[str, Any] = ctx.recall_engine().status(job_id, with_copies=with_copies)
    except RecallError as exc:
        raise HTTPException(404, str(exc)) from exc
    # Running: the job itself, or (once restored) the re-judging of its follow-up's messages.
    st["running"] = f"recall:{job_id}" in ctx.tasks or f"restore:{job_id}" in ctx.tasks
    return st


def _start(request: Request, job_id: str, who: Principal) -> None:
    ctx = web(request)
    key = f"recall:{job_id}"
    if key in ctx.tasks:
        return
    ctx.spawn(key, ctx.recall_engine().dispatch(job_id, who.username, source=who.source))


def _plan(request: Request, req: RecallRequest, who: Principal) -> dict[str, Any]:
    sels = _selectors(req)
    engine = web(request).recall_engine()
    try:
        job_id = engine.plan(sels, who.username, req.reason, source=who.source)
    except SelectionError as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"id": job_id}


@router.post("/preview")
def preview(request: Request, req: RecallRequest, who: Actor) -> dict[str, Any]:
    """What a recall would touch: messages, copies, recipients, mailboxes (nothing is changed)."""
    sels = _selectors(req)
    try:
        out: dict[str, Any] = web(request).recall_engine().preview(sels).to_dict()
    except SelectionError as exc:
        raise HTTPException(422, str(exc)) from exc
    return out


@router.post("/jobs", status_code=201)
async def create_job(request: Request, req: RecallRequest, who: Actor) -> dict[str, Any]:
    """Plan a job over every delivered copy the selectors match; with `run`, start it (unless it awaits approval)."""
    planned = await asyncio.to_thread(_plan, request, req, who)
    st = await asyncio.to_thread(_status, request, planned["id"], False)
    if req.run and st["state"] == "planned":
        _start(request, planned["id"], who)
        st["running"] = True
    return st


@router.post("/jobs/from-message/{mail_id}", status_code=201)
async def create_job_from_message(
    request: Request, mail_id: str, who: Actor,
    reason: Annotated[str, Body(embed=True)] = "", run: Annotated[bool, Body(embed=True)] = False,
) -> dict[str, Any]:
    """Plan a job over every delivered copy of one recorded message."""
    if await asyncio.to_thread(web(request).store.get_message, mail_id) is None:
        raise HTTPException(404, f"message {mail_id} not found")
    return await create_job(request, RecallRequest(mail_id=mail_id, reason=reason, run=run), who)


@router.get("/jobs")
def list_jobs(request: Request, who: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    """Recall jobs, newest first, with per-state copy counts."""
    ctx = web(request)
    jobs: list[dict[str, Any]] = ctx.recall_engine().list_jobs(limit)
    for j in jobs:
        j["running"] = f"recall:{j['id']}" in ctx.tasks
    return {"items": jobs}


@router.get("/jobs/{job_id}")
def get_job(request: Request, job_id: str, who: Reader) -> dict[str, Any]:
    """A job with every copy's state (the polling form of the status stream)."""
    return _status(request, job_id)


@router.post("/jobs/{job_id}/approve")
async def approve_job(request: Request, job_id: str, who: Admin, run: Annotated[bool, Body(embed=True)] = False) -> dict[str, Any]:
    """Approve a job that waits for approval (administrators only); with `run`, start it."""
    engine = web(request).recall_engine()
    try:
        await asyncio.to_thread(engine.approve, job_id, who.username, who.source)
    except RecallError as exc:
        raise HTTPException(404 if "no recall job" in str(exc) else 409, str(exc)) from exc
    if run:
        _start(request, job_id, who)
    return await asyncio.to_thread(_status, request, job_id, False)


@router.post("/jobs/{job_id}/run", status_code=202)
async def run_job(request: Request, job_id: str, who: Actor) -> dict[str, Any]:
    """Start (or resume) a job in the background; follow it with /events or by polling the job."""
    st = await asyncio.to_thread(_status, request, job_id, False)
    if st["state"] == "awaiting_approval":
        raise HTTPException(409, f"job {job_id} is waiting for approval")
    if st["state"] in ("restoring", "restored"):
        raise HTTPException(409, f"job {job_id} was restored; plan a new recall")
    _start(request, job_id, who)
    st["running"] = True
    return st


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse)
async def job_events(request: Request, job_id: str, who: Reader) -> StreamingResponse:
    """Server-Sent Events: a `status` event whenever the job changes; the stream ends when the job is quiet."""
    first = await asyncio.to_thread(_status, request, job_id)

    async def stream() -> AsyncIterator[bytes]:
        st = first
        last = ""
        started = time.monotonic()
        while True:
            body = json.dumps(st, sort_keys=True, default=str)
            if body != last:
                last = body
                yield _event("status", st)
            if st["state"] in QUIET_STATES and not st["running"]:
                yield _event("end", {"state": st["state"]})
                return
            if time.monotonic() - started > STREAM_MAX or await request.is_disconnected():
                return
            await asyncio.sleep(STREAM_POLL)
            try:
                st = await asyncio.to_thread(_status, request, job_id)
            except HTTPException:
                return

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


class RestoreRequest(BaseModel):
    tracking_ids: list[str] = Field(default_factory=list, description="copies to put back; empty = the whole job")


@router.post("/jobs/{job_id}/restore")
async def restore_job(request: Request, job_id: str, who: Actor, req: RestoreRequest | None = None) -> dict[str, Any]:
    """Put recalled copies back where they were (the whole job, or the named copies). The copies,
    and those its follow-up recalled (`follow_up_restored`), are back when this answers; the
    follow-up's messages are then judged again in the background while `running` is true."""
    ctx = web(request)
    if f"recall:{job_id}" in ctx.tasks:
        raise HTTPException(409, f"job {job_id} is still running")
    await asyncio.to_thread(_status, request, job_id, False)
    ids = (req.tracking_ids if req else []) or None
    key = f"restore:{job_id}"
    try:
        st: dict[str, Any] = await ctx.recall_engine().restore(
            job_id, who.username, ids, source=who.source, defer=lambda judging: ctx.spawn(key, judging))
    except RecallError as exc:
        raise HTTPException(409, str(exc)) from exc
    st["running"] = key in ctx.tasks
    return st
