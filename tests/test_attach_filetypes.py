"""True type versus name: blocked and warned types, double extensions, bidi names, mismatches, hashes."""

from __future__ import annotations

from mailmoat.analyzers.filetypes import FileTypeAnalyzer, name_parts
from mailmoat.attach.sniff import sniff
from mailmoat.config import Settings
from tests.support import attachgen as g

PE = b"MZ" + b"\0" * 58 + (64).to_bytes(4, "little") + b"PE\0\0" + b"\0" * 200


async def _symbols(files: list[tuple[str, bytes]], settings: Settings) -> dict:  # type: ignore[type-arg]
    return g.by_symbol(await g.run_analyzers(g.message(files), settings, FileTypeAnalyzer))


def test_sniff_true_types() -> None:
    assert sniff(PE) == "exe"
    assert sniff(g.lnk_bytes()) == "lnk"
    assert sniff(g.iso_bytes({"a.txt": b"x"})) == "iso"
    assert sniff(g.zip_bytes({"a.txt": b"x"})) == "zip"
    assert sniff(g.pdf_openaction_js()) == "pdf"
    assert sniff(g.HTML_PHISH) == "html"
    assert sniff(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>') == "svg"


def test_name_parts_strip_bidi_and_trailing_dots() -> None:
    clean, exts, tricks = name_parts("docs/invoice\u202efdp.exe. ")
    assert clean == "invoicefdp.exe" and exts == ["exe"] and tricks == {"\u202e"}


async def test_blocked_extension_reaches_quarantine(settings: Settings) -> None:
    found = await _symbols([("setup.exe", PE)], settings)
    assert found["ATTACH_BLOCKED_TYPE"].score >= settings.policy.thresholds.quarantine


async def test_executable_disguised_as_pdf(settings: Settings) -> None:
    found = await _symbols([("statement.pdf", PE)], settings)
    assert "ATTACH_BLOCKED_TYPE" in found
    assert "content is exe" in found["ATTACH_BLOCKED_TYPE"].evidence
    assert "ATTACH_TYPE_MISMATCH" in found


async def test_double_extension_and_rlo(settings: Settings) -> None:
    found = await _symbols([("invoice.pdf.exe", PE), ("scan\u202efdp.js", b"WScript.Echo(1)")], settings)
    assert "ATTACH_DOUBLE_EXT" in found
    assert "invoice.pdf.exe" in found["ATTACH_DOUBLE_EXT"].evidence
    assert "ATTACH_BIDI_NAME" in found
    assert "U+202E" in found["ATTACH_BIDI_NAME"].evidence
    # one finding per symbol, however many files: scores do not multiply
    assert len(found["ATTACH_BLOCKED_TYPE"].data["files"]) == 2


async def test_blocked_member_inside_zip(settings: Settings) -> None:
    found = await _symbols([("docs.zip", g.zip_bytes({"docs/readme.txt": b"hi", "docs/run.vbs": b"MsgBox 1"}))], settings)
    assert "docs.zip > docs/run.vbs" in found["ATTACH_BLOCKED_TYPE"].evidence
    assert "ATTACH_WARNED_TYPE" in found  # the zip itself


async def test_lnk_inside_iso(settings: Settings) -> None:
    iso = g.iso_bytes({"Invoice.pdf.lnk": g.lnk_bytes()})
    found = await _symbols([("invoice.img", iso)], settings)
    files = found["ATTACH_BLOCKED_TYPE"].data["files"]
    assert {f["location"] for f in files} == {"invoice.img", "invoice.img > Invoice.pdf.lnk"}
    assert "ATTACH_DOUBLE_EXT" in found


async def test_configured_lists(settings: Settings) -> None:
    settings.attachments.blocked_exts = ["pdf"]
    settings.attachments.warned_exts = []
    found = await _symbols([("setup.exe", PE), ("a.pdf", g.pdf_link())], settings)
    files = [f["location"] for f in found["ATTACH_BLOCKED_TYPE"].data["files"]]
    assert files == ["a.pdf"]  # exe no longer blocked by name, pdf blocked by configuration


async def test_clean_attachment_only_hashes(settings: Settings) -> None:
    doc = b"quarterly numbers " * 200
    found = await _symbols([("notes.txt", doc)], settings)
    assert set(found) == {"ATTACHMENT_HASHES"}
    entry = found["ATTACHMENT_HASHES"].data["files"][0]
    assert found["ATTACHMENT_HASHES"].score == 0
    assert len(entry["sha256"]) == 64 and entry["ssdeep"].count(":") == 2


async def test_no_attachments_no_findings(settings: Settings) -> None:
    assert await g.run_analyzers(g.message([]), settings, FileTypeAnalyzer) == []


async def test_calendar_invite_posing_as_pdf_and_config_profile(settings: Settings) -> None:
    ics = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nURL:https://evil.example.test/\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    msg = g.message([])
    msg.parts.append(g.part("2", "invite.ics", ics, content_type="application/pdf"))
    msg.parts.append(g.part("3", "wifi.mobileconfig", b"0\x82\x14Z\x06\t*\x86H\x86\xf7\r\x01\x07\x02\xa0" + b"\0" * 64))
    found = g.by_symbol(await g.run_analyzers(msg, settings, FileTypeAnalyzer))
    assert "declared application/pdf but content is ics" in found["ATTACH_TYPE_MISMATCH"].evidence
    assert "wifi.mobileconfig" in found["ATTACH_BLOCKED_TYPE"].evidence


def test_sniff_types_the_parser_alone_used_to_know() -> None:
    """One sniffer: the engines now see what only the parser's table knew, in the same words."""
    assert sniff(b"-----BEGIN PGP SIGNATURE-----\nVersion: GnuPG v1\n") == "asc"
    assert sniff(b"0\x80\x06\t*\x86H\x86\xf7\r\x01\x07\x02\xa0\x800\x80" + b"\0" * 20) == "p7m"  # BER S/MIME signature
    assert sniff(b"\r\n<P>\r\nDear Subscriber,\r\n") == "html"
    assert sniff(b"\xca\xfe\xba\xbe\x00\x00\x00\x02\x01\x00\x00\x07" + b"\0" * 20) == "macho"  # universal binary, not Java


async def test_universal_macho_posing_as_pdf_is_blocked(settings: Settings) -> None:
    fat = b"\xca\xfe\xba\xbe\x00\x00\x00\x02\x01\x00\x00\x07" + b"\0" * 200
    found = await _symbols([("statement.pdf", fat)], settings)
    assert "content is macho" in found["ATTACH_BLOCKED_TYPE"].evidence


async def test_zip_package_no_engine_reads_is_still_unpacked(settings: Settings) -> None:
    vsdx = g.zip_bytes({"[Content_Types].xml": b"<Types/>", "visio/document.xml": b"<x/>", "visio/run.vbs": b"MsgBox 1"})
    found = await _symbols([("plan.vsdx", vsdx)], settings)
    assert "plan.vsdx > visio/run.vbs" in found["ATTACH_BLOCKED_TYPE"].evidence
