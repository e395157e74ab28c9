"""Office documents (OOXML, OLE, RTF): VBA/XLM macros, auto-exec, DDE, remote templates, embedded objects."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from html import unescape
from typing import Any

from mailmoat.parse.doctext import MAX_XML, ZIP_ERRORS, ooxml_relationships, read_member
from mailmoat.parse.filetype import OLE2_MAGIC, ole_too_big

log = logging.getLogger(__name__)


def _quiet_import() -> None:
    """Import oletools once with its pyparsing deprecation warnings silenced (they are not ours to fix)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from oletools import mraptor, msodde, oleobj, olevba, rtfobj  # noqa: F401

OOXML_EXTS = frozenset({"docx", "docm", "xlsx", "xlsm", "xlsb", "pptx", "pptm"})
OLE_EXTS = frozenset({"doc", "xls", "ppt", "ole", "msg"})
MAX_OOXML_TOTAL = 100 * 1024 * 1024  # declared expanded size of a document we hand to oletools
EQUATION_CLSIDS = frozenset({"0002CE02-0000-0000-C000-000000000046", "0002CE03-0000-0000-C000-000000000046"})
MAX_VBA_PROJECT = 20 * 1024 * 1024  # a vbaProject.bin read on its own when olevba cannot open its package
_INSTR_RE = re.compile(rb"<w:instrText\b[^>]*>([^<]*)</w:instrText>|\bw:instr\s*=\s*\"([^\"]*)\"")
_DDE_RE = re.compile(r"\bDDE(?:AUTO)?\b", re.IGNORECASE)
_CSV_DDE_RE = re.compile(rb"""(?m)^[^\n]{0,200}?[=+\-@]\s*[\w.]{1,40}\s*\|\s*['"]""")


@dataclass
class OfficeReport:
    kind: str
    macros: bool = False
    macro_modules: list[str] = field(default_factory=list)
    autoexec: list[str] = field(default_factory=list)  # trigger keywords (AutoOpen, Document_Open ...)
    suspicious: list[str] = field(default_factory=list)  # "Shell: may run an executable file"
    iocs: list[str] = field(default_factory=list)
    mraptor: str = ""  # flags "A", "W", "X"
    mraptor_suspicious: bool = False
    xlm: bool = False
    stomped: bool = False
    dde: list[str] = field(default_factory=list)
    remote: list[tuple[str, str]] = field(default_factory=list)  # (relationship type, target) fetched on open
    hyperlinks: list[str] = field(default_factory=list)
    embedded: list[str] = field(default_factory=list)  # descriptions of embedded objects
    equation: bool = False
    encrypted: bool = False
    oversized: bool = False  # a compound file of more than MAX_OLE_ENTRIES directory entries, not read
    errors: list[str] = field(default_factory=list)
    children: list[tuple[str, bytes]] = field(default_factory=list)  # embedded payloads to scan in turn


def _ooxml_safe(zf: zipfile.ZipFile) -> bool:
    # Python's zipfile stops at the declared size, so the central directory bounds what oletools can read.
    total = 0
    for i in zf.infolist():
        total += i.file_size
        if total > MAX_OOXML_TOTAL:
            return False
    return True


def _ooxml(data: bytes, report: OfficeReport) -> None:
    report.remote, report.hyperlinks = ooxml_relationships(data)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except ZIP_ERRORS as exc:
        report.errors.append(f"zip: {exc}")
        return
    with zf:
        for info in zf.infolist()[:2000]:
            n = info.filename.lower()
            if info.file_size > MAX_XML and not n.startswith(("word/embeddings/", "xl/embeddings/", "ppt/embeddings/")):
                continue
            try:
                if n.endswith(".xml") and (n.startswith("word/") or n.startswith("xl/externallinks/")):
                    xml = zf.read(info)
                    if n.startswith("xl/externallinks/") and b"<ddeLink" in xml:
                        m = re.search(rb'ddeService="([^"]*)"[^>]*ddeTopic="([^"]*)"', xml)
                        report.dde.append(" ".join(x.decode("utf-8", "replace") for x in m.groups()) if m else "ddeLink")
                    elif n.startswith("word/"):
                        instr = b" ".join((m.group(1) or m.group(2) or b"") for m in _INSTR_RE.finditer(xml))
                        text = unescape(instr.decode("utf-8", "replace"))
                        if _DDE_RE.search(text):
                            report.dde.append(text.strip()[:300])
                elif "/embeddings/" in n and info.file_size <= 50 * 1024 * 1024:
                    blob = zf.read(info)
                    report.embedded.append(info.filename)
                    _embedded_blob(info.filename.rsplit("/", 1)[-1], blob, report)
            except ZIP_ERRORS as exc:
                report.errors.append(f"{info.filename}: {exc}")
        if not _ooxml_safe(zf):
            report.errors.append("declared contents too large for macro analysis")
            return
    _vba(data, report)


