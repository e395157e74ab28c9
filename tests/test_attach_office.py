"""Office documents: macros with auto-exec (docm, xlsm, nested in archives), DDE, remote templates, RTF objects."""

from __future__ import annotations

import pytest

from mailmoat.analyzers.filetypes import FileTypeAnalyzer
from mailmoat.analyzers.office import OfficeAnalyzer
from mailmoat.config import Settings
from mailmoat.parse.documents import read_documents
from tests.support import attachgen as g


def _total(findings: list) -> float:  # type: ignore[type-arg]
    return sum(f.score for f in findings)


async def test_docm_with_autoopen_reaches_quarantine(settings: Settings) -> None:
    findings = await g.run_analyzers(g.message([("invoice.docm", g.docm())]), settings, OfficeAnalyzer)
    found = g.by_symbol(findings)
    assert {"OFFICE_MACRO", "OFFICE_MACRO_AUTOEXEC", "OFFICE_MACRO_SUSPICIOUS"} <= set(found)
    assert found["OFFICE_MACRO_AUTOEXEC"].data["files"][0]["triggers"] == ["AutoOpen"]
    assert any("Shell" in k for k in found["OFFICE_MACRO_SUSPICIOUS"].data["files"][0]["keywords"])
    assert _total(findings) >= settings.policy.thresholds.quarantine


async def test_xlsm_macro_in_a_zip_in_a_zip(settings: Settings) -> None:
    nested = g.zip_bytes({"inner.zip": g.zip_bytes({"Q3/report.xlsm": g.docm(kind="excel")})})
    found = g.by_symbol(await g.run_analyzers(g.message([("docs.zip", nested)]), settings, OfficeAnalyzer))
    assert found["OFFICE_MACRO_AUTOEXEC"].data["files"][0]["location"] == "docs.zip > inner.zip > Q3/report.xlsm"


async def test_macro_free_docm_lookalike_is_quiet(settings: Settings) -> None:
    found = g.by_symbol(await g.run_analyzers(g.message([("a.docx", g.docx_dde("PAGE"))]), settings, OfficeAnalyzer))
    assert found == {}


async def test_remote_template_injection_and_hyperlinks(settings: Settings) -> None:
    doc = g.docx_remote_template("http://198.51.100.7/t.dotm")
    msg = g.message([("cv.docx", doc)])
    found = g.by_symbol(await g.run_analyzers(msg, settings, OfficeAnalyzer))
    assert "http://198.51.100.7/t.dotm" in found["OFFICE_REMOTE_TEMPLATE"].evidence
    read_documents(msg)
    office_urls = {u.url: u for u in msg.urls if u.source == "office"}
    assert set(office_urls) == {"https://docs.example.net/view?id=42", "http://198.51.100.7/t.dotm"}
    assert office_urls["https://docs.example.net/view?id=42"].registrable_domain == "example.net"


async def test_dde_field_split_over_runs(settings: Settings) -> None:
    found = g.by_symbol(await g.run_analyzers(g.message([("memo.docx", g.docx_dde())]), settings, OfficeAnalyzer))
    assert "DDEAUTO" in found["OFFICE_DDE"].evidence


async def test_csv_dde_formula(settings: Settings) -> None:
    csv = b"name,total\nalice,=cmd|' /C calc'!A0\n"
    found = g.by_symbol(await g.run_analyzers(g.message([("export.csv", csv)]), settings, OfficeAnalyzer))
    assert "OFFICE_DDE" in found


async def test_rtf_package_object_is_extracted_and_scanned(settings: Settings) -> None:
    rtf = g.rtf_package("invoice.exe", b"MZ" + b"\0" * 100)
    found = g.by_symbol(await g.run_analyzers(g.message([("scan.rtf", rtf)]), settings, OfficeAnalyzer, FileTypeAnalyzer))
    assert "package invoice.exe" in found["OFFICE_EMBEDDED_OBJECT"].evidence
    assert "scan.rtf > invoice.exe" in found["ATTACH_BLOCKED_TYPE"].evidence


async def test_garbage_office_file_does_not_crash(settings: Settings) -> None:
    junk = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\xff" * 3000
    findings = await g.run_analyzers(g.message([("a.doc", junk)]), settings, OfficeAnalyzer)
    assert all(f.symbol.startswith("OFFICE_") for f in findings)


def test_rtf_without_object_data_is_not_walked_for_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """rtfobj costs about a microsecond per control word; a file with no \\objdata has nothing for it."""
    from oletools import rtfobj

    from mailmoat.attach import office

    walked: list[int] = []
    parse = rtfobj.RtfObjParser.parse

    def counting(self: rtfobj.RtfObjParser) -> None:
        walked.append(len(self.data))
        parse(self)

    monkeypatch.setattr(rtfobj.RtfObjParser, "parse", counting)
    plain = office.inspect(b"{\\rtf1\\ansi " + b"\\'b2\\'b9" * 10_000 + b"\\par}", "rtf")
    assert walked == [] and not plain.embedded and not plain.errors
    with_object = office.inspect(g.rtf_package("invoice.exe", b"MZ" + b"\0" * 100), "rtf")
    assert len(walked) == 1 and with_object.embedded == ["package invoice.exe"]
    dde = office.inspect(b'{\\rtf1{\\field{\\*\\fldinst DDEAUTO c:\\\\windows\\\\cmd.exe "/c calc"}}}', "rtf")
    assert dde.dde == ["DDE field in RTF"] and len(walked) == 1


async def test_a_compound_file_past_the_entry_limit_is_reported_not_read(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """olefile, msodde and olevba each read every directory entry: 40,000 of them in 5 MB took
    seconds (bench/hostile_text.py). Past the limit the file is named, not read."""
    from mailmoat.parse import filetype

    doc = g.ole_file({"WordDocument": b"x", "1Table": b"y", "Macros/VBA/dir": b"z", "a": b"", "b": b""})
    quiet = g.by_symbol(await g.run_analyzers(g.message([("a.doc", doc)]), settings, OfficeAnalyzer))
    assert "OFFICE_TOO_MANY_STREAMS" not in quiet
    monkeypatch.setattr(filetype, "MAX_OLE_ENTRIES", 4)
    found = g.by_symbol(await g.run_analyzers(g.message([("a.doc", doc)]), settings, OfficeAnalyzer))
    assert "more than 4 directory entries" in found["OFFICE_TOO_MANY_STREAMS"].evidence
