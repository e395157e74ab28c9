"""Office documents (attached or unpacked): VBA/XLM macros, auto-exec, DDE, remote templates, embedded objects."""

from __future__ import annotations

from typing import ClassVar

from mailmoat.analyzers.base import AnalysisContext, BaseAnalyzer
from mailmoat.attach.hits import Hits
from mailmoat.attach.office import OfficeReport
from mailmoat.attach.scan import scan_message
from mailmoat.model import Finding, Symbol
from mailmoat.parse import filetype


class OfficeAnalyzer(BaseAnalyzer):
    name = "office"
    symbols: ClassVar[tuple[Symbol, ...]] = (
        Symbol("OFFICE_MACRO", 3.0, "attachment", "An Office document contains VBA macros"),
        Symbol("OFFICE_MACRO_AUTOEXEC", 7.0, "attachment", "A macro runs by itself when the document opens (AutoOpen, Document_Open, Workbook_Open ...)"),
        Symbol("OFFICE_MACRO_SUSPICIOUS", 5.0, "attachment", "Macro code that writes files or runs programs (mraptor: auto-exec plus write/execute)"),
        Symbol("OFFICE_XLM_MACRO", 5.0, "attachment", "Excel 4.0 (XLM) macro sheets"),
        Symbol("OFFICE_VBA_STOMPING", 5.0, "attachment", "VBA source and compiled p-code disagree (VBA stomping)"),
        Symbol("OFFICE_DDE", 8.0, "attachment", "A DDE field or formula that launches another program"),
        Symbol("OFFICE_REMOTE_TEMPLATE", 10.0, "attachment", "The document loads a template or object from a remote location when opened (template injection)"),
        Symbol("OFFICE_EMBEDDED_OBJECT", 2.0, "attachment", "Embedded OLE objects or packages"),
        Symbol("OFFICE_EQUATION_OBJECT", 8.0, "attachment", "An Equation Editor object (exploited by CVE-2017-11882 and relatives)"),
        Symbol("OFFICE_ENCRYPTED", 2.0, "attachment", "A password-protected Office document (content hidden from scanning)"),
        Symbol(
            "OFFICE_TOO_MANY_STREAMS",
            3.0,
            "attachment",
            "A binary Office file whose directory holds more entries than the limit: not inspected (documents hold tens)",
        ),
    )

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        exp = await scan_message(ctx.message, ctx.settings.attachments, ctx.deadline)
        hits = Hits()
        for f in exp.files:
            rep = f.reports.get("office")
            if isinstance(rep, OfficeReport):
                self.report(f.location, rep, hits)
        return hits.findings(self.finding)

    @staticmethod
    def report(loc: str, rep: OfficeReport, hits: Hits) -> None:
        if rep.macros:
            hits.add("OFFICE_MACRO", loc, f"modules: {', '.join(rep.macro_modules[:5])}", modules=rep.macro_modules[:20],
                     suspicious=rep.suspicious[:20], iocs=rep.iocs[:20])
        if rep.autoexec:
            hits.add("OFFICE_MACRO_AUTOEXEC", loc, f"triggers: {', '.join(rep.autoexec[:5])}", triggers=rep.autoexec)
        if rep.mraptor_suspicious:
            hits.add("OFFICE_MACRO_SUSPICIOUS", loc, f"mraptor flags {rep.mraptor}: " + "; ".join(rep.suspicious[:3]),
                     flags=rep.mraptor, keywords=rep.suspicious[:20])
        if rep.xlm:
            hits.add("OFFICE_XLM_MACRO", loc, "Excel 4.0 macro sheet")
        if rep.stomped:
            hits.add("OFFICE_VBA_STOMPING", loc, "p-code differs from source")
        if rep.dde:
            hits.add("OFFICE_DDE", loc, rep.dde[0][:200], fields=rep.dde[:10])
        if rep.remote:
            rtype, target = rep.remote[0]
            hits.add("OFFICE_REMOTE_TEMPLATE", loc, f"{rtype} -> {target[:200]}", targets=[list(r) for r in rep.remote[:10]])
        if rep.embedded:
            hits.add("OFFICE_EMBEDDED_OBJECT", loc, ", ".join(rep.embedded[:5]), objects=rep.embedded[:20])
        if rep.equation:
            hits.add("OFFICE_EQUATION_OBJECT", loc, "Equation Editor object")
        if rep.encrypted:
            hits.add("OFFICE_ENCRYPTED", loc, "encrypted package")
        if rep.oversized:
            hits.add("OFFICE_TOO_MANY_STREAMS", loc, f"more than {filetype.MAX_OLE_ENTRIES} directory entries; macros, DDE and objects not inspected")
