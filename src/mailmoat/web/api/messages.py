"""Message search (the recall selectors), detail with every piece of evidence, sanitised preview, raw download."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from mailmoat.digest.requests import for_message
from mailmoat.model import Message
from mailmoat.recall import triggers
from mailmoat.recall.selection import SelectionError, Selector, message_conditions
from mailmoat.reports.triage import reports_of
from mailmoat.store.db import clean_json
from mailmoat.store.models import DeliveryRow, MessageRow
from mailmoat.store.quarantine import mark_condemned
from mailmoat.store.queries import recipient_is
from mailmoat.store.recall_models import RecallCopyRow, RecallJobRow
from mailmoat.web.api.common import Offset, message_summaries, message_summary, not_found, record, web
from mailmoat.web.auth import Actor, Reader

router = APIRouter(prefix="/messages", tags=["messages"])

MAX_PREVIEW = 200_000
MAX_DOCUMENT_PREVIEW = 4_000  # characters of each attached document shown with the message
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


class SearchParams:
    """Query parameters: every recall selector, plus status and paging."""

    def __init__(
        self,
        tracking_id: str = "", message_id: str = "", mail_id: str = "", sender: str = "", recipient: str = "",
        subject: str = "", url: str = "", url_domain: str = "", sha256: str = "", qr: str = "", action: str = "",
        symbol: str = "", direction: str = "", since: str = "", until: str = "",
        status: Annotated[str, Query(description="processed, quarantined, released, deleted, condemned")] = "",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Offset = 0,
    ) -> None:
        self.selector = Selector(
            tracking_id=tracking_id, message_id=message_id, mail_id=mail_id, sender=sender, recipient=recipient,
            subject=subject, url=url, url_domain=url_domain, sha256=sha256, qr=qr, action=action, symbol=symbol,
            direction=direction, since=since, until=until,
        )
        self.status = status
        self.limit = limit
        self.offset = offset


def search_conditions(sel: Selector, status: str = "") -> list[Any]:
    """The recall selectors as conditions on messages (copy-level ones through the deliveries table)."""
    try:
        conds = message_conditions(sel)
    except SelectionError as exc:
        raise HTTPException(422, str(exc)) from exc
    if sel.tracking_id:
        t = sel.tracking_id.strip()
        conds.append(or_(MessageRow.id == t, MessageRow.id.in_(select(DeliveryRow.message_id).where(DeliveryRow.tracking_id == t))))
    if sel.recipient:
        conds.append(MessageRow.id.in_(select(DeliveryRow.message_id).where(recipient_is(sel.recipient))))
    if status:
        conds.append(MessageRow.status == status)
    return conds


def run_search(request: Request, sel: Selector, status: str, limit: int, offset: int) -> dict[str, Any]:
    conds = search_conditions(sel, status)
    where = and_(*conds) if conds else None
    with web(request).store.session() as s:
        q = select(MessageRow)
        cq = select(func.count()).select_from(MessageRow)
        if where is not None:
            q, cq = q.where(where), cq.where(where)
        total = s.scalar(cq) or 0
        rows = s.scalars(q.order_by(MessageRow.received_at.desc(), MessageRow.id.desc()).limit(limit).offset(offset)).all()
        return {"total": total, "limit": limit, "offset": offset, "items": message_summaries(s, rows)}


@router.get("")
def search_messages(request: Request, who: Reader, params: Annotated[SearchParams, Depends()]) -> dict[str, Any]:
    """Search recorded messages with the recall selectors; newest first, paged."""
    return run_search(request, params.selector, params.status, params.limit, params.offset)


def _get(request: Request, mail_id: str) -> MessageRow:
    row: MessageRow | None = web(request).store.get_message(mail_id)
    if row is None:
        raise not_found(f"message {mail_id}")
    return row


def _read_raw(request: Request, row: MessageRow) -> bytes | None:
    """The retained raw message, from a file or PostgreSQL large object (None once purged)."""
    from mailmoat.blobstore import read_blob

    try:
        return read_blob(row.raw_path, web(request).store.engine)
    except OSError:
        return None


def _parsed(request: Request, row: MessageRow) -> Message | None:
    from mailmoat.parse import parse

    raw = _read_raw(request, row)
    if raw is None:
        return None
    return parse(raw, qr=web(request).settings.qr)


def _where_qr(finding: dict[str, Any]) -> bool:
    return finding.get("group") == "qr" or str(finding.get("symbol", "")).startswith("QR_")


def _codes_from_findings(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """QR payloads and where they were found, as the QR analyzer recorded them (when the raw message is gone)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for f in findings:
        for c in (f.get("data") or {}).get("codes", []) or []:
            if not isinstance(c, dict) or not c.get("payload"):
                continue
            key = (str(c["payload"]), str(c.get("part_path", "")))
            item = seen.setdefault(
                key,
                {
                    "payload": c["payload"], "symbology": c.get("symbology", ""), "source": c.get("source", ""),
                    "part_path": c.get("part_path", ""), "content_id": c.get("content_id", ""),
                    "filename": c.get("filename", ""), "origin": c.get("origin", {}),
                    "referenced_by_cid": c.get("source") == "cid", "evidence": [],
                },
            )
            if f.get("evidence") and f["evidence"] not in item["evidence"]:
                item["evidence"].append(f["evidence"])
    return list(seen.values())


