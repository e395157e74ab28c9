"""Is mail flowing: the spool, the delivery queue, the quarantine and what needs attention (what `mailmoat status` prints)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from mailmoat.status import gather
from mailmoat.web.api.common import web
from mailmoat.web.auth import Reader

router = APIRouter(prefix="/status", tags=["status"])


@router.get("")
async def status(request: Request, who: Reader) -> dict[str, Any]:
    """Spool backlog, delivery queue, quarantine, the last hour's verdicts, incidents, recalls, and
    the list of what needs attention (empty when nothing does)."""
    app = web(request)
    return (await asyncio.to_thread(gather, app.settings, app.store)).to_dict()
