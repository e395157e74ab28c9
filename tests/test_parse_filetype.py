"""True file types from magic bytes: one sniffer for parsed parts and attachment engines."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
from email.message import EmailMessage

import pytest

from mailmoat.attach import sniff as attach_sniff
from mailmoat.attach.scan import attachment_files, expand_message
from mailmoat.attach.sniff import sniff as attach_kind
from mailmoat.config import AttachmentSettings
from mailmoat.parse import filetype, parse
from mailmoat.parse.documents import _kind as document_kind
from mailmoat.parse.filetype import MIME, is_pdf, mime_of, raster_ext, sniff
from tests.support.attachgen import ole_file


def _zip(names: list[str], first_stored: tuple[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        if first_stored:
            z.writestr(zipfile.ZipInfo(first_stored[0]), first_stored[1], compress_type=zipfile.ZIP_STORED)
        for n in names:
            z.writestr(n, b"x")
    return buf.getvalue()


def _pe(dll: bool) -> bytes:
    data = bytearray(b"MZ" + b"\0" * 0x3E + b"\0" * 64)
    struct.pack_into("<I", data, 0x3C, 0x40)
    data[0x40:0x44] = b"PE\0\0"
    struct.pack_into("<H", data, 0x40 + 22, 0x2102 if dll else 0x0102)
    return bytes(data)


def _ole(stream: str) -> bytes:
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 500 + stream.encode("utf-16-le") + b"\0" * 100


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("a.txt")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


CASES: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "png"),
    (b"\xff\xd8\xff\xe0" + b"\0" * 20, "jpg"),
    (b"GIF89a" + b"\0" * 20, "gif"),
    (b"BM" + b"\0" * 12 + b"\x28\0\0\0" + b"\0" * 20, "bmp"),
    (b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 10, "webp"),
    (b"II*\0" + b"\0" * 20, "tif"),
    (b"\0\0\1\0\1\0\x10\x10\0\0" + b"\0" * 20, "ico"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "svg"),
    (b"%PDF-1.7\n", "pdf"),
    (b"junk\n%PDF-1.4", "txt"),
    (b"\n\x89\xedz{C\x8a\xcah\xb2+b" * 20 + b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "pdf"),
    (b"The header is written %PDF-1.7 at the start of the file.\n", "txt"),
    (_zip(["a.txt"]), "zip"),
    (_zip(["[Content_Types].xml", "word/document.xml"]), "docx"),
    (_zip(["[Content_Types].xml", "xl/workbook.xml"]), "xlsx"),
    (_zip(["[Content_Types].xml", "ppt/presentation.xml"]), "pptx"),
    (_zip(["[Content_Types].xml", "word/document.xml", "word/vbaProject.bin"]), "docm"),
    (_zip(["[Content_Types].xml", "xl/workbook.xml", "xl/vbaProject.bin"]), "xlsm"),
    (_zip(["content.xml"], ("mimetype", b"application/vnd.oasis.opendocument.text")), "odt"),
    (_zip(["content.xml"], ("mimetype", b"application/vnd.oasis.opendocument.spreadsheet")), "ods"),
    (_zip(["META-INF/MANIFEST.MF", "a/B.class"]), "jar"),
    (_ole("WordDocument"), "doc"),
    (_ole("Workbook"), "xls"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 80 + b"\x84\x10\x0c\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46", "msi"),
    (_ole("Other"), "ole"),
    (b"{\\rtf1\\ansi", "rtf"),
    (b"7z\xbc\xaf\x27\x1c\0\4", "7z"),
    (b"Rar!\x1a\x07\x01\x00", "rar"),
    (b"\x1f\x8b\x08\0", "gz"),
    (b"BZh91AY&SY", "bz2"),
    (b"\xfd7zXZ\0\0", "xz"),
    (_tar(), "tar"),
    (b"\0" * 0x8001 + b"CD001" + b"\0" * 10, "iso"),
    (b"conectix" + b"\0" * 100, "vhd"),
    (b"vhdxfile" + b"\0" * 100, "vhdx"),
    (b"\xeb\x3c\x90MSDOS5.0" + b"\0" * 43 + b"FAT12" + b"\0" * 451 + b"\x55\xaa", "img"),
    (_pe(dll=False), "exe"),
    (_pe(dll=True), "dll"),
    (b"\x7fELF\2\1\1", "elf"),
    (bytes.fromhex("4C0000000114020000000000C000000000000046") + b"\0" * 50, "lnk"),
    (bytes.fromhex("E4525C7B8CD8A74DAEB15378D02996D3") + b"\0" * 50, "one"),
    (b"<!DOCTYPE html><html><body>x</body></html>", "html"),
    (b"\n  <script>location='x'</script>", "html"),
    (b"<html><HTA:APPLICATION ID='x'>", "hta"),
    (b"Received: from x\r\nFrom: a@b\r\nSubject: s\r\n\r\nbody", "eml"),
    ("纯文本内容".encode("gbk"), "txt"),
    (b"plain text\n", "txt"),
    (bytes.fromhex("308218e806092a864886f70d010702a08218d9308218d5020101310f300d"), "p7m"),
    (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n", "ics"),
    # once known only to the attachment engines' sniffer
    (_zip(["[Content_Types].xml", "xl/workbook.bin", "xl/worksheets/sheet1.bin"]), "xlsb"),
    (_zip(["AndroidManifest.xml", "classes.dex"]), "apk"),
    (b"\x9a\x21\x31\x00\x00\x00\x00**ACE**\x14\x14" + b"\0" * 40, "ace"),
    (b"\x60\xea\x26\x00\x1e\x06\x01\x00" + b"\0" * 40, "arj"),
    (b"FWS\x0a\x10\x00\x00\x00" + b"\0" * 20, "swf"),
    (b"CWS\x0a\x10\x00\x00\x00x\x9c" + b"\0" * 20, "swf"),
    (b"bplist00\xd1\x01\x02" + b"\0" * 20, "bplist"),
    (b'<?xml version="1.0"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN">\n<plist version="1.0"><dict/></plist>', "plist"),
    (b"\xce\xfa\xed\xfe\x07\x00\x00\x00" + b"\0" * 20, "macho"),  # 32-bit
    (b"\xfe\xed\xfa\xcf\x01\x00\x00\x07" + b"\0" * 20, "macho"),  # big-endian 64-bit
    (b"\xca\xfe\xba\xbe\x00\x00\x00\x02\x01\x00\x00\x07" + b"\0" * 20, "macho"),  # universal: two architectures
    (b"\xca\xfe\xba\xbe\x00\x00\x00\x34\x00\x1d" + b"\0" * 20, "class"),  # Java 8 class file
    (ole_file({"EncryptionInfo": b"\x04\x00\x04\x00", "EncryptedPackage": b"\x10" * 64}), "office-encrypted"),
    (ole_file({"__substg1.0_0037001F": "Invoice".encode("utf-16-le")}), "msg"),
    (b"{\\rt\\ansi{\\object}}", "rtf"),  # Word opens "{\rt" as RTF
    (b"\r\n  begin:vcalendar\r\nversion:2.0\r\n", "ics"),
    (b"BZh91AY&SY", "bz2"),
    (b"BZh is not a block size\n", "txt"),
    (b"BMW drivers read this line of text, not a bitmap.\n", "txt"),
    ("OpenText\x1b$B<R\x1b(B\n\x1b$B0KElMM\x1b(B\n".encode("latin-1"), "txt"),  # ISO-2022-JP is text
    (b"> What does this \x13C\x14 statement do?\n" + b"It is quoted from a reply.\n" * 10, "txt"),  # stray control bytes leave text text
    (b"FROM: COL. MICHAEL BUNDU.\nDEMOCRATIC REPUBLIC OF CONGO.\n", "txt"),  # one header-like line is no message
    (b"-----BEGIN PGP SIGNATURE-----\nVersion: GnuPG v1\n", "asc"),
    (b"#!/bin/sh\necho hi\n", "sh"),
    (b"0\x80\x06\t*\x86H\x86\xf7\r\x01\x07\x02\xa0\x800\x80\x02\x01\x01" + b"\0" * 20, "p7m"),  # BER, indefinite length
]


@pytest.mark.parametrize(("data", "ext"), CASES, ids=[c[1] + str(i) for i, c in enumerate(CASES)])
def test_sniff(data: bytes, ext: str) -> None:
    assert sniff(data)[1] == ext


def test_unknown_and_empty() -> None:
    assert sniff(b"") == ("", "")
    assert sniff(bytes(range(256))) == ("", "")
    assert sniff(b"MZ")[1] == "txt"  # two letters are not an executable


PDF_CASES = [c for c in CASES if b"%PDF-" in c[0][:1024]]


@pytest.mark.parametrize(("data", "ext"), PDF_CASES, ids=[c[1] + str(i) for i, c in enumerate(PDF_CASES)])
def test_one_answer_to_is_this_a_pdf(data: bytes, ext: str) -> None:
    """The file type, the attachment kind and the document reader give the same answer for a
    header at the start, one behind junk, and text that only names the header."""
    assert is_pdf(data) == (ext == "pdf")
    assert (attach_kind(data) == "pdf") == (ext == "pdf")
    assert (document_kind(data, "") == "pdf") == (ext == "pdf")


def test_every_answer_is_in_the_vocabulary() -> None:
    """The engines' classes of extensions and every answer of the sniffer use the same words."""
    for data, _ext in CASES:
        mime, got = sniff(data)
        assert got in MIME and mime == MIME[got] == mime_of(got)
    for ext in attach_sniff.ARCHIVE_EXTS | attach_sniff.OFFICE_EXTS | attach_sniff.EXECUTABLE_EXTS:
        assert ext in MIME, ext
    assert mime_of("") == "" and mime_of("unheard-of") == "application/octet-stream"


