"""PDF attachments (and PDFs unpacked from archives): JavaScript, auto actions, Launch, embedded files, forms, passwords."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from mailmoat.analyzers.base import AnalysisContext, BaseAnalyzer
from mailmoat.attach.hits import Hits
from mailmoat.attach.pdf import PdfReport
from mailmoat.attach.scan import scan_message
from mailmoat.model import Finding, Symbol


class PdfAnalyzer(BaseAnalyzer):
    name = "pdf"
    symbols: ClassVar[tuple[Symbol, ...]] = (
        Symbol("PDF_JAVASCRIPT", 5.0, "attachment", "A PDF contains JavaScript"),
        Symbol("PDF_AUTO_ACTION", 5.0, "attachment", "A PDF runs JavaScript by itself when opened (OpenAction or AA)"),
        Symbol("PDF_LAUNCH", 8.0, "attachment", "A PDF Launch action starts a program or opens a file"),
        Symbol("PDF_EMBEDDED_FILE", 3.0, "attachment", "A PDF carries embedded files"),
        Symbol("PDF_FORM_SUBMIT", 4.0, "attachment", "A PDF form submits its fields to a remote address"),
        Symbol("PDF_REMOTE_GOTO", 2.0, "attachment", "A PDF action opens another remote document"),
        Symbol("PDF_XFA", 1.0, "attachment", "A PDF with an XFA form (scriptable)"),
        Symbol("PDF_LINK_LURE", 2.0, "attachment", "A small PDF whose content is essentially a link to a web site"),
        Symbol("PDF_LOCKED", 1.0, "attachment", "A PDF that opens only with a password the message does not give (content hidden from scanning)"),
        # As weak as an archive of documents opened the same way: partners send locked quotes and
        # payslips with the password beside them. What the PDF says and links to is what counts.
        Symbol("PDF_PASSWORD_IN_BODY", 1.5, "attachment", "A PDF locked with a password that the message itself gives (hidden from scanners, not from the reader)"),
    )

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        exp = await scan_message(ctx.message, ctx.settings.attachments, ctx.deadline)
        hits = Hits()
        for f in exp.files:
            rep = f.reports.get("pdf")
            if isinstance(rep, PdfReport):
                links = rep.uris
                if f.depth == 0 and rep.encrypted:
                    # An encrypted PDF's strings are ciphertext to the structure scan; parse read its
                    # links with pdfium (and the password the body gave, when it was locked).
                    links = [u.url for u in ctx.message.urls if u.source == "pdf" and u.part_path == f.part_path] or links
                self.report(f.location, f.size, rep, hits, links)
        for doc in ctx.message.documents:
            # A lock keeps out scanners, not the reader: a password sent beside the file opens it.
            name = doc.label
            if doc.locked and doc.password:
                hits.add("PDF_PASSWORD_IN_BODY", name, f"opened with {doc.password!r} from the message body")
            elif doc.locked:
                hits.add("PDF_LOCKED", name, "needs a password; none in the message body opens it")
        return hits.findings(self.finding)

    @staticmethod
    def report(loc: str, size: int, rep: PdfReport, hits: Hits, links: list[str] | None = None) -> None:
        if rep.javascript:
            hits.add("PDF_JAVASCRIPT", loc, rep.javascript[0][:200], snippets=[s[:300] for s in rep.javascript[:5]])
        if rep.auto_js:
            hits.add("PDF_AUTO_ACTION", loc, "JavaScript on open" if rep.open_action else "JavaScript in an additional action")
        if rep.launch:
            hits.add("PDF_LAUNCH", loc, rep.launch[0][:200], targets=rep.launch[:10])
        if rep.embedded:
            hits.add("PDF_EMBEDDED_FILE", loc, ", ".join(rep.embedded[:5]), names=rep.embedded[:20])
        remote_submit = [t for t in rep.submit if urlsplit(t).scheme.lower() in ("http", "https", "mailto", "ftp")]
        if remote_submit:
            hits.add("PDF_FORM_SUBMIT", loc, remote_submit[0][:200], targets=remote_submit[:10])
        if rep.remote_goto:
            hits.add("PDF_REMOTE_GOTO", loc, rep.remote_goto[0][:200])
        if rep.xfa:
            hits.add("PDF_XFA", loc, "XFA form")
        web = [u for u in (rep.uris if links is None else links) if urlsplit(u).scheme.lower() in ("http", "https")]
        if web and size < 200_000 and rep.objects <= 40 and len({urlsplit(u).netloc for u in web}) <= 2:
            hits.add("PDF_LINK_LURE", loc, web[0][:200], urls=web[:10])
