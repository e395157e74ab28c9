"""HTML and SVG attachments: smuggling, credential forms, scripts, redirects to remote sites."""

from __future__ import annotations

from typing import ClassVar

from mailmoat.analyzers.base import AnalysisContext, BaseAnalyzer
from mailmoat.attach.hits import Hits
from mailmoat.attach.htmlsvg import HtmlReport
from mailmoat.attach.scan import scan_message
from mailmoat.model import Finding, Symbol


class HtmlAttachmentAnalyzer(BaseAnalyzer):
    name = "htmlattach"
    symbols: ClassVar[tuple[Symbol, ...]] = (
        Symbol("HTML_ATTACH_SMUGGLING", 10.0, "attachment", "An HTML/SVG attachment assembles a file in JavaScript and drops it as a download (HTML smuggling)"),
        Symbol("HTML_ATTACH_CREDENTIAL_FORM", 6.0, "attachment", "An HTML/SVG attachment asks for a password (local phishing page)"),
        Symbol("HTML_ATTACH_SCRIPT", 2.0, "attachment", "An HTML attachment runs scripts"),
        Symbol("SVG_ATTACH_SCRIPT", 5.0, "attachment", "An SVG image carries scripts or embedded HTML"),
        Symbol("HTML_ATTACH_REDIRECT", 4.0, "attachment", "An HTML/SVG attachment sends the reader to a remote site (meta refresh or script)"),
        Symbol("HTML_ATTACH_OBFUSCATION", 2.0, "attachment", "Obfuscated script in an HTML/SVG attachment (eval, unescape, long escape runs)"),
        Symbol(
            "HTML_ATTACH_PASTE_AND_RUN", 8.0, "attachment",
            "An HTML/SVG attachment copies a command line (PowerShell, mshta ...) to the clipboard for the reader to paste and run (ClickFix)",
        ),
    )

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        exp = await scan_message(ctx.message, ctx.settings.attachments, ctx.deadline)
        hits = Hits()
        for f in exp.files:
            rep = f.reports.get("html")
            if isinstance(rep, HtmlReport):
                self.report(f.location, rep, hits)
        return hits.findings(self.finding)

    @staticmethod
    def report(loc: str, rep: HtmlReport, hits: Hits) -> None:
        if rep.smuggling:
            hits.add("HTML_ATTACH_SMUGGLING", loc, rep.smuggling[0], reasons=rep.smuggling, payloads=[n for n, _ in rep.children])
        if rep.password_forms:
            action = rep.password_forms[0] or "(sent by script)"
            hits.add("HTML_ATTACH_CREDENTIAL_FORM", loc, f"password form -> {action[:200]}", actions=rep.password_forms[:10])
        active = rep.scripts + rep.event_handlers + rep.javascript_urls
        if rep.kind == "svg" and (active or rep.foreign_object):
            hits.add("SVG_ATTACH_SCRIPT", loc, f"{rep.scripts} scripts, {rep.event_handlers} handlers" + (", foreignObject" if rep.foreign_object else ""))
        elif active:
            hits.add("HTML_ATTACH_SCRIPT", loc, f"{rep.scripts} scripts, {rep.event_handlers} handlers")
        targets = rep.meta_refresh + rep.js_redirects
        if targets:
            hits.add("HTML_ATTACH_REDIRECT", loc, targets[0][:200], targets=targets[:10])
        if rep.paste_and_run:
            hits.add("HTML_ATTACH_PASTE_AND_RUN", loc, rep.paste_and_run[0])
        if rep.obfuscation:
            hits.add("HTML_ATTACH_OBFUSCATION", loc, ", ".join(rep.obfuscation[:3]), patterns=rep.obfuscation)