def recalls_of(s: Session, mail_id: str) -> list[dict[str, Any]]:
    """Every recall job's work on the message's copies, oldest job first: the job (id, trigger,
    state), and per copy its state, the folder it was taken from and whether it was verified gone."""
    rows = s.execute(
        select(RecallCopyRow, RecallJobRow.trigger, RecallJobRow.state, RecallJobRow.created_at)
        .join(RecallJobRow, RecallJobRow.id == RecallCopyRow.job_id)
        .where(RecallCopyRow.message_id == mail_id)
        .order_by(RecallJobRow.created_at, RecallCopyRow.id)
    ).all()
    return [
        {"job_id": c.job_id, "trigger": trigger, "job_state": job_state, "created_at": created_at,
         "tracking_id": c.tracking_id, "recipient": c.recipient, "state": c.state, "folder": c.folder,
         "verified": c.verified, "updated_at": c.updated_at}
        for c, trigger, job_state, created_at in rows
    ]


def message_detail(request: Request, mail_id: str) -> dict[str, Any]:
    row = _get(request, mail_id)
    out = message_summary(row)
    out["envelope"] = {
        "mail_from": row.mail_from, "rcpt_tos": list(row.rcpt_tos or []), "peer_ip": row.peer_ip, "helo": row.helo,
        "direction": row.direction, "auth_user": row.auth_user, "received_at": row.received_at, "size": row.size,
    }
    out["headers"] = [list(h) for h in row.headers or []]
    out["verdict"] = {"action": row.action, "score": row.score, "reasons": list(row.reasons or []), "status": row.status}
    findings = list(row.findings or [])
    out["findings"] = findings
    out["deliveries"] = [
        {
            "tracking_id": d.tracking_id, "recipient": d.recipient, "mailbox": d.mailbox, "status": d.status,
            "attempts": d.attempts, "reply": d.reply, "delivered_at": d.delivered_at, "updated_at": d.updated_at,
        }
        for d in web(request).store.deliveries(mail_id)
    ]
    out["partly_released"] = row.status == "quarantined" and any(d["status"] != "held" for d in out["deliveries"])
    with web(request).store.session() as s:
        out["release_requests"] = for_message(s, mail_id)  # recipients asking, from a digest, for their copy
        out["reports"] = reports_of(s, mail_id)  # colleagues who reported it to the report mailbox
        out["recalls"] = recalls_of(s, mail_id)  # what recall jobs did to its copies
    msg = _parsed(request, row)
    out["parsed"] = msg is not None
    qr_findings = [f for f in findings if _where_qr(f)]
    if msg is None:
        out.update(urls=[], attachments=[], documents=[], cid_map={}, defects=[])
        out["qr_codes"] = _codes_from_findings(qr_findings)
        return out
    out["urls"] = [
        {
            "url": u.url, "host": u.host, "registrable_domain": u.registrable_domain, "source": u.source,
            "anchor_text": u.anchor_text, "part_path": u.part_path, "is_ip": u.is_ip, "is_idn": u.is_idn,
        }
        for u in msg.urls
    ]
    qrs = []
    for q in msg.qr_codes:
        evidence = [f.get("evidence", "") for f in qr_findings if q.payload and q.payload in str(f.get("evidence", "")) + str(f.get("data", ""))]
        qrs.append(
            {
                "payload": q.payload, "symbology": q.symbology, "source": q.source, "part_path": q.part_path,
                "content_id": q.content_id, "filename": q.filename, "origin": clean_json(q.origin),
                "referenced_by_cid": bool(q.content_id and q.content_id in msg.cid_map), "evidence": evidence,
            }
        )
    out["qr_codes"] = qrs
    out["attachments"] = [
        {
            "part_path": p.path, "filename": p.filename, "declared_type": p.content_type, "true_type": p.true_type,
            "true_ext": p.true_ext, "size": p.size, "sha256": p.sha256, "disposition": p.disposition,
            "content_id": p.content_id, "type_mismatch": bool(p.true_type and p.true_type != p.content_type),
        }
        for p in msg.parts
        if p.is_attachment or p.filename or p.content_id
    ]
    # What the recipient reads on opening each attachment: the text the lexicons matched.
    out["documents"] = [
        {
            "part_path": d.part_path, "filename": sanitise_text(d.filename), "kind": d.kind, "locked": d.locked,
            "opened": bool(d.password), "text": sanitise_text(d.text)[:MAX_DOCUMENT_PREVIEW],
            "truncated": len(d.text) > MAX_DOCUMENT_PREVIEW,
        }
        for d in msg.documents
    ]
    out["cid_map"] = dict(msg.cid_map)
    out["defects"] = list(msg.defects)
    return out


