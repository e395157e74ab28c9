"""Archives: bombs, limits, encrypted archives (and those opened with a password from the body), nesting."""

from __future__ import annotations

from typing import ClassVar

from mailmoat.analyzers.base import AnalysisContext, BaseAnalyzer
from mailmoat.attach.archives import EXPANDABLE
from mailmoat.attach.hits import Hits
from mailmoat.attach.scan import scan_message
from mailmoat.model import Finding, Symbol

_EVENT_SYMBOL = {
    "bomb": "ARCHIVE_BOMB",
    "too_deep": "ARCHIVE_TOO_DEEP",
    "too_many": "ARCHIVE_LIMIT",
    "incomplete": "ARCHIVE_LIMIT",
    "encrypted": "ARCHIVE_ENCRYPTED",
    "decrypted": "ARCHIVE_PASSWORD_IN_BODY",
    "corrupt": "ARCHIVE_CORRUPT",
    "unsupported": "ARCHIVE_UNSUPPORTED",
}


class ArchiveAnalyzer(BaseAnalyzer):
    name = "archives"
    symbols: ClassVar[tuple[Symbol, ...]] = (
        Symbol("ARCHIVE_BOMB", 10.0, "attachment", "An archive expands past the size or compression-ratio limits (decompression bomb)"),
        Symbol("ARCHIVE_TOO_DEEP", 4.0, "attachment", "Archives nested deeper than the configured depth"),
        Symbol("ARCHIVE_LIMIT", 3.0, "attachment", "Unpacking stopped at the member-count or time limit; the rest was not inspected"),
        Symbol("ARCHIVE_ENCRYPTED", 4.0, "attachment", "An encrypted archive that could not be opened (content hidden from scanning)"),
        Symbol("ARCHIVE_PASSWORD_IN_BODY", 4.0, "attachment", "An encrypted archive whose password is given in the message body (classic malware delivery)"),
        Symbol("ARCHIVE_CORRUPT", 1.0, "attachment", "An archive that is damaged or malformed"),
        Symbol("ARCHIVE_UNSUPPORTED", 1.0, "attachment", "An archive member that cannot be unpacked here (e.g. RAR compression without an unrar backend)"),
        Symbol("ARCHIVE_NESTED", 1.0, "attachment", "An archive inside an archive"),
    )

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        exp = await scan_message(ctx.message, ctx.settings.attachments, ctx.deadline)
        hits = Hits()
        for ev in exp.events:
            symbol = _EVENT_SYMBOL.get(ev.kind)
            if symbol:
                hits.add(symbol, ev.location, ev.detail, **{k: v for k, v in ev.data.items() if k != "location"})
        for f in exp.files:
            if f.depth > 0 and f.ext in EXPANDABLE and f.container in EXPANDABLE:
                hits.add("ARCHIVE_NESTED", f.location, f"{f.ext} inside {f.container}")
        return hits.findings(self.finding)
