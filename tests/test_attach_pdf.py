"""PDF: OpenAction JavaScript, obfuscated names, Launch, embedded files, form submission, URIs to URL analysis."""

from __future__ import annotations

import zlib

from mailmoat.analyzers.filetypes import FileTypeAnalyzer
from mailmoat.analyzers.pdf import PdfAnalyzer
from mailmoat.attach import pdf
from mailmoat.config import Settings
from mailmoat.parse.documents import read_documents
from tests.support import attachgen as g


async def test_openaction_javascript_reaches_quarantine(settings: Settings) -> None:
    findings = await g.run_analyzers(g.message([("statement.pdf", g.pdf_openaction_js("app.launchURL('x');"))]), settings, PdfAnalyzer)
    found = g.by_symbol(findings)
    assert "app.launchURL" in found["PDF_JAVASCRIPT"].evidence
    assert "PDF_AUTO_ACTION" in found
    assert sum(f.score for f in findings) >= settings.policy.thresholds.quarantine


def test_hex_escaped_names_are_decoded() -> None:
    doc = g.pdf_bytes([
        b"<< /Type /Catalog /Pages 2 0 R /#4Fpen#41ction << /S /J#61vaScript /JS (this.print();) >> >>",
        b"<< /Type /Pages /Kids [] /Count 0 >>",
    ])
    rep = pdf.inspect(doc)
    assert rep.auto_js and rep.javascript == ["this.print();"]


def test_launch_submit_and_compressed_javascript_stream() -> None:
    js = zlib.compress(b"var x = util.printd('yyyy', new Date());")
    doc = g.pdf_bytes([
        b"<< /Type /Catalog /Pages 2 0 R /AA << /WC 4 0 R >> >>",
        b"<< /Type /Pages /Kids [] /Count 0 >>",
        b"<< /S /Launch /Win << /F (cmd.exe) /P (/c calc) >> >>",
        b"<< /S /JavaScript /JS 5 0 R >>",
        b"<< /Filter /FlateDecode /Length " + str(len(js)).encode() + b" >>\nstream\n" + js + b"\nendstream",
        b"<< /S /SubmitForm /F (https://collect.example-phish.test/pdf.php) >>",
    ])
    rep = pdf.inspect(doc)
    assert rep.launch == ["cmd.exe"]
    assert rep.auto_js
    assert any("util.printd" in s for s in rep.javascript)
    assert rep.submit == ["https://collect.example-phish.test/pdf.php"]


async def test_embedded_file_is_extracted_and_scanned(settings: Settings) -> None:
    payload = b"MZ" + b"\0" * 200
    doc = g.pdf_bytes([
        b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles << /Names [(a) 3 0 R] >> >> >>",
        b"<< /Type /Pages /Kids [] /Count 0 >>",
        b"<< /Type /Filespec /F (update.exe) /UF (update.exe) /EF << /F 4 0 R >> >>",
        b"<< /Type /EmbeddedFile /Length " + str(len(payload)).encode() + b" >>\nstream\n" + payload + b"\nendstream",
    ])
    found = g.by_symbol(await g.run_analyzers(g.message([("a.pdf", doc)]), settings, PdfAnalyzer, FileTypeAnalyzer))
    assert "update.exe" in found["PDF_EMBEDDED_FILE"].evidence
    assert "a.pdf > update.exe" in found["ATTACH_BLOCKED_TYPE"].evidence


async def test_link_in_object_stream_goes_to_url_analysis(settings: Settings) -> None:
    msg = g.message([("voicemail.pdf", g.pdf_link("https://login.example-secure.test/verify"))])
    read_documents(msg)
    pdf_urls = [u for u in msg.urls if u.source == "pdf"]
    assert [(u.url, u.host, u.part_path) for u in pdf_urls] == [("https://login.example-secure.test/verify", "login.example-secure.test", "2")]
    read_documents(msg)  # idempotent
    assert len([u for u in msg.urls if u.source == "pdf"]) == 1
    found = g.by_symbol(await g.run_analyzers(msg, settings, PdfAnalyzer))
    assert set(found) == {"PDF_LINK_LURE"}


def test_hostile_pdf_never_raises() -> None:
    for junk in (b"%PDF-1.7\n1 0 obj << /Filter /FlateDecode >>\nstream\n\xff\xfe\nendstream endobj",
                 b"%PDF-1.4 (((((((( 1 0 obj <</JS (\\", b"%PDF-" + b"9 0 obj " * 1000):
        pdf.inspect(junk)
    msg = g.message([("x.pdf", b"%PDF-1.4 garbage")])
    read_documents(msg)
    assert msg.urls == []


def _objstm_pdf(*, predictor: bool = False, decoy: bool = False) -> bytes:
    """A PDF that runs a script on open from an object stream (object 6 packed in object 7)."""
    js = b"<< /S /JavaScript /JS (app.alert('from an object stream');) >>"
    header = b"6 0 ".ljust(8)
    payload = header + js
    if predictor:  # PNG "up" rows of 4 columns: each row prefixed with its filter type
        payload = payload.ljust(-(-len(payload) // 4) * 4)
        prev = bytes(4)
        rows = []
        for i in range(0, len(payload), 4):
            row = payload[i : i + 4]
            rows.append(b"\x02" + bytes((a - b) & 0xFF for a, b in zip(row, prev, strict=True)))
            prev = row
        packed = b"".join(rows)
    else:
        packed = payload
    comp = zlib.compress(packed)
    parms = b"/DecodeParms << /Predictor 12 /Columns 4 >> " if predictor else b""
    objs = [
        b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R /OpenAction 6 0 R >>\nendobj\n",
        b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n",
        b"7 0 obj\n<< /Type /ObjStm /N 1 /First %d /Length %d /Filter /FlateDecode %s>>\nstream\n" % (len(header), len(comp), parms)
        + comp + b"\nendstream\nendobj\n",
    ]
    stray = b"6 0 obj\nnull\nendobj\n" if decoy else b""  # not in the cross-reference table: readers skip it
    return b"%PDF-1.7\n" + stray + b"".join(objs) + b"%%EOF\n"


def test_a_script_in_a_predicted_or_shadowed_object_stream_is_found() -> None:
    """A PNG predictor on the object stream (the usual form of modern PDFs) read as noise, and a
    stray object of the same number hid the packed action: both scripts that run on open scored 0 or 5."""
    for kw in ({}, {"predictor": True}, {"decoy": True}, {"predictor": True, "decoy": True}):
        rep = pdf.inspect(_objstm_pdf(**kw))
        assert rep.auto_js and any("from an object stream" in s for s in rep.javascript), kw


def test_objects_without_endobj_keep_no_more_than_the_file() -> None:
    """Each object without `endobj` took the megabyte after it: 400 of them, 519 MB and 15 s."""
    data = b"%PDF-1.4\n" + b"".join(b"%d 0 obj\n<< /A %d >>\n" % (i, i) for i in range(1, 401)) + b"%" + b"A" * (1 << 20) + b"\n"
    doc = pdf._Doc(data, pdf.PdfReport())
    doc.parse()
    assert len(doc.objects) == 400 and sum(len(head) for head, _ in doc.objects.values()) <= len(data)
