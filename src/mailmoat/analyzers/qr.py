"""QR codes: present in outside mail, hidden in cid attachments, drawn with tables, text or SVG, split, in documents."""

from __future__ import annotations

from typing import Any, ClassVar

from mailmoat.analyzers.base import AnalysisContext, BaseAnalyzer
from mailmoat.model import Direction, Finding, Message, QrCode, Symbol
from mailmoat.parse.qr import LIMIT_DEFECTS, leads_somewhere, payload_urls

_EVIDENCE_PAYLOAD = 200


def where(code: QrCode) -> str:
    """Where the code was found, for people: part, cid, attachment name, PDF page, table, tiles."""
    o = code.origin
    bits: list[str] = []
    if "eml" in o:
        bits.append(f"attached message {o['eml']}")
    src = code.source
    if src == "tiles":
        bits.append(f"{o.get('layout', '')} tiles " + ", ".join(str(t) for t in o.get("tiles", [])))
    elif src == "html-table":
        bits.append(f"HTML table {o.get('table', '?')}")
    elif src == "text-blocks":
        body = {"html": "the HTML body", "html-attachment": "an HTML attachment"}.get(str(o.get("in")), "the text body")
        bits.append(f"block characters in {body}, line {o.get('line', '?')}")
    elif src == "pdf":
        how = "embedded image" if o.get("via") == "embedded-image" else "rendered page"
        bits.append(f"PDF page {o.get('page', '?')} ({how})")
    elif src == "office" and "stream" in o:
        bits.append(f"picture in the {o['stream']} stream of a binary Office document")
    elif src == "office":
        bits.append(f"Office document member {o.get('member', '?')}")
    elif src == "html-attachment":
        bits.append(f"image {o.get('index', '?')} of an HTML attachment")
    elif src == "html-svg":
        body = "an HTML attachment" if o.get("in") == "html-attachment" else "the HTML body"
        bits.append(f"<svg> drawing {o.get('index', '?')} in {body}")
    else:
        bits.append(f"{src or 'image'} {'SVG ' if o.get('format') == 'svg' else ''}image")
    if code.filename:
        bits.append(f"file {code.filename!r}")
    if code.part_path and src != "tiles":
        bits.append(f"part {code.part_path}")
    if code.content_id and src != "tiles":
        bits.append(f"cid {code.content_id}")
    return ", ".join(b for b in bits if b)


def describe(code: QrCode) -> str:
    kind = "QR code" if code.symbology in ("QRCode", "MicroQRCode", "RMQRCode") else code.symbology
    return f"{kind} {code.payload[:_EVIDENCE_PAYLOAD]!r} in {where(code)}"


def code_data(code: QrCode) -> dict[str, Any]:
    return {
        "payload": code.payload,
        "symbology": code.symbology,
        "source": code.source,
        "part_path": code.part_path,
        "content_id": code.content_id,
        "filename": code.filename,
        "origin": dict(code.origin),
        "urls": payload_urls(code.payload),
    }


def in_cid_attachment(message: Message, code: QrCode) -> bool:
    """Shown in the body by Content-ID, from a part marked as an attachment or not declared as an image."""
    source = code.source
    if source == "eml":
        # parse lists an attached message's images at the outer level; its own source is kept aside.
        source = str(code.origin.get("inner_source", ""))
        declared = str(code.origin.get("declared_type", ""))
        return source == "cid" and bool(declared) and not declared.startswith("image/")
    if not code.content_id or source not in ("cid", "inline", "attachment"):
        return False
    if source != "cid" and code.content_id not in message.cid_map:
        return False
    part = message.part(code.part_path) if code.part_path else None
    if part is None:
        return source == "cid"
    # parse counts any named part as an attachment; a named inline image shown by cid is ordinary HTML mail.
    return part.disposition == "attachment" or not part.content_type.startswith("image/")


class QrAnalyzer(BaseAnalyzer):
    name = "qr"
    symbols: ClassVar[tuple[Symbol, ...]] = (
        Symbol("QR_CODE_PRESENT", 1.5, "qr", "A QR code in mail from outside the organisation"),
        Symbol("QR_IN_CID_ATTACHMENT", 3.0, "qr", "A QR code shown in the body from a cid-referenced attachment (hides it from inline-image scanners)"),
        Symbol("QR_HTML_TABLE", 4.0, "qr", "A QR code drawn with HTML table cells instead of an image"),
        Symbol("QR_TEXT_BLOCKS", 4.0, "qr", "A QR code drawn with Unicode block characters"),
        Symbol("QR_TILED", 4.0, "qr", "A QR code split into several images shown side by side"),
        Symbol("QR_SVG", 4.0, "qr", "A QR code drawn as SVG (an attached or embedded SVG image, or <svg> in the HTML): markup to text filters, no bitmap to image scanners"),
        Symbol("QR_IN_DOCUMENT", 1.5, "qr", "A QR code inside a PDF, Office or HTML attachment"),
        Symbol("QR_IMAGE_LIMIT", 1.0, "qr", "An image could not be checked for QR codes because of size, count or time limits"),
    )

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        msg = ctx.message
        # Only codes a phone would act on: data codes (an e-invoice's fields, a parcel number)
        # are ordinary in legitimate mail and send nobody anywhere.
        codes = [c for c in msg.qr_codes if leads_somewhere(c.payload)]
        grouped: dict[str, list[QrCode]] = {}

        def add(symbol: str, code: QrCode) -> None:
            grouped.setdefault(symbol, []).append(code)

        for code in codes:
            if ctx.envelope.direction == Direction.INBOUND:
                add("QR_CODE_PRESENT", code)
            if in_cid_attachment(msg, code):
                add("QR_IN_CID_ATTACHMENT", code)
            if code.source == "html-table":
                add("QR_HTML_TABLE", code)
            elif code.source == "text-blocks":
                add("QR_TEXT_BLOCKS", code)
            elif code.source == "tiles":
                add("QR_TILED", code)
            elif code.source == "html-svg" or code.origin.get("format") == "svg":
                add("QR_SVG", code)
            elif code.source in ("pdf", "office", "html-attachment"):
                add("QR_IN_DOCUMENT", code)
        findings: list[Finding] = []
        for sym in self.symbols:
            found = grouped.get(sym.name)
            if not found:
                continue
            evidence = describe(found[0])
            if len(found) > 1:
                evidence += f" (+{len(found) - 1} more)"
            findings.append(self.finding(sym.name, evidence, {"codes": [code_data(c) for c in found[:20]]}))
        limits = [d for d in msg.defects if d.startswith(LIMIT_DEFECTS)]
        if limits:
            findings.append(self.finding("QR_IMAGE_LIMIT", limits[0][:300], {"defects": limits[:20]}))
        return findings
