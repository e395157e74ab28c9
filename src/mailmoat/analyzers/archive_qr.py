"""QR codes inside archives: an image, SVG, PDF or Office file packed in a zip/7z/rar/tar that shows a code."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from mailmoat.analyzers.base import AnalysisContext, BaseAnalyzer
from mailmoat.analyzers.qr import code_data
from mailmoat.attach.archives import EXPANDABLE
from mailmoat.attach.files import ScannedFile
from mailmoat.attach.scan import scan_message
from mailmoat.config import QrSettings
from mailmoat.model import Finding, Image, Message, Part, QrCode, Symbol
from mailmoat.parse.filetype import RASTER_EXTS
from mailmoat.parse.qr import extract_qr, leads_somewhere
from mailmoat.parse.qr_svg import looks_like_svg

# What can show a code once unpacked: the parser's QR sources read these from a one-part message
# (pictures: what the QR decoder opens).
_DOCUMENT_EXTS = frozenset({"pdf", "docx", "docm", "xlsx", "xlsm", "pptx", "pptm", "odt", "ods", "odp", "html", "htm"})
MAX_MEMBERS = 20  # members decoded per message: the QR time budget bounds the rest


def _in_archive(f: ScannedFile) -> bool:
    return f.depth > 0 and f.container in EXPANDABLE


def _as_message(f: ScannedFile, data: bytes) -> Message | None:
    """One archive member as a message whose only attachment it is (None when it cannot show a code)."""
    image = f.ext in RASTER_EXTS or looks_like_svg(data)
    if not (image or f.ext in _DOCUMENT_EXTS):
        return None
    part = Part(path=f.part_path, content_type=f.mime or "application/octet-stream", filename=f.name,
                disposition="attachment", payload=data, size=len(data), true_type=f.mime, true_ext=f.ext, is_attachment=True)
    msg = Message(parts=[part])
    if image:
        msg.images.append(Image(data=data, source="attachment", part_path=f.part_path, filename=f.name))
    return msg


def decode_members(files: list[ScannedFile], settings: QrSettings) -> list[tuple[ScannedFile, QrCode]]:
    """Codes shown by archive members (blocking: run it in a thread)."""
    found: list[tuple[ScannedFile, QrCode]] = []
    decoded = 0
    for f in files:
        msg = _as_message(f, f.data) if f.data and _in_archive(f) else None
        if msg is None:
            continue
        extract_qr(msg, settings)
        found += [(f, code) for code in msg.qr_codes if leads_somewhere(code.payload)]
        decoded += 1
        if decoded >= MAX_MEMBERS:
            break
    return found


class ArchiveQrAnalyzer(BaseAnalyzer):
    name = "archive_qr"
    symbols: ClassVar[tuple[Symbol, ...]] = (
        Symbol("QR_IN_ARCHIVE", 4.0, "qr", "A QR code in an image or document packed inside an archive (out of reach of body and attachment image scanners)"),
    )

    def enabled(self) -> bool:
        return self.env.settings.qr.enabled

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        exp = await scan_message(ctx.message, ctx.settings.attachments, ctx.deadline)
        if not any(_in_archive(f) for f in exp.files):
            return []
        found = await asyncio.to_thread(decode_members, exp.files, ctx.settings.qr)
        if not found:
            return []
        codes: list[dict[str, Any]] = [{**code_data(code), "location": f.location} for f, code in found]
        first_file, first = found[0]
        evidence = f"QR code {first.payload[:200]!r} in {first_file.location}"
        if len(found) > 1:
            evidence += f" (+{len(found) - 1} more)"
        return [self.finding("QR_IN_ARCHIVE", evidence, {"codes": codes})]
