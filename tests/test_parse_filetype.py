"""True file types from magic bytes."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile

import pytest

from mailmoat.attach.sniff import sniff as attach_kind
from mailmoat.parse.documents import _kind as document_kind
from mailmoat.parse.filetype import is_pdf, sniff


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