def _embedded_blob(name: str, blob: bytes, report: OfficeReport) -> None:
    """An embedded object: an OLE package gives its file; anything else is scanned as it is."""
    if blob.startswith(OLE2_MAGIC[:4]) and _ole_objects(blob, report):
        return
    report.children.append((name, blob))


def _ole_objects(blob: bytes, report: OfficeReport) -> bool:
    """Packages and equation objects inside an OLE container; True when a package was extracted."""
    import olefile
    from oletools import oleobj

    found = False
    if ole_too_big(blob):
        report.oversized = True
        return False
    try:
        ole = olefile.OleFileIO(blob)
    except Exception as exc:  # olefile raises many types on damaged input
        report.errors.append(f"ole: {exc}")
        return False
    try:
        if (ole.root is not None and (ole.root.clsid or "").upper() in EQUATION_CLSIDS):
            report.equation = True
        for entry in ole.listdir(streams=True, storages=False)[:500]:
            leaf = entry[-1].lower()
            if leaf in ("\x01equation native", "equation native"):
                report.equation = True
            if leaf == "\x01ole10native":
                try:
                    size = ole.get_size(entry)
                    if size > 50 * 1024 * 1024:
                        continue
                    native = oleobj.OleNativeStream(ole.openstream(entry).read(), package=False)
                except Exception as exc:  # damaged package streams are common in malware
                    report.errors.append(f"ole package: {exc}")
                    continue
                fname = str(native.filename or "package.bin")
                report.embedded.append(f"package {fname}")
                if isinstance(native.data, bytes | bytearray):
                    report.children.append((fname, bytes(native.data)))
                    found = True
        for sid in range(len(ole.direntries)):
            d = ole.direntries[sid]
            if d is not None and (d.clsid or "").upper() in EQUATION_CLSIDS:
                report.equation = True
    finally:
        ole.close()
    return found


def _ole(data: bytes, report: OfficeReport) -> None:
    import olefile
    from oletools import msodde

    if ole_too_big(data):
        # olefile, msodde and olevba would each read every entry: seconds of work on a few MB
        report.oversized = True
        return
    try:
        ole = olefile.OleFileIO(data)
    except Exception as exc:  # olefile raises many types on damaged input
        report.errors.append(f"ole: {exc}")
        return
    try:
        names = ["/".join(e) for e in ole.listdir(streams=True, storages=False)]
        report.encrypted = any(n.lower() == "encryptedpackage" for n in names)
        if report.kind == "doc":
            try:
                text = msodde.process_doc(ole)
                for line in str(text).splitlines():
                    if _DDE_RE.search(line):
                        report.dde.append(line.strip()[:300])
            except Exception as exc:  # msodde on damaged streams
                report.errors.append(f"dde: {exc}")
    finally:
        ole.close()
    if any("objectpool" in n.lower() or "ole10native" in n.lower() or "equation" in n.lower() for n in names):
        _ole_objects(data, report)
    _vba(data, report)


# rtfobj reports what an \objdata destination holds, and walks every control word to find one
# (about 1 µs each: 1.8 s for an 8 MB file). A control word cannot be split or escaped, so a file
# without these letters has no object for it to find.
_OBJDATA = re.compile(rb"objdata", re.IGNORECASE)


def _rtf(data: bytes, report: OfficeReport) -> None:
    if _OBJDATA.search(data):
        _rtf_objects(data, report)
    if re.search(rb"\\field\b[^}]{0,200}\\fldinst[^}]{0,50}DDE", data[:4_000_000], re.IGNORECASE):
        report.dde.append("DDE field in RTF")


def _rtf_objects(data: bytes, report: OfficeReport) -> None:
    from oletools import rtfobj

    try:
        parser = rtfobj.RtfObjParser(data)
        parser.parse()
    except Exception as exc:  # rtfobj on hostile RTF
        report.errors.append(f"rtf: {exc}")
        return
    for obj in parser.objects[:100]:
        clsid = str(obj.clsid or "").upper()
        cls = obj.class_name.decode("latin-1", "replace") if isinstance(obj.class_name, bytes) else str(obj.class_name or "")
        if clsid in EQUATION_CLSIDS or cls.lower().startswith("equation"):
            report.equation = True
        if obj.is_package and obj.olepkgdata:
            fname = str(obj.filename or "package.bin")
            report.embedded.append(f"package {fname}")
            report.children.append((fname, bytes(obj.olepkgdata)))
        elif obj.is_ole:
            report.embedded.append(f"object {cls or clsid or '?'}")
            if obj.oledata:
                report.children.append((f"{cls or 'object'}.bin", bytes(obj.oledata)))
        elif obj.rawdata:
            report.embedded.append("raw object")


