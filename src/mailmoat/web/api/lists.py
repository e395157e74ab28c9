"""Allow and deny lists kept in the store: read them, add a deny entry (analysts), an allow entry or a removal (admins); recipients' safe senders."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from mailmoat.digest import safe_senders
from mailmoat.policy.site_lists import (
    MAX_DAYS,
    ListError,
    add_to_store,
    audit_target,
    entries,
    entry_dict,
)
from mailmoat.store.list_models import SenderListRow
from mailmoat.web.api.common import RowId, not_found, record_async, web
from mailmoat.web.auth import ADMIN, Actor, Admin, Principal, Reader

router = APIRouter(prefix="/lists", tags=["lists"])


class EntryIn(BaseModel):
    kind: Annotated[str, Field(description="sender (an address), domain (and its sub-domains) or ip (an address or network)")]
    value: Annotated[str, Field(max_length=320)]
    note: Annotated[str, Field(max_length=500)] = ""
    days: Annotated[float, Field(ge=0, le=MAX_DAYS, description="0 = never expires")] = 0.0


@router.get("")
def list_entries(request: Request, who: Reader) -> dict[str, Any]:
    """Every entry in force, on both lists (the configuration file's policy lists are not shown here)."""
    with web(request).store.session() as s:
        return {"items": [entry_dict(r) for r in entries(s)]}


async def _add(request: Request, list_: str, body: EntryIn, who: Principal) -> dict[str, Any]:
    # Only those who may remove an entry may shorten or take over one already there (site_lists.add).
    try:
        entry, new = await asyncio.to_thread(add_to_store, web(request).store, list_, body.kind.strip().lower(), body.value,
                                             note=body.note, by=who.username, days=body.days, may_remove=who.role in ADMIN)
    except ListError as exc:
        raise HTTPException(422, str(exc)) from exc
    # What was asked (days) beside what the entry now is, and was: an expiry an analyst could not
    # shorten shows as such, not as if it had been set.
    await record_async(request, who, "list.add", audit_target(entry), {**entry, "new": new, "days": body.days}, note=body.note)
    return {**entry, "new": new}


@router.post("/deny", status_code=201)
async def add_deny(request: Request, body: EntryIn, who: Actor) -> dict[str, Any]:
    """Reject mail from a sender, a sender domain or a client network, on every node within seconds."""
    return await _add(request, "deny", body, who)


@router.post("/allow", status_code=201)
async def add_allow(request: Request, body: EntryIn, who: Admin) -> dict[str, Any]:
    """Deliver mail from a sender, a sender domain or a client network whatever the engines say
    (sender entries only while DMARC does not fail): admins only."""
    return await _add(request, "allow", body, who)


@router.delete("/{entry_id}")
async def remove_entry(request: Request, entry_id: RowId, who: Admin) -> dict[str, Any]:
    """Take an entry off its list."""

    def delete() -> dict[str, Any] | None:
        with web(request).store.session() as s:
            row = s.get(SenderListRow, entry_id)
            if row is None:
                return None
            out = entry_dict(row)
            s.delete(row)
            return out

    entry = await asyncio.to_thread(delete)
    if entry is None:
        raise not_found(f"list entry {entry_id}")
    await record_async(request, who, "list.remove", audit_target(entry), entry)
    return {**entry, "removed": True}


@router.get("/safe")
def list_safe_senders(request: Request, who: Reader, recipient: str = "") -> dict[str, Any]:
    """Recipients' safe senders, chosen on their digests' release pages (`digest.safe_senders`)."""
    return {"items": safe_senders.entries(web(request).store, recipient)}


@router.delete("/safe/{entry_id}")
async def remove_safe_sender(request: Request, entry_id: RowId, who: Actor) -> dict[str, Any]:
    """Take a safe sender off a recipient's list: that mail is held again like anyone's."""
    entry = await asyncio.to_thread(safe_senders.remove, web(request).store, entry_id)
    if entry is None:
        raise not_found(f"safe sender {entry_id}")
    await record_async(request, who, "safe_sender.remove", f"{entry['recipient']}:{entry['sender']}", entry)
    return {**entry, "removed": True}
