"""Archives: bombs, limits, encrypted archives (and those opened with a password from the body), nesting."""

from __future__ import annotations

from typing import ClassVar

from mailmoat.analyzers.base import AnalysisContext, BaseAnalyzer
from mailmoat.attach.archives import EXPANDABLE
from mailmoat.attach.files import ScannedFile
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


# What an encrypted archive opened with the message's password may hold and still be the usual
# way partners and payroll services send confidential files: formats that cannot carry macros or
# programs. Whatever else is inside (a PDF's JavaScript, say) the other analyzers score themselves.
# A text file holding a PGP block is typed "asc" by its bytes: still plain text.
PLAIN_DOCUMENTS = frozenset(
    {"pdf", "docx", "xlsx", "pptx", "odt", "ods", "odp", "txt", "asc", "csv", "png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp"}
)
# ARCHIVE_PASSWORD_IN_BODY when every file inside was read and is a plain document.
DOCUMENTS_ONLY_SCORE = 1.5


def _plain_document(f: ScannedFile) -> bool:
    """Read, a document by its bytes and by its name: a script is text by its bytes (run.js, pay.bat)."""
    name_ext = f.name.rpartition(".")[2].lower() if "." in f.name else ""
    return f.data is not None and f.ext in PLAIN_DOCUMENTS and name_ext in PLAIN_DOCUMENTS


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
            if not symbol:
                continue
            data = {k: v for k, v in ev.data.items() if k != "location"}
            detail, score = ev.detail, None
            if ev.kind == "decrypted":
                score = self._symbols[symbol].score
                inside = [f for f in exp.files if f.decrypted and f.location.startswith(ev.location + " > ")]
                # The trick is to hide a program from scanners; opened here and holding only
                # documents, it is how confidential files are sent, and a weaker sign.
                if inside and all(_plain_document(f) for f in inside):
                    detail += f"; only documents inside ({', '.join(sorted({f.ext for f in inside}))})"
                    score = DOCUMENTS_ONLY_SCORE
            hits.add(symbol, ev.location, detail, score, **data)
        for f in exp.files:
            if f.depth > 0 and f.ext in EXPANDABLE and f.container in EXPANDABLE:
                hits.add("ARCHIVE_NESTED", f.location, f"{f.ext} inside {f.container}")
        return hits.findings(self.finding)