def _vba(data: bytes, report: OfficeReport) -> None:
    from oletools import olevba

    try:
        projects = [olevba.VBA_Parser("document", data=data)]
    except Exception as exc:  # olevba raises on anything it cannot open
        report.errors.append(f"olevba: {exc}")
        # olevba reads every member of a package: one damaged member, which Word may repair or
        # skip, would hide the macros beside it. Their project is read on its own instead.
        projects = _vba_projects(data, report)
    for vp in projects:
        try:
            _vba_project(vp, report)
        finally:
            try:
                vp.close()
            except Exception:
                log.debug("olevba close failed", exc_info=True)


def _vba_projects(data: bytes, report: OfficeReport) -> list[Any]:
    """The VBA projects (`vbaProject.bin`) of a zip package, each opened by olevba on its own."""
    from oletools import olevba

    if not data.startswith(b"PK"):
        return []
    projects: list[Any] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist()[:2000]:
                name = info.filename.rsplit("/", 1)[-1].lower()
                if name != "vbaproject.bin" or info.file_size > MAX_VBA_PROJECT or len(projects) >= 10:
                    continue
                blob = read_member(zf, info)
                if blob.startswith(OLE2_MAGIC):
                    try:
                        projects.append(olevba.VBA_Parser(info.filename, data=blob))
                    except Exception as exc:
                        report.errors.append(f"olevba {info.filename}: {exc}")
    except ZIP_ERRORS:
        pass
    return projects


def _vba_project(vp: Any, report: OfficeReport) -> None:
    from oletools import mraptor

    with contextlib.suppress(Exception):  # a damaged project: the VBA checks below still run
        report.xlm = report.xlm or bool(vp.detect_xlm_macros())
    if not vp.detect_vba_macros():
        return
    report.macros = True
    code_parts: list[str] = []
    for _fname, _stream, vba_name, code in vp.extract_all_macros():
        if vba_name and len(report.macro_modules) < 50:
            report.macro_modules.append(str(vba_name))
        if isinstance(code, str):
            code_parts.append(code)
    code = "\n".join(code_parts)[:2_000_000]
    try:
        for kind, keyword, description in vp.analyze_macros(show_decoded_strings=False, deobfuscate=False):
            if kind == "AutoExec" and keyword not in report.autoexec:
                report.autoexec.append(str(keyword))
            elif kind == "Suspicious" and len(report.suspicious) < 30:
                report.suspicious.append(f"{keyword}: {description}")
            elif kind == "IOC" and len(report.iocs) < 30:
                report.iocs.append(str(keyword))
    except Exception as exc:  # analysis of hostile code can fail
        report.errors.append(f"olevba analysis: {exc}")
    with contextlib.suppress(Exception):
        report.stomped = report.stomped or bool(vp.detect_vba_stomping())
    raptor = mraptor.MacroRaptor(code)
    raptor.scan()
    if raptor.suspicious or not report.mraptor:
        report.mraptor = raptor.get_flags()
    report.mraptor_suspicious = report.mraptor_suspicious or bool(raptor.suspicious)


def csv_dde(data: bytes) -> bool:
    """A CSV/SYLK text whose cells call another program (=cmd|'/C calc'!A0)."""
    return bool(_CSV_DDE_RE.search(data[:2_000_000]))


def inspect(data: bytes, kind: str) -> OfficeReport:
    """Analyse one Office document (`kind` = its true extension); never raises."""
    report = OfficeReport(kind=kind)
    try:
        _quiet_import()
        if kind in OOXML_EXTS:
            _ooxml(data, report)
        elif kind in OLE_EXTS or kind == "office-encrypted":
            _ole(data, report)
            report.encrypted = report.encrypted or kind == "office-encrypted"
        elif kind == "rtf":
            _rtf(data, report)
    except Exception as exc:  # a broken document is a finding input, never a crash
        log.debug("office analysis failed", exc_info=True)
        report.errors.append(f"{type(exc).__name__}: {exc}")
    return report
