"""True type versus name and declared type: blocked and warned types, double extensions, bidi tricks; hashes."""

from __future__ import annotations

import asyncio
import unicodedata
from typing import Any, ClassVar

from mailmoat.analyzers.base import AnalysisContext, BaseAnalyzer
from mailmoat.attach.files import ScannedFile
from mailmoat.attach.hits import Hits
from mailmoat.attach.scan import Expansion, scan_message
from mailmoat.model import Finding, Symbol

# characters that reorder or hide parts of a file name ("invoice\u202efdp.exe" shows as "invoiceexe.pdf")
BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad")
# what the bytes say -> the extension a blocked list would name
TRUE_TO_BLOCKED = {
    "exe": "exe", "dll": "dll", "elf": "exe", "macho": "exe", "msi": "msi", "lnk": "lnk", "iso": "iso",
    "vhd": "vhd", "vhdx": "vhdx", "one": "one", "jar": "jar", "class": "jar",
    "hta": "hta",  # a page that mshta runs with the user's rights, whatever it is named
}
# what a lure pretends to be in front of the real extension
DECOY_EXTS = frozenset({
    "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "rtf", "txt", "csv", "jpg", "jpeg", "png", "gif",
    "bmp", "tif", "tiff", "zip", "rar", "htm", "html", "mp3", "mp4", "wav", "odt", "ods", "eml", "msg", "xml",
})
_FAMILIES: dict[str, tuple[str, ...]] = {
    "pe": ("exe", "dll", "scr", "com", "pif", "cpl", "sys", "ocx", "drv", "efi"),
    "image": ("png", "jpg", "jpeg", "jpe", "gif", "bmp", "tif", "tiff", "webp", "ico", "cur", "avif", "heic"),
    "pdf": ("pdf",),
    "office": ("doc", "dot", "docx", "docm", "dotm", "xls", "xlt", "xlsx", "xlsm", "xlsb", "ppt", "pptx", "pptm", "rtf", "ole", "office-encrypted"),
    "archive": ("zip", "7z", "rar", "tar", "gz", "tgz", "bz2", "xz", "cab", "ace", "arj"),
    "disk": ("iso", "img", "vhd", "vhdx"),
    "markup": ("html", "htm", "svg", "xhtml", "shtml"),
    "text": ("txt", "csv", "log", "eml", "xml", "json", "md", "asc", "vcf"),
    "script": ("js", "jse", "vbs", "vbe", "wsf", "wsh", "ps1", "bat", "cmd", "hta", "sh", "py", "reg"),
    "calendar": ("ics", "vcs"),
}
FAMILY = {ext: fam for fam, exts in _FAMILIES.items() for ext in exts}
_COMPATIBLE = {frozenset(p) for p in (("text", "markup"), ("text", "script"), ("markup", "script"), ("archive", "office"), ("text", "calendar"))}
_MIME_FAMILY = {
    "application/pdf": "pdf",
    "application/zip": "archive", "application/x-zip-compressed": "archive", "application/x-7z-compressed": "archive",
    "application/x-rar-compressed": "archive", "application/vnd.rar": "archive", "application/gzip": "archive",
    "application/msword": "office", "application/vnd.ms-excel": "office", "application/vnd.ms-powerpoint": "office",
    "text/html": "markup", "image/svg+xml": "markup", "text/calendar": "calendar", "application/x-msdownload": "pe", "application/x-dosexec": "pe",
}
# ppdeep is pure Python (about 5 MB/s): fuzzy-hash what threat lists share (not pictures), within a budget
SSDEEP_MAX_FILE = 4 * 1024 * 1024
SSDEEP_MAX_TOTAL = 8 * 1024 * 1024
SSDEEP_SKIP = frozenset({"png", "jpg", "gif", "bmp", "tif", "webp", "ico"})