@router.get("/{mail_id}")
def get_message(request: Request, mail_id: str, who: Reader) -> dict[str, Any]:
    """Envelope, headers, verdict, every finding with evidence, URLs, QR payloads and where, attachments, deliveries."""
    return message_detail(request, mail_id)


def sanitise_text(text: str) -> str:
    """Text safe to show anywhere: no control or bidi-override characters, bounded length."""
    t = _CONTROL.sub("", text.replace("\r\n", "\n"))
    return t[:MAX_PREVIEW]


@router.get("/{mail_id}/preview")
def preview_message(request: Request, mail_id: str, who: Reader) -> dict[str, Any]:
    """The body as sanitised plain text (HTML is reduced to its visible text; never served as markup)."""
    row = _get(request, mail_id)
    msg = _parsed(request, row)
    if msg is None:
        raise HTTPException(410, "the raw message is no longer retained")
    # The part a reader sees, as the filters read it: a one-line plain part does not hide the HTML.
    body = msg.body_text
    source = "text/html (visible text only)" if msg.reads_html else "text/plain"
    return {
        "id": mail_id, "subject": sanitise_text(msg.subject), "from": sanitise_text(str(msg.from_.addr)),
        "text": sanitise_text(body), "source": source, "truncated": len(body) > MAX_PREVIEW,
    }


def raw_response(request: Request, mail_id: str) -> Response:
    row = _get(request, mail_id)
    raw = _read_raw(request, row)
    if raw is None:
        raise HTTPException(410, "the raw message is no longer retained")
    return Response(
        raw,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{row.id}.eml"',
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@router.get("/{mail_id}/raw", response_class=Response)
def download_raw(request: Request, mail_id: str, who: Actor) -> Response:
    """The retained raw message as a download (never rendered); the download is audited."""
    resp = raw_response(request, mail_id)
    record(request, who, "message.download", mail_id)
    return resp


@router.post("/{mail_id}/condemn")
async def condemn(
    request: Request, mail_id: str, who: Actor, reason: Annotated[str, Body(embed=True)] = ""
) -> dict[str, Any]:
    """Mark a message as a threat; its delivered copies are recalled as `recall.auto` says (job runs in the background)."""
    ctx = web(request)

    def mark() -> list[str]:
        with ctx.store.session() as s:
            row = s.get(MessageRow, mail_id)
            if row is None:
                raise not_found(f"message {mail_id}")
            return mark_condemned(s, row, who.username, reason, who.source) or []

    asked = await asyncio.to_thread(mark)
    from mailmoat.recall.auto import tell_threat_declined

    await tell_threat_declined(ctx.settings, ctx.store, mail_id, asked)
    mode = ctx.settings.recall.auto
    if mode == "off":
        return {"job_id": "", "state": "off", "copies": 0}
    engine = ctx.recall_engine()
    # A person's verdict is not bounded by the automatic look-back window.
    sel = [Selector(mail_id=mail_id, since="0")]
    copies = (await asyncio.to_thread(engine.preview, sel)).copies
    if copies == 0:
        return {"job_id": "", "state": "none", "copies": 0}
    job_id = await asyncio.to_thread(
        engine.plan, sel, who.username, reason or "marked as a threat", trigger=triggers.VERDICT, source=who.source,
        require_approval=(mode == "approval"),
    )
    if mode == "approval":
        return {"job_id": job_id, "state": "awaiting_approval", "copies": copies}
    ctx.spawn(f"recall:{job_id}", engine.dispatch(job_id, who.username, source=who.source))
    return {"job_id": job_id, "state": "running", "copies": copies}


@router.post("/{mail_id}/uncondemn")
async def uncondemn(
    request: Request, mail_id: str, who: Actor, reason: Annotated[str, Body(embed=True)] = ""
) -> dict[str, Any]:
    """Take back the mark of a message as a threat (its links stop condemning other mail); its
    recall stays: `recall_jobs` are those still holding its copies (restore one to put them back)."""
    from mailmoat.recall.auto import uncondemn_message

    ctx = web(request)
    try:
        jobs = await asyncio.to_thread(uncondemn_message, ctx.settings, ctx.store, mail_id, who.username, reason, who.source)
    except ValueError as exc:
        if ctx.store.get_message(mail_id) is None:
            raise not_found(f"message {mail_id}") from exc
        raise HTTPException(409, str(exc)) from exc
    row = await asyncio.to_thread(ctx.store.get_message, mail_id)
    return {"mail_id": mail_id, "status": row.status if row else "", "recall_jobs": jobs}