def test_encrypted_office_has_one_name() -> None:
    data = ole_file({"EncryptionInfo": b"\x04\x00", "EncryptedPackage": b"\x10" * 64})
    assert sniff(data) == ("application/x-ole-encrypted-ooxml", "office-encrypted")
    assert attach_kind(data) == "office-encrypted"


def test_container_structure_beats_a_byte_scan() -> None:
    """The names a zip or compound file really holds decide, not bytes that happen to spell them."""
    docx = _zip(["[Content_Types].xml", "word/document.xml"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # stored: the inner package's member names show in the outer bytes
        z.writestr("report.docx", docx, compress_type=zipfile.ZIP_STORED)
    assert sniff(buf.getvalue())[1] == "zip"
    # a manifest alone is no Java program (and "jar" is a blocked type)
    assert sniff(_zip(["META-INF/MANIFEST.MF", "readme.txt"]))[1] == "zip"
    # a stream that merely contains "WordDocument" is no Word document
    assert sniff(ole_file({"Contents": "WordDocument".encode("utf-16-le") * 3}))[1] == "ole"
    assert sniff(ole_file({"WordDocument": b"\x00" * 100}))[1] == "doc"


def test_damaged_containers_fall_back_to_the_byte_scan() -> None:
    docx = _zip(["[Content_Types].xml", "word/document.xml", "word/vbaProject.bin"])
    truncated = docx[: docx.index(b"PK\x01\x02")]  # no central directory: zipfile cannot open it
    assert sniff(truncated)[1] == "docm"
    assert attach_kind(truncated) == "docm"
    doc = ole_file({"WordDocument": b"\x00" * 100})
    assert sniff(doc[:1536] + b"\xff" * 64)[1] == "doc"


@pytest.mark.parametrize(("data", "ext"), [c for c in CASES if c[0][:2] in (b"PK", b"\xd0\xcf")], ids=lambda v: str(v)[:12])
def test_damaged_input_never_raises(data: bytes, ext: str) -> None:
    """zipfile and olefile raise many types on damaged input; each check catches its own (the
    inner function is called, not the outer safety net)."""
    for cut in (8, 30, 64, 100, 512, 1024, len(data) // 2, len(data) - 22, len(data) - 1):
        got = filetype._sniff(data[:cut], False)
        assert got == "" or got in MIME
    for at in range(0, len(data), max(1, len(data) // 40)):
        mangled = data[:at] + bytes(b ^ 0xFF for b in data[at : at + 16]) + data[at + 16 :]
        got = filetype._sniff(mangled, False)
        assert got == "" or got in MIME


DISCUSSES_TAGS = b"To post the form, write <form action=...> and put your <script> in the <head> section.\n"
SMUGGLER = b"Your document is loading, please wait...\n<script>var b = atob('UEsDBA=='); var blob = new Blob([b]);</script>\n"


def test_html_anywhere_only_for_files_that_are_opened() -> None:
    """A message about HTML stays text; a file a browser renders (text, then <script>) is HTML."""
    assert sniff(DISCUSSES_TAGS)[1] == "txt"
    assert sniff(DISCUSSES_TAGS, html_anywhere=True)[1] == "html"
    assert sniff(SMUGGLER)[1] == "txt"
    assert sniff(SMUGGLER, html_anywhere=True)[1] == "html"
    assert attach_kind(SMUGGLER) == "html"
    # the whole tag name: software talk is not a page, in either mode
    software = b"You can do apt-get install <metapackage>, see the <header> docs and <formula> notes.\n"
    assert sniff(software, html_anywhere=True)[1] == "txt"
    # a message's headers come first, even when its body is a page
    eml = b"Received: from x\r\nFrom: a@b\r\nSubject: s\r\n\r\n<html><body><script>x</script></body></html>"
    assert sniff(eml)[1] == sniff(eml, html_anywhere=True)[1] == "eml"
    assert sniff(b"<html><head><HTA:APPLICATION ID='x'></head></html>", html_anywhere=True)[1] == "hta"


def test_body_parts_stay_text_and_attachments_are_read_as_opened() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.com"
    msg["Subject"] = "forms"
    msg.set_content(DISCUSSES_TAGS.decode())
    msg.add_attachment(SMUGGLER, maintype="text", subtype="plain", filename="notice.txt")
    parsed = parse(msg.as_bytes())
    [body] = [p for p in parsed.parts if p.content_type == "text/plain" and not p.filename]
    [attachment] = [p for p in parsed.parts if p.filename == "notice.txt"]
    assert (body.true_ext, body.is_attachment) == ("txt", False)
    assert (attachment.true_type, attachment.true_ext, attachment.is_attachment) == ("text/html", "html", True)
    [f] = attachment_files(parsed)
    assert f.ext == "html" and f.mime == "text/html"
    exp = expand_message(parsed, AttachmentSettings())
    assert exp.files[0].reports["html"].smuggling or exp.files[0].reports["html"].scripts


def test_raster_gate_is_the_sniffer_s_pictures() -> None:
    """What the QR decoder hands Pillow: the sniffer's pictures, less SVG and HEIC."""
    assert raster_ext(b"\x89PNG\r\n\x1a\n" + b"\0" * 20) == "png"
    assert raster_ext(b"\0\0\0\x1cftypavif\0\0\0\0" + b"\0" * 20) == "avif"
    assert raster_ext(b"\0\0\0\x18ftypheic\0\0\0\0" + b"\0" * 20) == ""
    assert raster_ext(b"\0\0\0\x1cftypmif1\0\0\0\0mif1avifmiaf" + b"\0" * 20) == "avif"  # AVIF behind a generic brand
    assert sniff(b"\0\0\0\x18ftypheic\0\0\0\0" + b"\0" * 20)[1] == "heic"
    assert raster_ext(b"BMW drivers read this") == ""
    assert raster_ext(b"\0\0\1\0") == ""  # four bytes of an icon's magic, no directory
    assert raster_ext(b'<svg xmlns="http://www.w3.org/2000/svg"/>') == ""
    for data, ext in CASES:
        assert raster_ext(data) == (ext if ext in filetype.RASTER_EXTS else "")


def test_a_zip_of_many_members_is_read_by_the_byte_scan() -> None:
    """Parsing 50,000 directory entries costs zipfile a fifth of a second: past 5,000 the names
    in the local headers decide (the sniffer's cheap path for huge files)."""
    data = _zip(["[Content_Types].xml", "xl/workbook.xml"] + [f"xl/media/{i}.bin" for i in range(6000)])
    assert filetype._zip_too_many(data)
    assert sniff(data)[1] == "xlsx"
    assert not filetype._zip_too_many(_zip(["[Content_Types].xml", "xl/workbook.xml"]))


def test_a_configuration_profile_keeps_its_text_read() -> None:
    profile = (b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
               b'"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0"><dict>'
               b"<key>PayloadURL</key><string>https://mdm.example-enrol.test/enroll</string></dict></plist>\n")
    msg = EmailMessage()
    msg["From"] = "it@example.org"
    msg["Subject"] = "VPN"
    msg.set_content("Install the attached profile.")
    msg.add_attachment(profile, maintype="application", subtype="x-apple-aspen-config", filename="vpn.mobileconfig")
    parsed = parse(msg.as_bytes())
    [part] = [p for p in parsed.parts if p.filename == "vpn.mobileconfig"]
    assert (part.true_type, part.true_ext) == ("application/x-plist", "plist")
    assert any(u.url.startswith("https://mdm.example-enrol.test/") for u in parsed.urls)


def test_ole_directory_entries_are_counted_from_the_fat_without_parsing_them() -> None:
    three = ole_file({f"s{i}": b"x" for i in range(3)})  # root + 3 streams: one directory sector
    twelve = ole_file({f"s{i}": b"x" for i in range(12)})  # root + 12: four sectors
    assert filetype.ole_entries(three, 5000) == 4
    assert filetype.ole_entries(twelve, 5000) == 16
    assert filetype.ole_entries(twelve, 8) == 9  # stops as soon as it is past the limit
    assert filetype.ole_entries(b"not a compound file" * 40, 5000) == 0
    # Cut after the header: the first directory sector it names counts, the FAT that leads on is gone.
    assert filetype.ole_entries(twelve[:512], 5000) == 4
    # A directory chain that points back at itself ends at the limit, not in a loop.
    looped = bytearray(three)
    struct.pack_into("<I", looped, 512 + 4 * 1, 1)  # FAT entry of the directory sector: itself
    assert filetype.ole_entries(bytes(looped), 100) == 101


def test_a_compound_file_past_the_entry_limit_is_typed_by_its_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = ole_file({"WordDocument": b"x", "1Table": b"y", "a": b"", "b": b"", "c": b"", "d": b""})
    assert sniff(doc)[1] == "doc"
    monkeypatch.setattr(filetype, "MAX_OLE_ENTRIES", 4)
    assert filetype.ole_too_big(doc)
    assert sniff(doc)[1] == "doc"  # the byte scan finds the stream name as olefile would