def name_parts(name: str) -> tuple[str, list[str], set[str]]:
    """(cleaned base name, its extensions lower-cased, bidi/invisible characters found)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    tricks = {c for c in base if c in BIDI or c in INVISIBLE}
    clean = "".join(c for c in unicodedata.normalize("NFC", base) if c not in BIDI and c not in INVISIBLE)
    clean = clean.rstrip(" .\t")  # Windows drops trailing dots and spaces: "a.exe." runs as a.exe
    exts = [e.strip().lower() for e in clean.split(".")[1:]] if "." in clean else []
    return clean, [e for e in exts if e], tricks


def family_of_mime(mime: str) -> str:
    if mime.startswith("image/") and mime != "image/svg+xml":
        return "image"
    return _MIME_FAMILY.get(mime, "")


class FileTypeAnalyzer(BaseAnalyzer):
    name = "filetypes"
    symbols: ClassVar[tuple[Symbol, ...]] = (
        Symbol("ATTACH_BLOCKED_TYPE", 10.0, "attachment", "An attachment or archive member of a blocked (executable or script) type"),
        Symbol("ATTACH_DOUBLE_EXT", 5.0, "attachment", "A file name hides an executable extension behind a document one (invoice.pdf.exe)"),
        Symbol("ATTACH_BIDI_NAME", 8.0, "attachment", "A file name uses right-to-left override or invisible characters to disguise its extension"),
        Symbol("ATTACH_TYPE_MISMATCH", 3.0, "attachment", "The file's bytes are not the type its name or Content-Type declares"),
        Symbol("ATTACH_WARNED_TYPE", 1.0, "attachment", "An attachment of a type that often carries threats (macro documents, HTML, archives)"),
        Symbol("ATTACHMENT_HASHES", 0.0, "attachment", "sha256 and ssdeep of every attachment and unpacked member (for recall and threat lists)"),
    )

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        exp = await scan_message(ctx.message, ctx.settings.attachments, ctx.deadline)
        if not exp.files:
            return []
        hits = self.check(exp, ctx)
        out = hits.findings(self.finding)
        hashes = await asyncio.to_thread(self.hashes, exp)
        if hashes:
            out.append(self.finding("ATTACHMENT_HASHES", f"{len(hashes)} files hashed", {"files": hashes}))
        return out

    def check(self, exp: Expansion, ctx: AnalysisContext) -> Hits:
        cfg = ctx.settings.attachments
        blocked = {e.lower().lstrip(".") for e in cfg.blocked_exts}
        warned = {e.lower().lstrip(".") for e in cfg.warned_exts}
        hits = Hits()
        for f in exp.files:
            self._check_file(f, blocked, warned, hits)
        return hits

    def _check_file(self, f: ScannedFile, blocked: set[str], warned: set[str], hits: Hits) -> None:
        clean, exts, tricks = name_parts(f.name)
        last = exts[-1] if exts else ""
        loc = f.location
        info: dict[str, Any] = {"name": f.name, "true_type": f.ext, "depth": f.depth, "part": f.part_path}
        is_blocked = False
        if last in blocked:
            hits.add("ATTACH_BLOCKED_TYPE", loc, f"blocked extension .{last}", **info)
            is_blocked = True
        elif f.ext in TRUE_TO_BLOCKED and TRUE_TO_BLOCKED[f.ext] in blocked:
            hits.add("ATTACH_BLOCKED_TYPE", loc, f"content is {f.ext} (named {clean!r})", **info)
            is_blocked = True
        if len(exts) >= 2 and exts[-2] in DECOY_EXTS and (last in blocked or FAMILY.get(last) in ("pe", "script")):
            hits.add("ATTACH_DOUBLE_EXT", loc, f"{clean!r} ends in .{exts[-2]}.{last}", **info)
        elif last and ("   ." in clean or "\u3000." in clean) and (last in blocked or FAMILY.get(last) in ("pe", "script")):
            hits.add("ATTACH_DOUBLE_EXT", loc, f"spaces push .{last} out of sight in {clean!r}", **info)
        if tricks:
            shown = f.name.encode("unicode_escape").decode("ascii")
            hits.add("ATTACH_BIDI_NAME", loc, f"name contains {', '.join(sorted(f'U+{ord(c):04X}' for c in tricks))}: {shown}", **info)
        true_fam = FAMILY.get(f.ext, "")
        if f.ext in ("elf", "macho"):
            true_fam = "pe"
        name_fam = FAMILY.get(last, "")
        if true_fam and name_fam and true_fam != name_fam and frozenset((true_fam, name_fam)) not in _COMPATIBLE:
            hits.add("ATTACH_TYPE_MISMATCH", loc, f"named .{last} but content is {f.ext}", **info)
        elif f.depth == 0 and true_fam and f.declared_type:
            decl_fam = family_of_mime(f.declared_type)
            if decl_fam and decl_fam != true_fam and frozenset((true_fam, decl_fam)) not in _COMPATIBLE:
                hits.add("ATTACH_TYPE_MISMATCH", loc, f"declared {f.declared_type} but content is {f.ext}", **info)
        if not is_blocked and (last in warned or f.ext in warned):
            hits.add("ATTACH_WARNED_TYPE", loc, f".{last if last in warned else f.ext}", **info)

    @staticmethod
    def hashes(exp: Expansion) -> list[dict[str, Any]]:
        import ppdeep

        out: list[dict[str, Any]] = []
        budget = SSDEEP_MAX_TOTAL
        for f in exp.files[:200]:
            if not f.data:  # unread or empty (parse drops payloads over its limits): no useful hash
                continue
            fuzzy = ""
            if 64 <= f.size <= min(SSDEEP_MAX_FILE, budget) and f.ext not in SSDEEP_SKIP:
                fuzzy = ppdeep.hash(f.data)
                budget -= f.size
            out.append({
                "location": f.location, "name": f.name, "part": f.part_path, "depth": f.depth,
                "size": f.size, "true_type": f.mime, "sha256": f.sha256, "ssdeep": fuzzy,
            })
        return out
